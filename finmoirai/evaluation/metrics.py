"""Scores of every model on the same windows, in price units: gluonts's metrics (CRPS as
`MeanWeightedSumQuantileLoss` over quantiles 0.1..0.9, MSIS (alpha 0.05), MSE, MAE, MASE with
seasonality 1, the random-walk scale that finance uses), calibration, skill vs the EWMA random
walk with its bootstrap interval and Diebold-Mariano test, and the trading rule's metrics.
Bars that were filled in preprocessing are not scored (NaN labels are masked by gluonts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from gluonts.ev.metrics import MAE, MASE, MSE, MSIS, MeanWeightedSumQuantileLoss
from gluonts.model.evaluation import evaluate_forecasts
from gluonts.model.forecast import SampleForecast

from finmoirai.evaluation import calibration, significance, trading
from finmoirai.evaluation.series import Windows, window_prices
from finmoirai.params import HEADLINE_BASELINE, EvaluateConfig

QUANTILES = tuple(round(q, 1) for q in np.arange(0.1, 1.0, 0.1))
METRIC_NAMES = {
    "mean_weighted_sum_quantile_loss": "crps",
    "MSIS": "msis",
    "MSE[mean]": "mse",
    "MAE[0.5]": "mae",
    "MASE[0.5]": "mase",
}


class _TestData:
    """The two iterables gluonts's evaluate_forecasts reads from a TestData."""

    def __init__(self, inputs: list[dict[str, Any]], labels: list[dict[str, Any]]) -> None:
        self.input = inputs
        self.label = labels


def gluonts_metrics(windows: Sequence[Windows], model: str, context_length: int,
                    prediction_length: int) -> dict[str, float]:
    """gluonts metrics of `model` over all windows of the given assets (pooled)."""
    inputs, labels, forecasts = [], [], []
    for w in windows:
        s = w.series
        contexts = window_prices(w, -context_length, 0)
        truths = window_prices(w, 0, prediction_length)
        for origin, paths, context, truth in zip(w.origins, w.samples[model], contexts, truths):
            start = pd.Period(s.timestamps[origin].tz_convert(None), freq="h")
            inputs.append({"target": context, "start": start - context_length, "item_id": s.symbol})
            labels.append({"target": truth, "start": start, "item_id": s.symbol})
            forecasts.append(SampleForecast(samples=paths, start_date=start, item_id=s.symbol))
    metrics = [MSE(), MAE(), MASE(), MSIS(alpha=0.05), MeanWeightedSumQuantileLoss(quantile_levels=QUANTILES)]
    frame = evaluate_forecasts(forecasts, test_data=_TestData(inputs, labels), metrics=metrics, seasonality=1)
    row = frame.iloc[0]
    return {METRIC_NAMES[name]: float(row[name]) for name in METRIC_NAMES}


def summarise(windows: Sequence[Windows], models: Sequence[str], context_length: int, prediction_length: int,
              cfg: EvaluateConfig) -> dict[str, Any]:
    """Every number the report shows, per model: pooled, per asset, per step, calibration, trading."""
    result: dict[str, Any] = {"models": {}, "per_asset": {}, "per_step": {}, "coverage": {}, "pit": {}, "equity": {}}
    truths = [window_prices(w, 0, prediction_length) for w in windows]
    truth = np.concatenate(truths)
    for model in models:
        pooled = gluonts_metrics(windows, model, context_length, prediction_length)
        per_asset = {w.series.symbol: gluonts_metrics([w], model, context_length, prediction_length) for w in windows}
        pooled["crps_asset_mean"] = float(np.mean([m["crps"] for m in per_asset.values()]))
        samples = np.concatenate([w.samples[model] for w in windows])
        coverage = calibration.interval_coverage(samples, truth)
        pooled |= {f"coverage_{int(round(level * 100))}": float(v) for level, v in coverage.items()}
        result["coverage"][model] = {float(k): float(v) for k, v in coverage.items()}
        pit = calibration.pit_values(samples, truth, seed=0)
        result["pit"][model] = [int(c) for c in calibration.pit_histogram(pit)]
        result["per_step"][model] = np.mean(
            [calibration.quantile_crps_per_step(w.samples[model], t) for w, t in zip(windows, truths)], axis=0
        ).tolist()
        trades = {w.series.symbol: asset_trading(w, model, cfg) for w in windows}
        for symbol, (metrics, _) in trades.items():
            per_asset[symbol] |= metrics
        pooled |= {f"{k}": float(np.nanmean([m[k] for m, _ in trades.values()])) for k in TRADING_KEYS}
        result["equity"][model] = portfolio_returns([r for _, r in trades.values()])
        result["models"][model] = pooled
        for symbol, values in per_asset.items():
            result["per_asset"].setdefault(symbol, {})[model] = values
    reference = result["models"][HEADLINE_BASELINE]["crps_asset_mean"]
    for model, values in result["models"].items():
        values["skill"] = 1.0 - values["crps_asset_mean"] / reference
    result["significance"] = {model: significance_vs_reference(windows, truths, model, 0, prediction_length, cfg.stride)
                              for model in models if model != HEADLINE_BASELINE}
    return result


