"""Calibration and per-step scores of sample forecasts: is a 90% interval right 90% of the time,
and where along the horizon is the loss?

All functions take samples (W, S, H) and truth (W, H) in the same units; NaN truth (filled
bars) is not scored.
"""

from __future__ import annotations

import numpy as np

LEVELS = (0.5, 0.8, 0.9, 0.95)
QUANTILES = tuple(round(q, 1) for q in np.arange(0.1, 1.0, 0.1))


def _check(samples: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    samples, truth = np.asarray(samples, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if samples.ndim != 3 or truth.shape != (samples.shape[0], samples.shape[2]):
        raise ValueError(f"samples must be (W, S, H) and truth (W, H); got {samples.shape} and {truth.shape}")
    return samples, truth


def interval_coverage(samples: np.ndarray, truth: np.ndarray, levels: tuple[float, ...] = LEVELS) -> dict[float, float]:
    """Fraction of scored truths inside each central interval [q((1-l)/2), q((1+l)/2)] of the
    samples (numpy's linear quantiles, bounds inclusive); NaN if nothing is scored."""
    samples, truth = _check(samples, truth)
    scored = np.isfinite(truth)
    out: dict[float, float] = {}
    for level in levels:
        lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=1)
        inside = (truth >= lo) & (truth <= hi)
        out[level] = float(inside[scored].mean()) if scored.any() else float("nan")
    return out


def pit_values(samples: np.ndarray, truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """Probability integral transform of each scored truth (row-major over (W, H)): the share
    of samples below it plus a uniform share of the samples equal to it, so ties (e.g. a
    point forecast) still give uniform PIT under calibration."""
    samples, truth = _check(samples, truth)
    below = (samples < truth[:, None, :]).mean(axis=1)
    equal = (samples == truth[:, None, :]).mean(axis=1)
    scored = np.isfinite(truth)
    u = np.random.default_rng(seed).random(int(scored.sum()))
    return below[scored] + u * equal[scored]


def pit_histogram(pit: np.ndarray, bins: int = 10) -> np.ndarray:
    """Counts of PIT values in `bins` equal bins of [0, 1]: flat when calibrated, U-shaped
    when intervals are too narrow, hump-shaped when too wide."""
    counts, _ = np.histogram(np.asarray(pit, dtype=np.float64), bins=bins, range=(0.0, 1.0))
    return counts


def sample_quantiles(samples: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """(Q, W, H) quantiles as gluonts's SampleForecast takes them: the sorted sample at index
    round((S-1) q), numpy rounding (half to even)."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64), axis=1)
    idx = [int(np.round((ordered.shape[1] - 1) * q)) for q in quantiles]
    return np.stack([ordered[:, i, :] for i in idx])


def quantile_crps_per_step(
    samples: np.ndarray, truth: np.ndarray, quantiles: tuple[float, ...] = QUANTILES
) -> np.ndarray:
    """(H,) gluonts's MeanWeightedSumQuantileLoss computed per horizon step: for each step,
    the mean over quantiles of sum_w 2 |(y - q_hat)(1{q_hat >= y} - q)| / sum_w |y|, over the
    scored windows. The headline CRPS is the same with the sums taken over all steps too."""
    samples, truth = _check(samples, truth)
    qs = sample_quantiles(samples, quantiles)
    levels = np.asarray(quantiles)[:, None, None]
    loss = 2.0 * np.abs((truth[None] - qs) * ((qs >= truth[None]) - levels))
    scored = np.isfinite(truth)
    numerator = np.where(scored[None], loss, 0.0).sum(axis=1)  # (Q, H)
    denominator = np.where(scored, np.abs(truth), 0.0).sum(axis=0)  # (H,)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_quantile = numerator / denominator[None]
    return np.where(scored.any(axis=0), per_quantile.mean(axis=0), np.nan)


def window_quantile_loss(
    samples: np.ndarray, truth: np.ndarray, quantiles: tuple[float, ...] = QUANTILES
) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the numerator and denominator of gluonts's MeanWeightedSumQuantileLoss:
    (W,) sum over scored steps of the mean-over-quantiles loss 2 |(y - q_hat)(1{q_hat >= y} - q)|,
    and (W,) sum of |y|. An asset's CRPS is sum(numerator) / sum(denominator) over its windows,
    so windows can be resampled (bootstrap) or compared one by one (Diebold-Mariano)."""
    samples, truth = _check(samples, truth)
    qs = sample_quantiles(samples, quantiles)
    levels = np.asarray(quantiles)[:, None, None]
    loss = 2.0 * np.abs((truth[None] - qs) * ((qs >= truth[None]) - levels)).mean(axis=0)  # (W, H)
    scored = np.isfinite(truth)
    return np.where(scored, loss, 0.0).sum(axis=1), np.where(scored, np.abs(truth), 0.0).sum(axis=1)


def _nanmean_columns(values: np.ndarray) -> np.ndarray:
    counts = np.isfinite(values).sum(axis=0)
    totals = np.nansum(values, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
