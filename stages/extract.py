"""DVC stage `extract`: one parquet per selected asset from the lake to data/extracted."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai import setup_logging  # noqa: E402
from finmoirai.lake import ExtractConfig, LakeConfig, extract  # noqa: E402
from finmoirai.params import load_params, section  # noqa: E402

OUT = Path("data/extracted")


def main() -> None:
    setup_logging()
    params = load_params()
    lake = section(params, LakeConfig, "lake")
    cfg = section(params, ExtractConfig, "extract")
    extract(lake.path, cfg, OUT)


if __name__ == "__main__":
    main()
