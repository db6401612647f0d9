import logging

import numpy as np
import pandas as pd
import pytest

from finmoirai.evaluation import baselines
from finmoirai.evaluation.series import AssetSeries
from finmoirai.params.evaluation import BaselinesConfig
from tests.helpers import price_series

H, S, CTX = 24, 200, 168
LOOKBACK = BaselinesConfig.shipped("baselines").lookback  # what the evaluate stage passes


def _garch_prices(n: int, seed: int = 0) -> np.ndarray:
    """Prices whose hourly log returns follow a GARCH(1,1)-t (vol clustering, fat tails)."""
    rng = np.random.default_rng(seed)
    r, var = np.empty(n), 1e-4
    for t in range(n):
        r[t] = np.sqrt(var) * rng.standard_t(5) / np.sqrt(5 / 3)
        var = 2e-6 + 0.08 * r[t] ** 2 + 0.9 * var
    return 100 * np.exp(np.cumsum(r))


def _series(price: np.ndarray, observed: np.ndarray | None = None) -> AssetSeries:
    return price_series(price, observed, start="2019-01-01", test_start=600)


def _all(season: int = 24, **kw):
    kw = {"lookback": LOOKBACK, **kw}
    return {
        "rw_ewma": lambda s, o, seed: baselines.ewma_random_walk_samples(s, o, CTX, H, S, seed, lam=0.94, **kw),
        "garch_t": lambda s, o, seed: baselines.garch_t_samples(s, o, CTX, H, S, seed, lam=0.94, **kw),
        "seasonal_naive": lambda s, o, seed: baselines.seasonal_naive_samples(
            s, o, CTX, H, S, seed, season_length=season, **kw
        ),
        "auto_ets": lambda s, o, seed: baselines.auto_ets_samples(s, o, CTX, H, S, seed, season_length=season, **kw),
    }


MODELS = list(_all())


@pytest.fixture(scope="module")
def gseries() -> AssetSeries:
    return _series(_garch_prices(1400))


@pytest.mark.parametrize("name", MODELS)
def test_shape_positive_and_deterministic(gseries, name):
    fn = _all()[name]
    origins = np.array([600, 624, 648])
    a, b = fn(gseries, origins, 7), fn(gseries, origins, 7)
    assert a.shape == (3, S, H) and np.all(np.isfinite(a)) and np.all(a > 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, fn(gseries, origins, 8))


@pytest.mark.parametrize("name", MODELS)
def test_no_look_ahead(gseries, name):
    fn = _all()[name]
    origins = np.array([600, 624, 648])
    before = fn(gseries, origins, 3)
    wild = _series(gseries.price.copy())
    wild.price[624:] *= np.exp(np.random.default_rng(1).normal(0, 0.2, len(wild.price) - 624))
    after = fn(wild, origins, 3)
    np.testing.assert_array_equal(before[:2], after[:2])  # windows with origin <= 624 see nothing after it
    assert not np.array_equal(before[2], after[2])  # ... while a later window does use the change


@pytest.mark.parametrize("name", MODELS)
def test_filled_bars_are_not_data(gseries, name):
    """A wild value on a filled bar must not change any forecast."""
    fn = _all()[name]
    observed = np.ones(len(gseries.price), dtype=bool)
    observed[[590, 595, 596]] = False
    clean = _series(gseries.price.copy(), observed)
    clean.price[[590, 595, 596]] = clean.price[[589, 594, 594]]  # forward-filled, as preprocess does
    dirty = _series(clean.price.copy(), observed)
    dirty.price[[590, 595, 596]] = [1e6, np.nan, 1e-6]
    np.testing.assert_array_equal(fn(clean, np.array([600]), 0), fn(dirty, np.array([600]), 0))


@pytest.mark.parametrize("name", MODELS)
def test_too_few_observed_bars_is_an_error_naming_the_asset(gseries, name):
    observed = np.zeros(len(gseries.price), dtype=bool)
    observed[570:590] = True
    with pytest.raises(ValueError, match="AAA"):
        _all()[name](_series(gseries.price, observed), np.array([600]), 0)


@pytest.mark.parametrize("name", MODELS)
def test_centred_near_last_price_and_widening(gseries, name):
    paths = _all()[name](gseries, np.array([1000]), 0)[0]
    last = gseries.price[999]
    assert np.median(paths[:, 0]) == pytest.approx(last, rel=0.02)
    spread = np.quantile(paths, 0.9, axis=0) - np.quantile(paths, 0.1, axis=0)
    assert spread[-1] > 2 * spread[0]


