"""Is a skill score different from zero, or just noise? The headline and its uncertainty,
all from one panel: per origin date and asset, the mean per-window score of each model.

* `geometric_skill`: 1 - the geometric mean over assets of the per-asset score ratios
  (model / reference). Each asset counts once, whatever its volatility: a ratio of means
  would let the most volatile assets decide.
* `skill_test`: a circular block bootstrap interval of that skill, resampling origin dates
  jointly for every asset (assets move together on the same dates, and losses cluster in
  time), with the block length chosen from the data (Politis-White, `arch`'s
  `optimal_block_length`); and the Diebold-Mariano test on the same panel reduced to one
  series: per date, the mean over assets of (model - reference) / the reference's mean on
  that asset. Scaling by the reference's per-asset mean makes each asset weigh alike, as in
  the skill, so interval and test answer one question.
* `model_confidence_set`: Hansen-Lunde-Nason's MCS over every model (`arch.bootstrap.MCS`)
  on the same normalised per-date losses: which models cannot be told apart from the best.

Deterministic given the seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from arch.bootstrap import MCS, CircularBlockBootstrap, optimal_block_length
from scipy.stats import t as student_t

logger = logging.getLogger(__name__)

__all__ = ["date_panel", "diebold_mariano", "geometric_skill", "model_confidence_set", "skill_test"]

BOOTSTRAP_REPLICATES = 2000
MCS_SIZE = 0.10  # models outside the set are worse than the best at the 10% level
DM_MIN_LAG = 4  # Newey-West lags (days) of the Diebold-Mariano variance at least
MIN_BLOCK_SELECTION = 10  # dates needed to choose a block length from the data (arch fails below 8)


def date_panel(days: Sequence[np.ndarray], losses: dict[str, Sequence[np.ndarray]]) -> tuple[np.ndarray,
                                                                                              dict[str, np.ndarray]]:
    """(sorted dates, {model: (dates, assets) mean loss}) from one array per asset of origin
    dates and, per model, per-window losses (NaN: not scored). A cell is NaN where the asset
    has no scored window on that date."""
    all_days = np.unique(np.concatenate([np.asarray(d) for d in days]))
    panels = {}
    for model, per_asset in losses.items():
        total = np.zeros((len(all_days), len(days)))
        count = np.zeros_like(total)
        for a, (d, loss) in enumerate(zip(days, per_asset, strict=True)):
            keep = np.isfinite(loss)
            rows = np.searchsorted(all_days, np.asarray(d)[keep])
            np.add.at(total[:, a], rows, loss[keep])
            np.add.at(count[:, a], rows, 1.0)
        with np.errstate(invalid="ignore"):
            panels[model] = np.where(count > 0, total / np.maximum(count, 1.0), np.nan)
    return all_days, panels


def _asset_means(panel: np.ndarray) -> np.ndarray:
    counts = np.isfinite(panel).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.nansum(panel, axis=0) / np.maximum(counts, 1), np.nan)


def geometric_skill(model: np.ndarray, reference: np.ndarray) -> float:
    """1 - exp(mean over assets of log(mean model loss / mean reference loss)); panels are
    (dates, assets). Assets without a finite, positive ratio are left out."""
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log(_asset_means(model) / _asset_means(reference))
    log_ratio = log_ratio[np.isfinite(log_ratio)]
    return float(1.0 - np.exp(log_ratio.mean())) if log_ratio.size else float("nan")


def normalised_by_reference(panel: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(dates,) per date, the mean over the assets present of panel / the reference's mean loss
    of that asset (so an asset's losses are in units of the reference's, and weigh alike)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = panel / _asset_means(reference)[None, :]
        counts = np.isfinite(scaled).sum(axis=1)
        return np.where(counts > 0, np.nansum(scaled, axis=1) / np.maximum(counts, 1), np.nan)


def block_length(series: np.ndarray, minimum: int = 1) -> int:
    """The circular block bootstrap's block length for `series` (Politis-White 2004, with
    Patton-Politis-White's correction, via arch), rounded up, at least `minimum`."""
    series = np.asarray(series, dtype=np.float64)
    series = series[np.isfinite(series)]
    if len(series) < MIN_BLOCK_SELECTION or np.ptp(series) == 0:  # too short to estimate autocorrelations
        return max(1, minimum)
    chosen = float(optimal_block_length(series)["circular"].iloc[0])
    return max(minimum, int(math.ceil(chosen)) if math.isfinite(chosen) else 1)


def skill_test(model: np.ndarray, reference: np.ndarray, seed: int, overlap: int = 0,
               reps: int = BOOTSTRAP_REPLICATES, level: float = 0.95) -> dict[str, float | int | None]:
    """The geometric skill of `model` vs `reference` ((dates, assets) panels), its bootstrap
    interval and the Diebold-Mariano test, on the same panel (module doc). `overlap`: how many
    later origins a window's horizon reaches (stride < horizon), the least lag and block."""
    skill = geometric_skill(model, reference)
    m, r = normalised_by_reference(model, reference), normalised_by_reference(reference, reference)
    dated = np.isfinite(m) & np.isfinite(r)
    d = (m - r)[dated]
    block = block_length(d, minimum=overlap + 1)
    out: dict[str, float | int | None] = {"skill": skill, "skill_lo": None, "skill_hi": None, "dm_stat": None,
                                          "dm_p": None, "dm_n": int(dated.sum()), "block_days": block}
    if dated.sum() < 3:
        return out  # too few origin dates for an interval or a test: say so rather than guess
    bootstrap = CircularBlockBootstrap(block, model[dated], reference[dated], seed=seed)
    draws = bootstrap.apply(lambda a, b: np.array([geometric_skill(a, b)]), reps=reps)[:, 0]
    draws = draws[np.isfinite(draws)]
    if draws.size:
        out["skill_lo"], out["skill_hi"] = (float(v) for v in np.quantile(draws, [(1 - level) / 2, (1 + level) / 2]))
    lags = min(max(DM_MIN_LAG, overlap), len(d) - 2)
    dm = diebold_mariano(m[dated], r[dated], max_lag=lags)
    out["dm_stat"], out["dm_p"] = dm["statistic"], dm["p_value"]
    return out


