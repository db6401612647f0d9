"""Is a skill score different from zero, or just noise? Uncertainty for the headline metrics.

Forecast windows of one asset overlap in time and their losses are autocorrelated, so iid
resampling of windows would understate the uncertainty. Two tools account for that:

* `panel_skill_interval`: a moving-block bootstrap interval for the CRPS skill against the
  reference baseline, resampling blocks of periods (origin dates) jointly for every asset, so
  both the dependence in time and between assets are kept, and model and reference are
  resampled together so the pairing is kept.
* `diebold_mariano`: the Diebold-Mariano test of equal accuracy with a Newey-West long-run
  variance and the Harvey-Leybourne-Newbold small-sample correction; `loss_differential_by_time`
  turns a panel of assets into the single time series the test needs.

Pure NumPy + SciPy, deterministic given the seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import t as student_t

logger = logging.getLogger(__name__)

__all__ = ["diebold_mariano", "loss_differential_by_time", "moving_block_indices", "panel_skill_interval"]


def _block_index_matrix(n: int, block_length: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, n) moving-block resamples in one draw; row i is what `moving_block_indices` would
    return for the i-th of `size` consecutive calls sharing the generator's stream layout."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if block_length < 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")
    b = min(int(block_length), int(n))
    k = -(-n // b)  # ceil(n / b) blocks cover n indices
    starts = rng.integers(0, n - b + 1, size=(size, k))
    idx = starts[:, :, None] + np.arange(b)[None, None, :]
    return idx.reshape(size, k * b)[:, :n]


def moving_block_indices(n: int, block_length: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of one moving (overlapping) block bootstrap resample of 0..n-1, length exactly n.

    ceil(n / block_length) block starts are drawn uniformly in [0, n - block_length] (block_length
    clipped to n) and the blocks are concatenated and truncated to n. Blocks keep the short-range
    dependence of consecutive windows that an iid resample (block_length=1) would destroy.
    """
    return _block_index_matrix(n, block_length, rng, 1)[0]


def panel_skill_interval(
    num_model: np.ndarray,
    num_ref: np.ndarray,
    den: np.ndarray,
    block_length: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Skill and its percentile interval from a moving-block bootstrap over a shared time axis.

    Inputs are (assets, periods) sums of the windows' loss numerators and denominators per
    period (e.g. per origin date; 0 where an asset has no window). Resampling whole periods,
    the same ones for every asset, keeps what resampling each asset on its own would lose:
    assets move together on the same dates (a crash day is bad for every asset at once), and
    losses cluster in time. The point estimate is the skill on the original data."""
    num_model, num_ref, den = (np.asarray(x, dtype=np.float64) for x in (num_model, num_ref, den))
    if num_model.ndim != 2 or num_model.shape != num_ref.shape or num_model.shape != den.shape:
        raise ValueError(f"need three (assets, periods) arrays of one shape; got {num_model.shape}, "
                         f"{num_ref.shape}, {den.shape}")
    if not (np.isfinite(num_model).all() and np.isfinite(num_ref).all() and np.isfinite(den).all()):
        raise ValueError("losses contain non-finite values")
    if (den.sum(axis=1) <= 0).any():
        raise ValueError("every asset needs a positive denominator sum")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1; got {n_boot}, {level}")

    def skill(idx: np.ndarray) -> np.ndarray:  # idx (B, periods) -> (B,)
        d = den[:, idx].sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            crps_m = (num_model[:, idx].sum(axis=-1) / d).mean(axis=0)
            crps_r = (num_ref[:, idx].sum(axis=-1) / d).mean(axis=0)
            return 1.0 - crps_m / crps_r

    point = float(skill(np.arange(den.shape[1])[None, :])[0])
    rng = np.random.default_rng(seed)
    draws = skill(_block_index_matrix(den.shape[1], block_length, rng, n_boot))
    draws = draws[np.isfinite(draws)]  # a resample that misses an asset entirely has no skill
    if draws.size == 0:
        raise ValueError("every bootstrap resample was undefined (too few periods per asset)")
    lower, upper = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lower), float(upper)


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


def loss_differential_by_time(
    times: Sequence[np.ndarray], loss_model: Sequence[np.ndarray], loss_ref: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique sorted times, cross-sectional mean model loss, same for the reference) of a panel.

    Inputs hold one array per asset: forecast-origin times (any sortable dtype) and per-window
    losses. Averaging the assets that share an origin gives one time series, so the
    Diebold-Mariano test sees each date once instead of treating same-date windows of different
    assets, whose errors are correlated, as independent observations.
    """
    if not (len(times) == len(loss_model) == len(loss_ref)):
        raise ValueError(
            f"times, loss_model and loss_ref need one array per asset; got {len(times)}, {len(loss_model)}, "
            f"{len(loss_ref)}"
        )
    if len(times) == 0:
        raise ValueError("need at least one asset")
    for a, (t, m, r) in enumerate(zip(times, loss_model, loss_ref, strict=True)):
        if not (np.ndim(t) == np.ndim(m) == np.ndim(r) == 1 and len(t) == len(m) == len(r)):
            raise ValueError(f"asset {a}: times, loss_model and loss_ref must be 1-D of equal length")
    all_t = np.concatenate([np.asarray(t) for t in times])
    all_m = np.concatenate([np.asarray(m, dtype=np.float64) for m in loss_model])
    all_r = np.concatenate([np.asarray(r, dtype=np.float64) for r in loss_ref])
    if len(all_t) == 0:
        raise ValueError("no windows")
    if not (np.all(np.isfinite(all_m)) and np.all(np.isfinite(all_r))):
        raise ValueError("losses contain non-finite values")
    uniq, inverse = np.unique(all_t, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    mean_m = np.bincount(inverse, weights=all_m, minlength=len(uniq)) / counts
    mean_r = np.bincount(inverse, weights=all_r, minlength=len(uniq)) / counts
    return uniq, mean_m, mean_r
