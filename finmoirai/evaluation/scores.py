"""The evaluation's third step, per-window scores of sample forecasts (`score_windows`: sample
paths in, one row per model and window out), on one scale-free quantity for every asset class:
the cumulative log return over the horizon, in percent, from the last close before the origin
(the anchor every model's price paths start from) to the horizon's last bar.

Scoring returns rather than prices makes a BTC window and an EURUSD window comparable (a
price-level score tracks each asset's volatility relative to its price), keeps a heavy-tailed
model's point forecast finite (the mean of exponentiated returns need not exist; the median
of the return does), and scores exactly what a trader holds over the horizon.

Every score is per window, so the next step (finmoirai.evaluation.significance) can average
them per asset and per origin date, resample dates and test:

* `crps`: the exact sample CRPS of the S sample returns, scoringrules' `crps_ensemble` with
  the fair (unbiased) estimator, in its probability-weighted-moment form (`estimator="pwm"`:
  the same numbers to rounding, from sorted samples in O(S log S) instead of the O(S^2)
  pairwise form, which needs gigabytes for the per-step scores): the headline;
* `qloss`: the quantile (pinball) loss averaged over levels 0.1..0.9, twice it, as gluonts's
  weighted quantile loss is built (a coarse CRPS that never looks at the tails);
* `msis`: the 95% interval score scaled by the context's mean absolute horizon return;
* `coverage_<l>`: whether the central l-interval holds the realised return;
* `abs_error`, `sq_error`, `mase`: of the median forecast; MASE scales by the context's mean
  absolute horizon return, the error of the no-change forecast in-sample;
* `qlike`: QLIKE of the forecast variance of the horizon return (the sample variance)
  against the realised variance (the sum of squared bar returns over the horizon): what
  GARCH is built for. RV/F - log(RV/F) - 1, zero for a perfect variance forecast;
* `pit`: the probability integral transform of the realised return (ties randomised).

One quantile rule everywhere: numpy's default (linear interpolation between order statistics,
Hyndman-Fan type 7), for intervals, quantile losses and the median.

A window is scored when its horizon has an observed bar; truth and anchor are the last
observed close at or before the horizon's last bar and the origin (filled bars carry it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scoringrules
from tqdm import tqdm

from finmoirai.evaluation.series import Windows, carry_forward, usable_prices

QUANTILE_LEVELS = tuple(round(q, 1) for q in np.arange(0.1, 1.0, 0.1))
INTERVAL_LEVELS = (0.5, 0.8, 0.9, 0.95)
MSIS_ALPHA = 0.05
CRPS_ESTIMATOR = "pwm"  # the fair estimator's probability-weighted-moment form (module doc)
SCORE_NAMES = ("crps", "qloss", "msis", "abs_error", "sq_error", "mase", "qlike",
               *(f"coverage_{round(100 * level)}" for level in INTERVAL_LEVELS))


@dataclass(frozen=True)
class HorizonTruth:
    """What every model of one asset's windows is scored against."""

    returns: np.ndarray  # (W,) realised % log return, anchor -> last bar of the horizon; NaN: not scored
    step_returns: np.ndarray  # (W, H) realised cumulative % log return to each horizon step
    realised_variance: np.ndarray  # (W,) sum of squared % bar returns over the horizon
    scale: np.ndarray  # (W,) mean |horizon return| over the context (the MASE/MSIS scale)
    anchors: np.ndarray  # (W,) the close before each origin, which every path starts from