def model_confidence_set(panels: dict[str, np.ndarray], reference: np.ndarray, seed: int, overlap: int = 0,
                         reps: int = BOOTSTRAP_REPLICATES // 2, size: float = MCS_SIZE) -> dict[str, dict]:
    """{model: {"p_value", "in_set"}}: Hansen, Lunde and Nason's model confidence set (range
    statistic, circular block bootstrap) on each model's per-date loss in units of the
    reference's per-asset mean. A model is in the set when its MCS p-value is above `size`."""
    losses = pd.DataFrame({name: normalised_by_reference(p, reference) for name, p in panels.items()}).dropna()
    if len(losses) < 3 or losses.shape[1] < 2:
        return {name: {"p_value": None, "in_set": None} for name in panels}
    block = block_length(losses.mean(axis=1).to_numpy() - losses.mean(axis=1).mean(), minimum=overlap + 1)
    mcs = MCS(losses, size=size, reps=reps, block_size=block, method="R", bootstrap="circular", seed=seed)
    mcs.compute()
    pvalues = mcs.pvalues["Pvalue"]
    return {name: {"p_value": float(pvalues[name]), "in_set": bool(name in mcs.included)} for name in panels}


def _newey_west_variance(d: np.ndarray, max_lag: int) -> float:
    """Long-run variance of d: autocovariances (1/n normalised) at lags 0..max_lag with Bartlett
    weights 1 - k/(max_lag + 1), which keep the estimate non-negative."""
    n = len(d)
    e = d - d.mean()
    lrv = float(e @ e) / n
    for k in range(1, max_lag + 1):
        lrv += 2.0 * (1.0 - k / (max_lag + 1)) * float(e[k:] @ e[:-k]) / n
    return lrv


def diebold_mariano(loss_model: np.ndarray, loss_ref: np.ndarray, max_lag: int = 0) -> dict[str, float]:
    """Diebold-Mariano test that model and reference have equal expected loss.

    On d = loss_model - loss_ref (in time order) the statistic is mean(d) / sqrt(lrv / n), where
    lrv is the Newey-West long-run variance with lags 0..max_lag (serially correlated losses, e.g.
    overlapping multi-step windows, need max_lag >= 1), multiplied by the Harvey-Leybourne-Newbold
    (1997) factor sqrt((n + 1 - 2h + h(h - 1)/n) / n) with h = max_lag + 1; the two-sided p-value
    is from Student t with n - 1 degrees of freedom. Both corrections curb the over-rejection of
    the plain normal test in short samples. A negative statistic means the model has lower loss.

    If all d are equal the variance is zero: statistic 0 and p 1 when d is 0, else +/-inf and
    p 0. The Bartlett-weighted estimate is non-negative in exact arithmetic, but if rounding makes
    it <= 0 the lag-0 variance is used instead (logged as a warning).

    Returns {"mean_diff", "statistic", "p_value", "n"}.
    """
    lm = np.asarray(loss_model, dtype=np.float64)
    lr = np.asarray(loss_ref, dtype=np.float64)
    if lm.ndim != 1 or lm.shape != lr.shape:
        raise ValueError(f"loss_model and loss_ref must be 1-D of equal length; got {lm.shape} and {lr.shape}")
    if not (np.all(np.isfinite(lm)) and np.all(np.isfinite(lr))):
        raise ValueError("losses contain non-finite values")
    n = len(lm)
    if n < 3:
        raise ValueError(f"the Diebold-Mariano test needs at least 3 points, got {n}")
    if not 0 <= max_lag <= n - 2:
        raise ValueError(f"max_lag must be in [0, n - 2] = [0, {n - 2}], got {max_lag}")

    d = lm - lr
    if np.all(d == d[0]):
        mean = float(d[0])  # exact: np.mean of equal values may round away from them
        if mean == 0.0:
            stat, p = 0.0, 1.0
        else:
            stat, p = math.copysign(math.inf, mean), 0.0
        return {"mean_diff": mean, "statistic": stat, "p_value": p, "n": float(n)}

    mean = float(d.mean())
    lrv = _newey_west_variance(d, max_lag)
    if not lrv > 0:
        e = d - mean
        logger.warning("diebold_mariano: Newey-West variance %.3g <= 0 at max_lag=%d, using lag 0", lrv, max_lag)
        lrv = float(e @ e) / n
    h = max_lag + 1
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat = mean / math.sqrt(lrv / n) * hln
    p = float(2.0 * student_t.sf(abs(stat), df=n - 1))
    return {"mean_diff": mean, "statistic": float(stat), "p_value": p, "n": float(n)}
