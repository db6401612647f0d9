"""DVC stage `build`: per-asset features -> uni2ts Hugging Face datasets in data/datasets."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai import setup_logging  # noqa: E402
from finmoirai.builder import BuildConfig, IterativeFinancialDatasetBuilder  # noqa: E402
from finmoirai.params import SplitConfig, load_params, section  # noqa: E402

FEATURES = Path("data/features")
OUT = Path("data/datasets")


def main() -> None:
    setup_logging()
    params = load_params()
    split = section(params, SplitConfig, "split")
    cfg = section(params, BuildConfig, "build")
    IterativeFinancialDatasetBuilder(OUT, batch_size=cfg.batch_size).build_dataset(FEATURES, split)


if __name__ == "__main__":
    main()
