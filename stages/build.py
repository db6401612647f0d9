"""DVC stage `build`: per-asset features -> uni2ts Hugging Face datasets in data/datasets.

With build.synthetic_assets > 0, a synthetic corpus that ends at split.train_end (so it has
training rows only) goes through the real extract -> preprocess -> features code in a
temporary directory and is added to the train split; val and test stay real-only."""

import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai.runtime import start_stage  # noqa: E402

if __name__ == "__main__":
    start_stage(deterministic=True)  # before numpy loads: the same bytes on every x86-64 machine

from finmoirai.builder import IterativeFinancialDatasetBuilder  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.params import BuildConfig, SplitConfig, section  # noqa: E402

FEATURES = Path("data/features")
OUT = Path("data/datasets")
SYNTHETIC_TMP = Path("data/.build-synthetic")

logger = logging.getLogger("stages.build")


def main() -> None:
    params = stage_params("build")
    split = section(params, SplitConfig, "split")
    cfg = section(params, BuildConfig, "build")
    builder = IterativeFinancialDatasetBuilder(OUT, batch_size=cfg.batch_size)
    if cfg.synthetic_assets == 0:
        builder.build_dataset(FEATURES, split)
        return
    from finmoirai.features import FeaturesConfig
    from finmoirai.preprocessing import PreprocessConfig
    from finmoirai.synthetic import merge_features, training_features

    shutil.rmtree(SYNTHETIC_TMP, ignore_errors=True)  # a stale one from a killed run
    try:
        extra = training_features(SYNTHETIC_TMP / "work", cfg.synthetic_assets, cfg.synthetic_years,
                                  cfg.synthetic_seed, split, section(params, PreprocessConfig, "preprocess"),
                                  section(params, FeaturesConfig, "features"))
        merged = merge_features(FEATURES, extra, SYNTHETIC_TMP / "merged")
        summary = builder.build_dataset(merged, split)
        logger.info("train split: %d real + %d synthetic assets", len(summary["level"]["assets"]) - cfg.synthetic_assets,
                    cfg.synthetic_assets)
    finally:
        shutil.rmtree(SYNTHETIC_TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
