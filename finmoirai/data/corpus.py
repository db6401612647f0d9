"""The build stage: the real assets' features -> uni2ts datasets, optionally with a synthetic
pre-training corpus in the train split.

With `build.synthetic_assets > 0`, a synthetic corpus (lake.synthetic's generator, sized and
seeded by `build`) that ends at split.train_end, so it has training rows only, goes through the
real extract -> preprocess -> features code in a temporary directory and joins the train
split; validation and test stay real-only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from finmoirai.atomic import scratch_dir
from finmoirai.data.builder import IterativeFinancialDatasetBuilder
from finmoirai.data.features import features_from_lake
from finmoirai.data.synthetic import write_synthetic_lake
from finmoirai.params.data import (
    BuildConfig,
    ExtractConfig,
    MarketConfig,
    PreprocessConfig,
    SplitConfig,
    SyntheticConfig,
)
from finmoirai.params.features import FeaturesConfig

logger = logging.getLogger(__name__)

SYNTHETIC_PREFIX = "syn_"


def training_features(work: Path, generator: SyntheticConfig, split: SplitConfig, preprocess_cfg: PreprocessConfig,
                      features_cfg: FeaturesConfig, frequency: str, market: MarketConfig) -> Path:
    """Features of a synthetic corpus that lies wholly in the training period (it ends at
    split.train_end), computed by the real extract -> preprocess -> features code under `work`.
    Returns the features directory; its assets have training rows only."""
    start = split.train_end_ts - pd.DateOffset(years=generator.years)
    generator = generator.replace(start=str(start.date()))
    info = write_synthetic_lake(work / "lake", generator, frequency, market)
    selection = ExtractConfig(asset_classes=list(info["classes"]), frequency=frequency, years=info["years"], symbols=[])
    synthetic_features = features_cfg.replace(market_proxy=info["market_proxy"])
    manifest = features_from_lake(work / "lake", selection, split, preprocess_cfg, synthetic_features, work,
                                  market=market, strict=True, naive_timezone=None)  # its own lake: well formed, UTC
    logger.info("synthetic training corpus: %d assets, %d rows, %s .. %s", info["assets"], info["rows"],
                start.date(), split.train_end)
    if not manifest["assets"]:
        raise ValueError("synthetic training corpus has no assets")
    return work / "features"


def merge_features(real: Path, extra: Path, out: Path, prefix: str = SYNTHETIC_PREFIX) -> Path:
    """A features directory listing `real`'s assets, then `extra`'s renamed `prefix` + symbol;
    files are linked, not copied."""
    real_manifest = json.loads((real / "manifest.json").read_text())
    extra_manifest = json.loads((extra / "manifest.json").read_text())
    for key in ("covariates", "return_covariates"):
        if real_manifest.get(key) != extra_manifest.get(key):
            raise ValueError(f"synthetic corpus {key} {extra_manifest.get(key)} differ from the real ones "
                             f"{real_manifest.get(key)}")
    renamed = [{**x, "symbol": prefix + x["symbol"], "synthetic": True} for x in extra_manifest["assets"]]
    clash = sorted({x["symbol"] for x in real_manifest["assets"]} & {x["symbol"] for x in renamed})
    if clash:
        raise ValueError(f"synthetic corpus symbol(s) {', '.join(clash)} clash with real assets")
    out.mkdir(parents=True)
    for asset in real_manifest["assets"]:
        (out / f"{asset['symbol']}.parquet").symlink_to((real / f"{asset['symbol']}.parquet").resolve())
    for asset, new in zip(extra_manifest["assets"], renamed):
        (out / f"{new['symbol']}.parquet").symlink_to((extra / f"{asset['symbol']}.parquet").resolve())
    (out / "manifest.json").write_text(json.dumps({**real_manifest, "assets": real_manifest["assets"] + renamed},
                                                  indent=2))
    return out


def build(features_dir: Path, out_dir: Path, split: SplitConfig, cfg: BuildConfig, generator: SyntheticConfig,
          preprocess_cfg: PreprocessConfig, features_cfg: FeaturesConfig, market: MarketConfig) -> dict:
    """Write the datasets of `features_dir` (plus the synthetic corpus, if asked) to `out_dir`;
    the corpus's temporary directory is removed whatever happens, and a stale one first."""
    builder = IterativeFinancialDatasetBuilder(out_dir, batch_size=cfg.batch_size)
    if cfg.synthetic_assets == 0:
        return builder.build_dataset(features_dir, split)
    with scratch_dir(out_dir.parent / ".build-synthetic") as work:  # a killed run's is removed first
        generator = generator.replace(assets=cfg.synthetic_assets, years=cfg.synthetic_years,
                                        seed=cfg.synthetic_seed)
        frequency = json.loads((features_dir / "manifest.json").read_text())["assets"][0]["frequency"]
        extra = training_features(work / "work", generator, split, preprocess_cfg, features_cfg, frequency, market)
        summary = builder.build_dataset(merge_features(features_dir, extra, work / "merged"), split)
        logger.info("train split: %d real + %d synthetic assets",
                    len(summary["level"]["assets"]) - cfg.synthetic_assets, cfg.synthetic_assets)
        return summary