def horizon_truth(w: Windows, context_length: int, prediction_length: int) -> HorizonTruth:
    """The realised horizon returns of `w`'s windows, with their scales (see the module doc)."""
    s = w.series
    usable = usable_prices(s)
    carried = carry_forward(s.price, usable)
    log_price = np.log(carried)
    idx = w.origins[:, None] + np.arange(-1, prediction_length)[None, :]  # anchor bar, then the horizon
    path = 100.0 * (log_price[idx] - log_price[idx[:, :1]])  # (W, H + 1), 0 at the anchor
    scored = usable[idx[:, 1:]].any(axis=1) & np.isfinite(path[:, 0])
    bar_returns = np.diff(path, axis=1)
    context = w.origins[:, None] + np.arange(-context_length, 0)[None, :]
    ctx = log_price[context]
    moves = 100.0 * np.abs(ctx[:, prediction_length:] - ctx[:, :-prediction_length])
    with np.errstate(invalid="ignore"):
        scale = np.nanmean(np.where(np.isfinite(moves), moves, np.nan), axis=1) if moves.shape[1] else \
            np.full(len(w.origins), np.nan)
    returns = np.where(scored, path[:, -1], np.nan)
    return HorizonTruth(returns=returns, step_returns=np.where(scored[:, None], path[:, 1:], np.nan),
                        realised_variance=np.where(scored, np.nansum(bar_returns**2, axis=1), np.nan),
                        scale=scale, anchors=carried[idx[:, 0]])