@pytest.mark.parametrize("name", MODELS)
def test_intervals_roughly_calibrated_on_garch_data(name):
    """On data from a GARCH-t process the 80% intervals should hold roughly 80% of outcomes."""
    s = _series(_garch_prices(4000, seed=5))
    origins = np.arange(600, 4000 - H, 96)
    paths = _all()[name](s, origins, 0)
    truth = np.stack([s.price[o : o + H] for o in origins])
    lo, hi = np.quantile(paths, [0.1, 0.9], axis=1)
    assert 0.65 < np.mean((truth >= lo) & (truth <= hi)) < 0.93


def test_ewma_sigma_matches_recursion():
    """The normalised-weight closed form equals the RiskMetrics recursion started at r_1^2."""
    r = np.random.default_rng(0).normal(0, 0.01, 400)
    lam, var = 0.94, r[0] ** 2
    for x in r[1:]:
        var = lam * var + (1 - lam) * x**2
    # The recursion gives r_1 weight lam^(n-1) instead of (1-lam) lam^(n-1): negligible at n=400.
    assert baselines.ewma_sigma(r, lam) == pytest.approx(np.sqrt(var), rel=1e-6)
    assert baselines.ewma_sigma(np.full(50, 0.02), lam) == pytest.approx(0.02, rel=1e-12)


def test_ewma_reacts_to_recent_volatility_unlike_the_plain_random_walk():
    rng = np.random.default_rng(2)
    r = np.concatenate([rng.normal(0, 0.002, 450), rng.normal(0, 0.02, 50)])
    s = _series(100 * np.exp(np.cumsum(r)))
    paths = baselines.ewma_random_walk_samples(s, np.array([500]), CTX, H, 4000, 0, lam=0.94, lookback=LOOKBACK)[0]
    sd = np.std(np.log(paths[:, 0] / s.price[499]))
    assert sd == pytest.approx(baselines.ewma_sigma(np.diff(np.log(s.price[:500])), 0.94), rel=0.05)
    assert sd > 0.012  # the calm 450 bars barely count


def test_ewma_lookback_never_passes_the_origin():
    s = _series(_garch_prices(700))
    a = baselines.ewma_random_walk_samples(s, np.array([100]), 50, H, S, 0, lam=0.94, lookback=10_000)
    b = baselines.ewma_random_walk_samples(s, np.array([100]), 50, H, S, 0, lam=0.94, lookback=100)
    np.testing.assert_array_equal(a, b)


def test_garch_failure_falls_back_to_ewma_and_is_counted(gseries, monkeypatch, caplog):
    origins = np.array([600, 624])
    real = baselines._garch_window
    calls = iter([RuntimeError("boom"), None])

    def flaky(*args, **kw):
        err = next(calls)
        if err is not None:
            raise err
        return real(*args, **kw)

    monkeypatch.setattr(baselines, "_garch_window", flaky)
    with caplog.at_level(logging.WARNING, logger="finmoirai.evaluation.baselines"):
        out = baselines.garch_t_samples(gseries, origins, CTX, H, S, 4, lookback=LOOKBACK, lam=0.94)
    ewma = baselines.ewma_random_walk_samples(gseries, origins, CTX, H, S, 4, lam=0.94, lookback=LOOKBACK)
    np.testing.assert_array_equal(out[0], ewma[0])
    assert not np.array_equal(out[1], ewma[1])
    assert "AAA origin 600" in caplog.text and "1 of 2 windows" in caplog.text


def test_garch_non_convergence_falls_back(gseries, monkeypatch, caplog):
    class Result:
        convergence_flag = 4
        params = pd.Series({"omega": 0.1, "alpha[1]": 0.1, "beta[1]": 0.8, "nu": 5.0})

    class Model:
        def fit(self, disp):
            return Result()

    import arch

    monkeypatch.setattr(arch, "arch_model", lambda *a, **k: Model())
    with caplog.at_level(logging.WARNING, logger="finmoirai.evaluation.baselines"):
        out = baselines.garch_t_samples(gseries, np.array([600]), CTX, H, S, 4, lookback=LOOKBACK, lam=0.94)
    ewma = baselines.ewma_random_walk_samples(gseries, np.array([600]), CTX, H, S, 4, lam=0.94, lookback=LOOKBACK)
    np.testing.assert_array_equal(out, ewma)
    assert "did not converge" in caplog.text


