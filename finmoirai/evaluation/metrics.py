"""The evaluation's fourth step, from per-window scores to every number the report shows:

the score table (finmoirai.evaluation.scores.score_windows: one row per model and window, the
model's own and the baselines stage's rows together) -> `summarise`: per-asset means, the
date panel, the headline skill of every model vs `evaluate.reference` with its interval and
test, skill vs every baseline, the model confidence set, calibration, per-step CRPS, and the
trading rule with buy-and-hold beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from finmoirai.errors import DataError
from finmoirai.evaluation import scores, significance, trading
from finmoirai.evaluation.series import Windows
from finmoirai.params.evaluation import BASELINES, EvaluateConfig

BUY_AND_HOLD = "buy_and_hold"


def models_of(table: pd.DataFrame) -> list[str]:
    """The models of a score table, in the order they were scored."""
    return list(dict.fromkeys(table["model"]))


def check_same_windows(table: pd.DataFrame, where: str) -> None:
    """Every model must be scored on exactly the same (asset, origin) windows, or skill and the
    tests compare different things: a baselines table scored under other window params is
    stale, and is named rather than joined."""
    keys = {m: set(zip(g["symbol"], g["origin"])) for m, g in table.groupby("model", sort=False)}
    first = next(iter(keys))
    for model, k in keys.items():
        if k != keys[first]:
            extra, missing = sorted(k - keys[first])[:3], sorted(keys[first] - k)[:3]
            raise DataError(f"{where}: {model} was scored on other windows than {first} (e.g. only {model}: "
                            f"{extra}, only {first}: {missing}); run `dvc repro` so that both follow the same "
                            "context_length, prediction_length, evaluate.stride and split")


def date_panels(table: pd.DataFrame, models: Sequence[str], score: str = "crps") -> dict[str, np.ndarray]:
    """{model: (dates, assets) panel of `score`} (finmoirai.evaluation.significance.date_panel)."""
    symbols = list(dict.fromkeys(table["symbol"]))
    by = {(m, s): g for (m, s), g in table.groupby(["model", "symbol"], sort=False)}
    days = [by[(models[0], s)]["day"].to_numpy() for s in symbols]
    _, panels = significance.date_panel(days, {m: [by[(m, s)][score].to_numpy() for s in symbols] for m in models})
    return panels


def overlap(prediction_length: int, stride: int) -> int:
    """How many later origins a window's horizon reaches: its losses are correlated that far."""
    return max(0, math.ceil(prediction_length / stride) - 1)


def headline(table: pd.DataFrame, model: str, reference: str, prediction_length: int, stride: int,
             seed: int = 0) -> dict[str, Any]:
    """`model`'s skill vs `reference` on exact CRPS, geometric over assets, with its bootstrap
    interval and Diebold-Mariano test on the same date panel, and the number of windows."""
    panels = date_panels(table, [model, reference])
    test = significance.skill_test(panels[model], panels[reference], seed=seed,
                                   overlap=overlap(prediction_length, stride))
    windows = int(np.isfinite(table.loc[table["model"] == model, "crps"]).sum())
    qlike = float(per_asset_means(table[table["model"] == model], ["qlike"])["qlike"].mean())
    return {"windows": windows} | test | {"qlike": qlike}


