"""DVC stage `preprocess`: calendar grid, bad-bar repair, outliers and scalers to data/preprocessed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai import setup_logging  # noqa: E402
from finmoirai.params import SplitConfig, load_params, section  # noqa: E402
from finmoirai.preprocessing import PreprocessConfig, preprocess  # noqa: E402

IN, OUT = Path("data/extracted"), Path("data/preprocessed")


def main() -> None:
    setup_logging()
    params = load_params()
    split = section(params, SplitConfig, "split")
    cfg = section(params, PreprocessConfig, "preprocess")
    preprocess(IN, split, cfg, OUT)


if __name__ == "__main__":
    main()
