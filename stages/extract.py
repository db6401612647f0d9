"""DVC stage `extract`: one parquet per selected asset from the lake to data/extracted."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai.runtime import start_stage  # noqa: E402

if __name__ == "__main__":
    start_stage(deterministic=True)  # before numpy loads: the same bytes on every x86-64 machine

from finmoirai.lake import ExtractConfig, LakeConfig, extract  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.params import section  # noqa: E402

OUT = Path("data/extracted")


def main() -> None:
    params = stage_params("extract")
    lake = section(params, LakeConfig, "lake")
    cfg = section(params, ExtractConfig, "extract")
    extract(lake.path, cfg, OUT)


if __name__ == "__main__":
    main()