def test_garch_widens_after_a_volatility_burst():
    rng = np.random.default_rng(3)
    r = np.concatenate([rng.normal(0, 0.004, 470), rng.normal(0, 0.03, 30)])
    s = _series(100 * np.exp(np.cumsum(r)))
    paths = baselines.garch_t_samples(s, np.array([500]), CTX, H, 2000, 0, lookback=LOOKBACK, lam=0.94)[0]
    calm = baselines.garch_t_samples(s, np.array([400]), CTX, H, 2000, 0, lookback=LOOKBACK, lam=0.94)[0]
    assert np.std(np.log(paths[:, 0])) > 2 * np.std(np.log(calm[:, 0]))


def test_seasonal_naive_repeats_the_last_season_exactly():
    """A noiseless log-price pattern of period 24 is forecast exactly, with zero spread."""
    n = 600
    t = np.arange(n)
    price = 50 * np.exp(0.03 * np.sin(2 * np.pi * t / 24) + 0.001 * (t % 24 == 5))
    s = _series(price)
    out = baselines.seasonal_naive_samples(s, np.array([500, 517]), CTX, H, 50, 0, season_length=24, lookback=LOOKBACK)
    for w, o in enumerate([500, 517]):
        np.testing.assert_allclose(out[w], np.broadcast_to(price[o : o + H], (50, H)), rtol=1e-12)


def test_seasonal_naive_point_formula_for_short_seasons():
    """season 7 < H: each step repeats the log return 7 (or 14, 21, ...) bars earlier."""
    rng = np.random.default_rng(4)
    logp = np.cumsum(rng.normal(0, 0.01, 300))
    offsets = baselines._seasonal_steps(H, 7)
    point = baselines._seasonal_point(logp, np.array([300]), offsets)[0]
    r = np.diff(logp, prepend=np.nan)
    expected, level = [], logp[299]
    for j in range(H):
        level += r[300 + j - 7 * (j // 7 + 1)]
        expected.append(level)
    np.testing.assert_allclose(point, expected, rtol=1e-12)
    assert point[2] == pytest.approx(logp[299] + logp[295] - logp[292])  # y[o-1] * y[o-s+2] / y[o-s-1]


def test_seasonal_naive_needs_enough_lookback(gseries):
    with pytest.raises(ValueError, match="AAA: seasonal naive"):
        baselines.seasonal_naive_samples(gseries, np.array([600]), 50, H, S, 0, season_length=24, lookback=60)


def test_auto_ets_refit_every_only_changes_the_between_origins(gseries):
    origins = np.array([600, 624, 648])
    ets = {"season_length": 24, "lookback": LOOKBACK}
    every = baselines.auto_ets_samples(gseries, origins, CTX, H, S, 0, refit_every=1, **ets)
    sparse = baselines.auto_ets_samples(gseries, origins, CTX, H, S, 0, refit_every=3, **ets)
    np.testing.assert_array_equal(every[0], sparse[0])
    assert not np.array_equal(every[1], sparse[1])
    np.testing.assert_allclose(np.median(every[1], axis=0), np.median(sparse[1], axis=0), rtol=0.01)


def test_coherent_normal_has_the_requested_marginals():
    sd = np.array([0.01, 0.02, 0.025, 0.03])
    z = baselines._coherent_normal(sd, 200_000, np.random.default_rng(0))
    np.testing.assert_allclose(z.std(axis=0), sd, rtol=0.01)
    assert np.all(np.diff(z, axis=1).std(axis=0) < sd[1:])  # paths are smooth, not redrawn per step


def test_garch_one_step_spread_matches_the_fitted_conditional_volatility(gseries):
    """Samples at step 1 must have the fitted model's variance (t draws rescaled to unit variance)."""
    from arch import arch_model

    origin = 1000
    returns = 100 * np.diff(np.log(gseries.price[origin - 500 : origin]))
    res = arch_model(returns, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(disp="off")
    sd = np.sqrt(res.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]) / 100
    paths = baselines.garch_t_samples(gseries, np.array([origin]), CTX, H, 40_000, 0, lookback=LOOKBACK, lam=0.94)[0]
    assert np.std(np.log(paths[:, 0] / gseries.price[origin - 1])) == pytest.approx(sd, rel=0.05)
    assert res.params["nu"] < 15  # fat tails are fitted, so the t rescaling matters here