def sample_returns(samples: np.ndarray, truth: HorizonTruth) -> np.ndarray:
    """(W, S, H) cumulative % log returns of sample price paths from the anchor."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * np.log(samples / truth.anchors[:, None, None])


def quantiles(samples: np.ndarray, levels: tuple[float, ...] | list[float], axis: int = 1) -> np.ndarray:
    """The evaluation's one quantile rule (numpy's linear, type 7); levels first."""
    return np.quantile(samples, levels, axis=axis)


def window_scores(paths: np.ndarray, truth: HorizonTruth) -> dict[str, np.ndarray]:
    """Every per-window score (module doc) of sample return paths (W, S, H) against the truth;
    NaN where the window is not scored."""
    y = truth.returns
    scored = np.isfinite(y)
    x = paths[:, :, -1]  # (W, S) horizon returns
    y0 = np.where(scored, y, 0.0)  # scored windows only; NaN is put back below
    crps = scoringrules.crps_ensemble(y0, x, m_axis=-1, estimator=CRPS_ESTIMATOR)
    qs = quantiles(x, QUANTILE_LEVELS)  # (Q, W)
    levels = np.asarray(QUANTILE_LEVELS)[:, None]
    qloss = (2.0 * np.abs((y0[None] - qs) * ((qs >= y0[None]) - levels))).mean(axis=0)
    lo, hi = quantiles(x, [MSIS_ALPHA / 2, 1 - MSIS_ALPHA / 2])
    interval = (hi - lo) + 2.0 / MSIS_ALPHA * ((lo - y0) * (y0 < lo) + (y0 - hi) * (y0 > hi))
    median = quantiles(x, [0.5])[0]
    forecast_var = x.var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = truth.realised_variance / forecast_var
        qlike = np.where((ratio > 0) & np.isfinite(ratio), ratio - np.log(ratio) - 1.0, np.nan)
        out = {"crps": crps, "qloss": qloss, "msis": interval / truth.scale, "abs_error": np.abs(y0 - median),
               "sq_error": (y0 - median) ** 2, "mase": np.abs(y0 - median) / truth.scale, "qlike": qlike}
    for level in INTERVAL_LEVELS:
        a, b = quantiles(x, [(1 - level) / 2, (1 + level) / 2])
        out[f"coverage_{round(100 * level)}"] = ((y0 >= a) & (y0 <= b)).astype(np.float64)
    return {name: np.where(scored, values, np.nan) for name, values in out.items()}


def crps_per_step(paths: np.ndarray, truth: HorizonTruth) -> np.ndarray:
    """(W, H) exact CRPS of the cumulative return to each horizon step; NaN where not scored."""
    obs = np.where(np.isfinite(truth.returns)[:, None], truth.step_returns, np.nan)
    steps = scoringrules.crps_ensemble(np.nan_to_num(obs), np.moveaxis(paths, 1, -1), m_axis=-1,
                                       estimator=CRPS_ESTIMATOR)  # (W, H)
    return np.where(np.isfinite(obs), steps, np.nan)


def pit_values(paths: np.ndarray, truth: HorizonTruth, seed: int) -> np.ndarray:
    """(W,) PIT of each window's realised horizon return (NaN where not scored): the share of
    samples below it plus a uniform share of those equal to it (a point forecast's ties still
    give uniform PIT)."""
    x, y = paths[:, :, -1], truth.returns
    below = (x < y[:, None]).mean(axis=1)
    equal = (x == y[:, None]).mean(axis=1)
    return np.where(np.isfinite(y), below + np.random.default_rng(seed).random(len(y)) * equal, np.nan)


def trading_signal(paths: np.ndarray, step: int) -> dict[str, np.ndarray]:
    """What the trading rule (finmoirai.evaluation.trading) decides on, per window, as simple
    returns to horizon step `step`: the median forecast, its interquartile range, and the
    Monte-Carlo standard error of that median from S samples, (Q(1/2 + 1/(2 sqrt S)) -
    Q(1/2 - 1/(2 sqrt S))) / 2 (the order-statistic estimate of 1 / (2 f(median) sqrt S):
    1.2533 sd / sqrt S for a normal)."""
    x = np.expm1(paths[:, :, step] / 100.0)
    half = 0.5 / np.sqrt(x.shape[1])
    q25, q50, q75, lo, hi = quantiles(x, [0.25, 0.5, 0.75, 0.5 - half, 0.5 + half])
    return {"signal_return": q50, "signal_iqr": q75 - q25, "signal_se": (hi - lo) / 2.0}


WINDOW_COLUMNS = ("model", "symbol", "asset_class", "origin", "day")


def step_columns(prediction_length: int) -> list[str]:
    return [f"crps_step_{h:03d}" for h in range(1, prediction_length + 1)]


def score_windows(windows: Sequence[Windows], fns: dict[str, Callable[[Any, np.ndarray, int], np.ndarray]],
                  seed: int, context_length: int, prediction_length: int, stride: int,
                  keep: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]], dict[str, float]]:
    """Every model's sample paths on every window, scored as they are drawn (the paths of one
    asset and model are dropped once scored): one row per model and window with the window's
    keys, every score of `window_scores`, the PIT, the trading signal to the holding step
    min(stride, H) and the CRPS of each horizon step. Also returns the sample paths of the
    models in `keep` (per asset: the fan charts) and the seconds spent per model.

    Asset n's windows draw with seed + n for every model, so an asset's samples do not depend
    on which other assets or models are scored."""
    hold = min(stride, prediction_length)
    rows, kept = [], {name: {} for name in keep}
    seconds = dict.fromkeys(fns, 0.0)
    steps = step_columns(prediction_length)
    for n, w in enumerate(tqdm(windows, desc="forecast and score assets", unit="asset")):
        truth = horizon_truth(w, context_length, prediction_length)
        days = w.series.timestamps[w.origins].tz_convert("UTC").floor("D").asi8
        for name, fn in fns.items():
            started = time.monotonic()
            samples = fn(w.series, w.origins, seed + n)
            seconds[name] += time.monotonic() - started
            if name in kept:
                kept[name][w.series.symbol] = samples
            paths = sample_returns(samples, truth)
            frame = pd.DataFrame({"model": name, "symbol": w.series.symbol, "asset_class": w.series.asset_class,
                                  "origin": w.origins.astype(np.int64), "day": days}
                                 | window_scores(paths, truth) | {"pit": pit_values(paths, truth, seed=0)}
                                 | trading_signal(paths, hold - 1))
            rows.append(pd.concat([frame, pd.DataFrame(crps_per_step(paths, truth), columns=steps)], axis=1))
    return pd.concat(rows, ignore_index=True), kept, seconds


def pit_histogram(pit: np.ndarray, bins: int = 10) -> np.ndarray:
    """Counts of PIT values in `bins` equal bins of [0, 1]: flat when calibrated, U-shaped
    when intervals are too narrow, hump-shaped when too wide."""
    counts, _ = np.histogram(np.asarray(pit, dtype=np.float64), bins=bins, range=(0.0, 1.0))
    return counts