def per_asset_means(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean of `columns` per (model, symbol) over the scored windows (NaN: not scored)."""
    return table.groupby(["model", "symbol"], sort=False)[list(columns)].mean()


def summarise(table: pd.DataFrame, windows: Sequence[Windows], cfg: EvaluateConfig,
              prediction_length: int) -> dict[str, Any]:
    """Every number the report shows, per model: means over assets of the per-asset means,
    skill (geometric, vs every baseline), significance vs the reference, the model confidence
    set, per asset, per step, calibration, and trading beside buy-and-hold."""
    models, reference = models_of(table), cfg.reference
    check_same_windows(table, "the score table")
    panels = date_panels(table, models)
    lag = overlap(prediction_length, cfg.stride)
    means = per_asset_means(table, [*scores.SCORE_NAMES, *scores.step_columns(prediction_length)])
    rows = {key: group.sort_values("origin") for key, group in table.groupby(["model", "symbol"], sort=False)}
    result: dict[str, Any] = {"reference": reference, "models": {}, "per_asset": {}, "per_step": {}, "coverage": {},
                              "pit": {}, "equity": {}, "skill_vs": {}}
    for model in models:
        per_asset = {symbol: row[list(scores.SCORE_NAMES)].to_dict() for symbol, row in means.loc[model].iterrows()}
        pooled = {name: float(means.loc[model, name].mean()) for name in scores.SCORE_NAMES}
        pooled["skill"] = significance.geometric_skill(panels[model], panels[reference])
        result["skill_vs"][model] = {b: significance.geometric_skill(panels[model], panels[b])
                                     for b in models if b in BASELINES and b != model}
        result["coverage"][model] = {level: pooled[f"coverage_{round(100 * level)}"]
                                     for level in scores.INTERVAL_LEVELS}
        pit = table.loc[table["model"] == model, "pit"].to_numpy()
        result["pit"][model] = [int(c) for c in scores.pit_histogram(pit[np.isfinite(pit)])]
        result["per_step"][model] = means.loc[model, scores.step_columns(prediction_length)].mean().tolist()
        trades = {w.series.symbol: asset_trading(w, rows[model, w.series.symbol], cfg, prediction_length)
                  for w in windows}
        pooled |= pool_trading(trades, per_asset)
        result["equity"][model] = portfolio_returns([r for _, r in trades.values()])
        result["models"][model] = pooled
        for symbol, values in per_asset.items():
            result["per_asset"].setdefault(symbol, {})[model] = values
    holding = {w.series.symbol: asset_buy_and_hold(w, cfg, prediction_length) for w in windows}
    result["buy_and_hold"] = pool_trading(holding, {})
    result["equity"][BUY_AND_HOLD] = portfolio_returns([r for _, r in holding.values()])
    result["significance"] = {
        model: significance.skill_test(panels[model], panels[reference], seed=0, overlap=lag)
        for model in models if model != reference}
    result["mcs"] = significance.model_confidence_set(panels, panels[reference], seed=0, overlap=lag)
    return result


TRADING_KEYS = ("directional_accuracy", "sharpe", "sharpe_se", "exposure", "max_drawdown", "turnover")


def pool_trading(trades: dict[str, tuple[dict[str, float], pd.Series]],
                 per_asset: dict[str, dict[str, float]]) -> dict[str, float]:
    """Means over assets of the trading metrics (added to `per_asset` too)."""
    for symbol, (metrics, _) in trades.items():
        per_asset.setdefault(symbol, {}).update(metrics)
    return {k: float(np.nanmean([m[k] for m, _ in trades.values()])) for k in TRADING_KEYS}


def _cost(w: Windows, cfg: EvaluateConfig) -> float:
    return cfg.transaction_cost_bps[w.series.asset_class]


def asset_trading(w: Windows, rows: pd.DataFrame, cfg: EvaluateConfig, prediction_length: int) -> tuple[
        dict[str, float], pd.Series]:
    """Trading metrics of the documented rule on one asset (see finmoirai.evaluation.trading)."""
    returns, book, info = trading.strategy_returns(w.series, w.origins, rows, hold=min(cfg.stride, prediction_length),
                                                   cost_bps=_cost(w, cfg), sizing=cfg.sizing)
    metrics = trading.trading_metrics(returns, book, trading.periods_per_year(w.series), info)
    return {k: float(metrics[k]) for k in TRADING_KEYS}, returns


def asset_buy_and_hold(w: Windows, cfg: EvaluateConfig, prediction_length: int) -> tuple[dict[str, float], pd.Series]:
    """Buy-and-hold's metrics over the same bars as the rule."""
    returns, book, info = trading.buy_and_hold(w.series, w.origins, min(cfg.stride, prediction_length), _cost(w, cfg))
    metrics = trading.trading_metrics(returns, book, trading.periods_per_year(w.series), info)
    return {k: float(metrics[k]) for k in TRADING_KEYS}, returns


def portfolio_returns(returns: Sequence[pd.Series]) -> pd.Series:
    """Equal-weight portfolio of the per-asset strategies (an asset earns 0 off its calendar)."""
    frame = pd.concat(list(returns), axis=1).fillna(0.0)
    return frame.mean(axis=1).sort_index()
