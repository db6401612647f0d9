"""DVC stage `preprocess`: calendar grid, bad-bar repair, outliers and scalers to data/preprocessed,
and the data-quality report (DVC metrics) to metrics/data_quality.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai.runtime import start_stage  # noqa: E402

if __name__ == "__main__":
    start_stage(deterministic=True)  # before numpy loads: the same bytes on every x86-64 machine

from finmoirai.config import stage_params  # noqa: E402
from finmoirai.params import SplitConfig, section  # noqa: E402
from finmoirai.preprocessing import PreprocessConfig, preprocess  # noqa: E402

IN, OUT = Path("data/extracted"), Path("data/preprocessed")
REPORT = Path("metrics/data_quality.json")


def main() -> None:
    params = stage_params("preprocess")
    split = section(params, SplitConfig, "split")
    cfg = section(params, PreprocessConfig, "preprocess")
    preprocess(IN, split, cfg, OUT, metrics_path=REPORT)


if __name__ == "__main__":
    main()
