"""`evaluate.lake_path`: score the trained models on a lake of any period without retraining.

Warm-up rule: the lake's scalers (preprocess) and indicator z-scores / regime thresholds
(features) are fitted on every selected bar before `evaluate.test_start`, nothing after, and
`evaluate.years` bounds that warm-up. That is the rule training follows (every bar of the
extract selection before split.train_end), needs no knob of its own, and longer is better:
the volatility-regime threshold is a quantile, and Moirai re-standardises every context
window itself, so the scalers only set the units. The floor is the training floor,
`preprocess.min_train_rows` observed bars per asset.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from finmoirai.data.features import features_from_lake
from finmoirai.data.lake import lake_years, list_assets
from finmoirai.data.preprocessing import TooFewTrainingRows
from finmoirai.evaluation.series import origins_for
from finmoirai.params.base import ParamsError
from finmoirai.params.data import ExtractConfig, MarketConfig, PreprocessConfig, SplitConfig
from finmoirai.params.evaluation import EvaluateConfig
from finmoirai.params.features import FeaturesConfig

logger = logging.getLogger(__name__)

WARMUP_HINT = "set evaluate.test_start later or evaluate.years to include earlier bars"
TEST_HINT = "set evaluate.test_start earlier or evaluate.years to include later bars"


def other_lake_selection(extract_cfg: ExtractConfig, cfg: EvaluateConfig) -> ExtractConfig:
    """extract's selection with evaluate's own years, symbols and asset classes where they are set."""
    return extract_cfg.replace(
        years=cfg.years or extract_cfg.years,
        symbols=cfg.symbols or extract_cfg.symbols,
        asset_classes=cfg.asset_classes or extract_cfg.asset_classes,
    )


def other_lake_features(features_cfg: FeaturesConfig, cfg: EvaluateConfig) -> FeaturesConfig:
    """The features recipe the models were trained with, on the other lake's proxy symbols
    (`evaluate.market_proxy`, for a vendor that names bitcoin BTCUSD where training said BTC)."""
    return features_cfg.replace(market_proxy={**features_cfg.market_proxy, **cfg.market_proxy})


def lake_features_for_scoring(lake: Path, selection: ExtractConfig, test_start: str, preprocess_cfg: PreprocessConfig,
                              features_cfg: FeaturesConfig, context_length: int, prediction_length: int,
                              work: Path, *, market: MarketConfig, strict: bool,
                              naive_timezone: str | None) -> pd.Timestamp:
    """extract -> preprocess -> features of a lake that is only scored, under `work` (the layout
    of `features_from_lake`), with the warm-up rule above; returns the test start (UTC).

    Each way this lake can be unfit for scoring is one line naming the lake, the asset, the
    numbers and the evaluate param to set; the main pipeline's own messages are unchanged."""
    lake, work = Path(lake), Path(work)
    split = SplitConfig.warmup_then_test(test_start)
    start = split.val_end_ts
    if lake.is_dir():
        have = lake_years(lake, selection)
        if have and not set(have) & set(selection.years):
            raise ParamsError(f"evaluate.lake_path {lake}: empty selection, no bars of years {selection.years} "
                              f"(asset_classes={selection.asset_classes} symbols={selection.symbols or 'all'}); "
                              f"set evaluate.years to years the lake has: {have}")
    _check_other_lake_proxies(lake, sorted(list_assets(lake, selection, strict, "evaluate.lake_path")), features_cfg)
    logger.info("lake %s: warm-up every selected bar before %s, test from it (%s)", lake, start, selection)
    try:
        features_from_lake(lake, selection, split, preprocess_cfg, features_cfg, work, market=market, strict=strict,
                           naive_timezone=naive_timezone)
    except TooFewTrainingRows as e:
        raise ParamsError(f"evaluate.lake_path {lake}: warm-up before evaluate.test_start too short: {e}; "
                          f"{WARMUP_HINT}") from None
    _check_test_windows(lake, work / "features", start, context_length, prediction_length)
    return start


def check_not_in_sample(lake: Path, selection: ExtractConfig, scored_symbols: list[str], test_start: pd.Timestamp,
                        trained_assets: list[dict], train_end: pd.Timestamp) -> None:
    """Refuse to score bars the models were trained on: a symbol of the lake that the models
    were trained on (data/features' manifest: its first bar) cannot be scored over any part of
    its training period (that first bar to split.train_end). Scored bars run from `test_start`
    to the end of the selection's last year. Checked before the lake's data stages run."""
    scored_end = pd.Timestamp(f"{max(selection.years) + 1}-01-01", tz="UTC")
    firsts = {a["symbol"]: pd.Timestamp(a["first"]) for a in trained_assets}
    overlap = sorted(s for s in scored_symbols if s in firsts and test_start < train_end and scored_end > firsts[s])
    if overlap:
        trained_from = min(firsts[s] for s in overlap)
        raise ParamsError(f"evaluate.lake_path {lake}: the scored period (evaluate.test_start {test_start} to "
                          f"{scored_end}) overlaps the models' training period of {', '.join(overlap)} "
                          f"({trained_from} to split.train_end {train_end}), which would score in-sample bars; "
                          f"set evaluate.test_start to {train_end.date()} or later, or leave {', '.join(overlap)} "
                          f"out of evaluate.symbols")


def _check_other_lake_proxies(lake: Path, pairs: list[tuple[str, str]], features_cfg: FeaturesConfig) -> None:
    """Cross-asset features need each class's market proxy, from the same lake and selection;
    features.market_proxy is the trained model's (with evaluate.market_proxy's names for this
    lake), so the fix is in the evaluate params."""
    symbols = sorted({symbol for _, symbol in pairs})
    for asset_class in sorted({c for c, _ in pairs}):
        proxy = features_cfg.market_proxy.get(asset_class)
        if proxy is None:
            raise ParamsError(f"evaluate.lake_path {lake}: asset class {asset_class} has no features.market_proxy "
                              f"(the model was trained with {features_cfg.market_proxy}); "
                              f"leave {asset_class} out of evaluate.asset_classes")
        if proxy not in symbols:
            raise ParamsError(f"evaluate.lake_path {lake}: market proxy {proxy} of asset class {asset_class} "
                              f"is not in the selection ({', '.join(symbols)}); add {proxy} to evaluate.symbols "
                              f"(the lake needs its bars for evaluate.years), set evaluate.market_proxy.{asset_class} "
                              f"to this lake's name for it, or leave {asset_class} out of evaluate.asset_classes")


def _check_test_windows(lake: Path, features_dir: Path, start: pd.Timestamp, context_length: int,
                        prediction_length: int) -> None:
    """At least one asset needs a full window (context + horizon) from the test start on."""
    bars = {}
    for asset in json.loads((features_dir / "manifest.json").read_text())["assets"]:
        timestamps = pd.read_parquet(features_dir / f"{asset['symbol']}.parquet", columns=["timestamp"])["timestamp"]
        before = int(pd.DatetimeIndex(timestamps).searchsorted(start))
        if len(origins_for(before, len(timestamps), context_length, prediction_length, 1)):
            return
        bars[asset["symbol"]] = (before, len(timestamps) - before)
    counts = ", ".join(f"{symbol} {after} bars from it ({before} before)" for symbol, (before, after) in bars.items())
    raise ParamsError(f"evaluate.lake_path {lake}: no asset has a full test window from evaluate.test_start {start} "
                      f"(context_length={context_length} bars before, prediction_length={prediction_length} from "
                      f"it): {counts}; {TEST_HINT}")
