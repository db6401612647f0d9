"""From forecast windows to every number the report shows, one step after another:

windows (sample price paths per model) -> `score_assets`: per-window scores of the horizon's
% log return (finmoirai.evaluation.scores) -> `summarise`: per-asset means, the date panel,
the headline skill of every model vs `evaluate.reference` with its interval and test, skill
vs every baseline, the model confidence set, calibration, per-step CRPS and the trading rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from finmoirai.evaluation import scores, significance, trading
from finmoirai.evaluation.series import Windows
from finmoirai.params import BASELINES, EvaluateConfig


@dataclass
class AssetScores:
    """Every model's per-window scores on one asset's windows."""

    symbol: str
    days: np.ndarray  # (W,) UTC day of each origin (int64 ns): the panel's time axis
    windows: dict[str, dict[str, np.ndarray]]  # model -> score -> (W,)
    per_step: dict[str, np.ndarray]  # model -> (H,) mean CRPS of the cumulative return to each step
    pit: dict[str, np.ndarray]  # model -> PIT of each scored window

    def mean(self, model: str) -> dict[str, float]:
        return {name: _nanmean(values) for name, values in self.windows[model].items()}


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def score_assets(windows: Sequence[Windows], models: Sequence[str], context_length: int,
                 prediction_length: int) -> list[AssetScores]:
    """Per-window scores of every model on every asset (the evaluation's second step)."""
    out = []
    for w in windows:
        truth = scores.horizon_truth(w, context_length, prediction_length)
        per_window, per_step, pit = {}, {}, {}
        for model in models:
            paths = scores.sample_returns(w, model, truth)
            per_window[model] = scores.window_scores(paths, truth)
            per_step[model] = scores.crps_per_step(paths, truth)
            pit[model] = scores.pit_values(paths, truth, seed=0)
        days = w.series.timestamps[w.origins].tz_convert("UTC").floor("D").asi8
        out.append(AssetScores(w.series.symbol, days, per_window, per_step, pit))
    return out


def date_panels(assets: Sequence[AssetScores], models: Sequence[str], score: str = "crps") -> dict[str, np.ndarray]:
    """{model: (dates, assets) panel of `score`} (finmoirai.evaluation.significance.date_panel)."""
    _, panels = significance.date_panel([a.days for a in assets],
                                        {m: [a.windows[m][score] for a in assets] for m in models})
    return panels


def overlap(prediction_length: int, stride: int) -> int:
    """How many later origins a window's horizon reaches: its losses are correlated that far."""
    return max(0, math.ceil(prediction_length / stride) - 1)


def headline(assets: Sequence[AssetScores], model: str, reference: str, prediction_length: int, stride: int,
             seed: int = 0) -> dict[str, Any]:
    """`model`'s skill vs `reference` on exact CRPS, geometric over assets, with its bootstrap
    interval and Diebold-Mariano test on the same date panel, and the number of windows."""
    panels = date_panels(assets, [model, reference])
    test = significance.skill_test(panels[model], panels[reference], seed=seed,
                                   overlap=overlap(prediction_length, stride))
    windows = int(sum(np.isfinite(a.windows[model]["crps"]).sum() for a in assets))
    return {"windows": windows} | test


def summarise(windows: Sequence[Windows], models: Sequence[str], context_length: int, prediction_length: int,
              cfg: EvaluateConfig) -> dict[str, Any]:
    """Every number the report shows, per model: means over assets of the per-asset means,
    skill (geometric, vs every baseline), significance vs the reference, the model confidence
    set, per asset, per step, calibration and trading."""
    assets = score_assets(windows, models, context_length, prediction_length)
    reference = cfg.reference
    panels = date_panels(assets, models)
    lag = overlap(prediction_length, cfg.stride)
    result: dict[str, Any] = {"reference": reference, "models": {}, "per_asset": {}, "per_step": {}, "coverage": {},
                              "pit": {}, "equity": {}, "skill_vs": {}}
    for model in models:
        per_asset = {a.symbol: a.mean(model) for a in assets}
        pooled = {name: _nanmean([m[name] for m in per_asset.values()]) for name in scores.SCORE_NAMES}
        pooled["skill"] = significance.geometric_skill(panels[model], panels[reference])
        result["skill_vs"][model] = {b: significance.geometric_skill(panels[model], panels[b])
                                     for b in models if b in BASELINES and b != model}
        result["coverage"][model] = {level: pooled[f"coverage_{round(100 * level)}"]
                                     for level in scores.INTERVAL_LEVELS}
        result["pit"][model] = [int(c) for c in scores.pit_histogram(np.concatenate([a.pit[model]
                                                                                         for a in assets]))]
        result["per_step"][model] = np.nanmean([a.per_step[model] for a in assets], axis=0).tolist()
        trades = {w.series.symbol: asset_trading(w, model, cfg) for w in windows}
        for symbol, (metrics, _) in trades.items():
            per_asset[symbol] |= metrics
        pooled |= {k: float(np.nanmean([m[k] for m, _ in trades.values()])) for k in TRADING_KEYS}
        result["equity"][model] = portfolio_returns([r for _, r in trades.values()])
        result["models"][model] = pooled
        for symbol, values in per_asset.items():
            result["per_asset"].setdefault(symbol, {})[model] = values
    result["significance"] = {
        model: significance.skill_test(panels[model], panels[reference], seed=0, overlap=lag)
        for model in models if model != reference}
    result["mcs"] = significance.model_confidence_set(panels, panels[reference], seed=0, overlap=lag)
    return result


TRADING_KEYS = ("directional_accuracy", "sharpe", "max_drawdown", "turnover")


def asset_trading(w: Windows, model: str, cfg: EvaluateConfig) -> tuple[dict[str, float], pd.Series]:
    """Trading metrics of the documented rule on one asset (see finmoirai.evaluation.trading)."""
    returns, positions, info = trading.strategy_returns(
        w.series, w.origins, w.samples[model], stride=cfg.stride, cost_bps=cfg.transaction_cost_bps, sizing=cfg.sizing
    )
    metrics = trading.trading_metrics(returns, positions, trading.periods_per_year(w.series.asset_class), info)
    return {k: float(metrics[k]) for k in TRADING_KEYS}, returns


def portfolio_returns(returns: Sequence[pd.Series]) -> pd.Series:
    """Equal-weight portfolio of the per-asset strategies (an asset earns 0 off its calendar)."""
    frame = pd.concat(list(returns), axis=1).fillna(0.0)
    return frame.mean(axis=1).sort_index()
