"""The baselines a quant would use instead, in price units, as (series, origins, ...) -> sample
paths: random walk, EWMA (RiskMetrics) random walk, GARCH(1,1)-t, seasonal naive, AutoETS.

Every function returns sample paths (W, S, H) for forecast origins o (the path covers bars
o..o+H-1) and uses only bars before o: at most `lookback` of them (`evaluate.lookback`).
Unobserved (filled) bars are never used as data: the volatility
models drop them (so a return may span a gap), and the models that need the bar calendar
(seasonal naive, ETS) carry the last observed price forward over them. Each window draws
from its own generator seeded by (seed, origin), so a window's samples do not depend on
which other origins are requested, and a fallback can reproduce another baseline exactly.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy.stats import norm

from finmoirai.evaluation.series import AssetSeries, carry_forward, usable_prices

logger = logging.getLogger(__name__)

MIN_OBSERVED = 30  # fewer observed bars than this in a window cannot fit anything


# ----------------------------------------------------------------------------- helpers


def _window_rng(seed: int, origin: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(origin)])


def _usable(series: AssetSeries, start: int, origin: int) -> np.ndarray:
    """Mask of bars in [start, origin) whose price can be used as data."""
    return usable_prices(series)[start:origin]


def _check_origin(series: AssetSeries, origin: int) -> None:
    if origin < 1 or origin > len(series.price):
        raise ValueError(f"{series.symbol}: forecast origin {origin} outside the series (length {len(series.price)})")


def history_prices(series: AssetSeries, origin: int, lookback: int) -> np.ndarray:
    """Observed prices of the `lookback` bars before `origin`; too few is an error."""
    _check_origin(series, origin)
    start = max(0, origin - lookback)
    prices = series.price[start:origin][_usable(series, start, origin)]
    if len(prices) < MIN_OBSERVED:
        raise ValueError(f"{series.symbol}: {len(prices)} observed bars before origin {origin} (need {MIN_OBSERVED})")
    return prices


def filled_log_prices(series: AssetSeries, origin: int, lookback: int) -> np.ndarray:
    """Log prices of the bars before `origin`, the last observed one carried over filled bars
    (bars before the first observed one are dropped), keeping the bar calendar."""
    history_prices(series, origin, lookback)  # the minimum-data check
    start = max(0, origin - lookback)
    usable = _usable(series, start, origin)
    logp = np.where(usable, np.log(np.where(usable, series.price[start:origin], 1.0)), np.nan)
    return carry_forward(logp, usable)[int(np.argmax(usable)):]


def log_normal_paths(
    last: float, sigma: float, horizon: int, num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Driftless random walk in price (mean = last price): sqrt-time scaling by cumulating shocks."""
    steps = np.arange(1, horizon + 1)
    shocks = rng.standard_normal((num_samples, horizon)).cumsum(axis=1)
    return last * np.exp(sigma * shocks - 0.5 * sigma**2 * steps)