BOOTSTRAP_BLOCK_DAYS = 5  # losses cluster with volatility over days
BOOTSTRAP_REPLICATES = 2000
DM_MAX_LAG = 4  # Newey-West lags (days) of the Diebold-Mariano variance, for the same clustering


def significance_vs_reference(windows: Sequence[Windows], truths: Sequence[np.ndarray], model: str,
                              seed: int, prediction_length: int, stride: int) -> dict[str, float]:
    """95% block-bootstrap interval of `model`'s skill vs the reference (RW-EWMA) and the
    Diebold-Mariano test of its per-window CRPS against the reference's.

    Both work on the calendar date of the forecast origin, shared by every asset (equity bars
    sit at :30, crypto and FX at :00, so exact timestamps would never line up): the bootstrap
    resamples blocks of dates for all assets at once, and the DM test runs on the daily
    cross-sectional mean of the per-window CRPS (scale-free, so assets weigh alike). When
    windows overlap (stride < horizon), blocks and lags grow to cover the overlap."""
    overlap = max(0, math.ceil(prediction_length / stride) - 1)
    per_asset = []
    for w, truth in zip(windows, truths):
        model_loss, weight = calibration.window_quantile_loss(w.samples[model], truth)
        reference_loss, _ = calibration.window_quantile_loss(w.samples[HEADLINE_BASELINE], truth)
        keep = weight > 0  # a window whose bars were all filled has nothing to score
        days = w.series.timestamps[w.origins[keep]].tz_convert("UTC").floor("D").asi8
        per_asset.append((days, model_loss[keep], reference_loss[keep], weight[keep]))
    all_days = np.unique(np.concatenate([days for days, *_ in per_asset]))
    panel = np.zeros((3, len(per_asset), len(all_days)))
    for row, (days, *losses) in enumerate(per_asset):
        column = np.searchsorted(all_days, days)
        for k, values in enumerate(losses):
            np.add.at(panel[k, row], column, values)
    skill, lo, hi = significance.panel_skill_interval(*panel, block_length=max(BOOTSTRAP_BLOCK_DAYS, overlap + 1),
                                                      n_boot=BOOTSTRAP_REPLICATES, seed=seed)
    _, loss_model, loss_ref = significance.loss_differential_by_time(
        [days for days, *_ in per_asset], [m / w for _, m, _, w in per_asset], [r / w for _, _, r, w in per_asset])
    if len(loss_model) < 3:  # too few origin dates for a test: say so rather than guess
        dm = {"statistic": None, "p_value": None, "n": len(loss_model)}
    else:
        lags = min(max(DM_MAX_LAG, overlap), len(loss_model) - 2)
        dm = significance.diebold_mariano(loss_model, loss_ref, max_lag=lags)
    return {"skill": skill, "skill_lo": lo, "skill_hi": hi, "dm_stat": dm["statistic"], "dm_p": dm["p_value"],
            "dm_n": int(dm["n"])}


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