def random_walk_samples(
    series: AssetSeries, origins: np.ndarray, context_length: int, prediction_length: int, num_samples: int, seed: int
) -> np.ndarray:
    """Driftless log-normal random walk from the last observed price, with the volatility of
    the context's log returns: the baseline any market forecast has to beat."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(origins), num_samples, prediction_length))
    for w, origin in enumerate(origins):
        context = series.price[origin - context_length : origin]
        seen = series.observed[origin - context_length : origin]
        prices = context[seen]
        returns = np.diff(np.log(prices))
        sigma = float(np.std(returns, ddof=1)) if len(returns) > 2 else 0.0
        last = prices[-1] if len(prices) else context[-1]
        out[w] = log_normal_paths(last, sigma, prediction_length, num_samples, rng)
    return out


def lambda_from_halflife(halflife_bars: float) -> float:
    """The EWMA decay whose weights halve every `halflife_bars` bars. RiskMetrics' 0.94 is a
    half-life of 11.2 bars, meant for daily bars; on hourly bars the same memory in time is
    about 270 bars (24-hour markets)."""
    if not halflife_bars > 0:
        raise ValueError(f"ewma half-life must be > 0 bars, got {halflife_bars}")
    return float(0.5 ** (1.0 / halflife_bars))


def ewma_sigma(returns: np.ndarray, lam: float) -> float:
    """RiskMetrics one-step volatility: zero-mean EWMA of squared returns, newest weighted
    most; the weights are normalised to sum to one, so short histories are not biased low."""
    if len(returns) == 0:
        return 0.0
    weights = (1.0 - lam) * lam ** np.arange(len(returns))[::-1]
    return float(np.sqrt(np.sum(weights * returns**2) / np.sum(weights)))


# ----------------------------------------------------------------------------- EWMA
def _ewma_window(
    series: AssetSeries, origin: int, horizon: int, num_samples: int, seed: int, lam: float, lookback: int
) -> np.ndarray:
    prices = history_prices(series, origin, lookback)
    sigma = ewma_sigma(np.diff(np.log(prices)), lam)
    return log_normal_paths(float(prices[-1]), sigma, horizon, num_samples, _window_rng(seed, origin))


def ewma_random_walk_samples(
    series: AssetSeries,
    origins: np.ndarray,
    context_length: int,
    prediction_length: int,
    num_samples: int,
    seed: int,
    *,
    lam: float,
    lookback: int,
) -> np.ndarray:
    """Random walk with RiskMetrics-style (EWMA) volatility: the random walk with the
    volatility clustering every market shows. `lam` should suit the bar frequency
    (`lambda_from_halflife`).

    Same path construction as `random_walk_samples` (price martingale, mean = last observed
    price); only sigma differs.
    """
    if not 0.0 < lam < 1.0:
        raise ValueError(f"ewma lambda must be in (0, 1), got {lam}")
    out = np.empty((len(origins), num_samples, prediction_length))
    for w, origin in enumerate(origins):
        out[w] = _ewma_window(series, int(origin), prediction_length, num_samples, seed, lam, lookback)
    return out


# ----------------------------------------------------------------------------- GARCH-t
def _garch_window(returns_pct: np.ndarray, horizon: int, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Simulated percent log-return paths (S, H) of a zero-mean GARCH(1,1)-t; raises on failure."""
    from arch import arch_model

    model = arch_model(returns_pct, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-convergence is checked below and counted
        res = model.fit(disp="off")
    if res.convergence_flag != 0 or not np.all(np.isfinite(res.params)):
        raise RuntimeError(f"optimizer did not converge (flag {res.convergence_flag})")
    nu = float(res.params["nu"])
    scale = np.sqrt((nu - 2.0) / nu)  # arch simulates unit-variance innovations

    def innovations(size: int | tuple[int, ...]) -> np.ndarray:
        return rng.standard_t(nu, size) * scale

    fc = res.forecast(horizon=horizon, method="simulation", simulations=num_samples, reindex=False, rng=innovations)
    paths = np.asarray(fc.simulations.values)[-1]
    if paths.shape != (num_samples, horizon) or not np.all(np.isfinite(paths)):
        raise RuntimeError("non-finite simulated paths")
    return paths


def garch_t_samples(
    series: AssetSeries,
    origins: np.ndarray,
    context_length: int,
    prediction_length: int,
    num_samples: int,
    seed: int,
    *,
    lookback: int,
    lam: float,
) -> np.ndarray:
    """GARCH(1,1) with Student-t innovations (arch), refitted per origin on the observed log
    returns (in percent) of the lookback window; paths start at the last observed price,
    zero mean in log space.

    A window whose fit raises or does not converge gets the EWMA random walk's samples for
    that window instead; each such window is logged as a warning, with a per-asset count.
    """
    out = np.empty((len(origins), num_samples, prediction_length))
    failed: list[int] = []
    for w, origin in enumerate(origins):
        origin = int(origin)
        prices = history_prices(series, origin, lookback)
        try:
            returns_pct = 100.0 * np.diff(np.log(prices))
            pct = _garch_window(returns_pct, prediction_length, num_samples, _window_rng(seed, origin))
            out[w] = prices[-1] * np.exp(np.cumsum(pct, axis=1) / 100.0)
        except Exception as err:  # noqa: BLE001 - any fit failure falls back, and is reported
            logger.warning("garch_t %s origin %d: %s; EWMA random walk used instead", series.symbol, origin, err)
            failed.append(origin)
            out[w] = _ewma_window(series, origin, prediction_length, num_samples, seed, lam, lookback)
    if failed:
        logger.warning(
            "garch_t %s: %d of %d windows fell back to the EWMA random walk", series.symbol, len(failed), len(origins)
        )
    return out


# ----------------------------------------------------------------------------- seasonal naive
def _seasonal_steps(horizon: int, season_length: int) -> np.ndarray:
    """Position, relative to the origin, of the bar whose log return step j repeats: the
    same position in the last season wholly before the origin (always <= -1)."""
    j = np.arange(horizon)
    return j - season_length * (j // season_length + 1)


def seasonal_naive_samples(
    series: AssetSeries,
    origins: np.ndarray,
    context_length: int,
    prediction_length: int,
    num_samples: int,
    seed: int,
    *,
    season_length: int,
    lookback: int,
) -> np.ndarray:
    """Seasonal naive on log returns, anchored at the last observed price:
    log y[o+j] = log y[o-1] + sum of the log returns at the same positions of the last
    season (for season_length >= H: y[o-1] * y[o-s+j] / y[o-s-1]). Unlike the plain
    seasonal naive on prices it does not jump back to the level of a season ago.

    Uncertainty: whole paths of the method's own in-sample errors (log residuals) at every
    past pseudo-origin in the lookback, bootstrapped with replacement, so each step's
    quantiles are the empirical error quantiles at that lead time.
    """
    if season_length < 1:
        raise ValueError(f"season_length must be >= 1, got {season_length}")
    offsets = _seasonal_steps(prediction_length, season_length)
    out = np.empty((len(origins), num_samples, prediction_length))
    for w, origin in enumerate(origins):
        logp = filled_log_prices(series, int(origin), lookback)
        n = len(logp)
        pseudo = np.arange(season_length + 1, n - prediction_length + 1)
        if len(pseudo) < MIN_OBSERVED:
            raise ValueError(
                f"{series.symbol}: seasonal naive at origin {origin} has {n} bars of lookback, "
                f"needs {season_length + prediction_length + MIN_OBSERVED}"
            )
        point = _seasonal_point(logp, np.append(pseudo, n), offsets)
        errors = logp[pseudo[:, None] + np.arange(prediction_length)] - point[:-1]
        draws = _window_rng(seed, int(origin)).integers(0, len(pseudo), num_samples)
        out[w] = np.exp(point[-1][None, :] + errors[draws])
    return out


def _seasonal_point(logp: np.ndarray, starts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(len(starts), H) seasonal-naive log forecasts from pseudo-origins `starts`."""
    returns = np.diff(logp, prepend=np.nan)  # returns[i] = logp[i] - logp[i-1]
    repeated = returns[starts[:, None] + offsets[None, :]]
    return logp[starts - 1][:, None] + np.cumsum(repeated, axis=1)


# ----------------------------------------------------------------------------- AutoETS
def auto_ets_samples(
    series: AssetSeries,
    origins: np.ndarray,
    context_length: int,
    prediction_length: int,
    num_samples: int,
    seed: int,
    *,
    season_length: int,
    lookback: int,
    model: str = "AZZ",
    refit_every: int = 5,
) -> np.ndarray:
    """statsforecast AutoETS on the log price of the lookback window, Gaussian in log space.

    `model` "AZZ": additive errors (log prices may be negative), trend and seasonality
    (period `season_length`) chosen by AICc. Selection and estimation run at every
    `refit_every`-th origin (a seasonal fit costs ~0.15 s); the origins in between re-filter
    their own window with those parameters (`forward`), which uses no bars after them.
    Each step's marginal is N(mean, sd) with sd from the 80% interval; paths get independent
    increments with variance sd_h^2 - sd_(h-1)^2, so those marginals hold exactly.
    """
    from statsforecast.models import AutoETS

    if refit_every < 1:
        raise ValueError(f"refit_every must be >= 1, got {refit_every}")
    z80 = float(norm.ppf(0.9))
    out = np.empty((len(origins), num_samples, prediction_length))
    fitted = None
    for w, origin in enumerate(origins):
        y = filled_log_prices(series, int(origin), lookback)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if w % refit_every == 0:
                fitted = AutoETS(season_length=season_length, model=model).fit(y)
            fc = fitted.forward(y, h=prediction_length, level=[80])
        mean = np.asarray(fc["mean"], dtype=np.float64)
        sd = (np.asarray(fc["hi-80"]) - np.asarray(fc["lo-80"])) / (2 * z80)
        out[w] = np.exp(mean[None, :] + _coherent_normal(sd, num_samples, _window_rng(seed, int(origin))))
    return out


def _coherent_normal(sd: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(S, H) zero-mean paths with independent increments and marginal std `sd` (made
    non-decreasing first, as an increment cannot have negative variance)."""
    var = np.maximum.accumulate(np.nan_to_num(np.asarray(sd, dtype=np.float64), nan=0.0) ** 2)
    increments = np.sqrt(np.diff(var, prepend=0.0))
    return (rng.standard_normal((num_samples, len(sd))) * increments).cumsum(axis=1)
