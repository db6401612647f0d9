"""Per-window scores on the horizon's % log return: closed forms and hand-computed arrays."""

import math

import numpy as np
import pandas as pd
import pytest
import scoringrules
from scipy import stats

from finmoirai.evaluation import scores
from finmoirai.evaluation.baselines import random_walk_samples
from finmoirai.evaluation.series import Windows, origins_for
from tests.helpers import price_series

H = 24


def walk(n=300, seed=0, sigma=0.01):
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, sigma, n)))


def test_scoringrules_crps_matches_the_normal_closed_form():
    """The ensemble CRPS the evaluation uses, of many normal draws, converges to the normal's
    closed form CRPS(N(mu, s), y) = s (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)),
    z = (y - mu) / s; and its estimator is the fair one (equal to the pairwise form)."""
    mu, sd = 0.3, 2.0
    y = np.array([-3.0, 0.3, 1.5, 6.0])
    z = (y - mu) / sd
    closed = sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
    draws = np.random.default_rng(0).normal(mu, sd, (len(y), 200_000))
    ensemble = scoringrules.crps_ensemble(y, draws, m_axis=-1, estimator=scores.CRPS_ESTIMATOR)
    np.testing.assert_allclose(ensemble, closed, rtol=5e-3)
    small = draws[:, :300]
    np.testing.assert_allclose(scoringrules.crps_ensemble(y, small, estimator=scores.CRPS_ESTIMATOR),
                               scoringrules.crps_ensemble(y, small, estimator="fair"), rtol=1e-12)
    np.testing.assert_allclose(scoringrules.crps_normal(y, mu, sd), closed, rtol=1e-12)


def test_origins_stay_in_the_scored_period():
    origins = origins_for(test_start=200, length=300, context_length=50, prediction_length=24, stride=24)
    assert list(origins) == [200, 224, 248, 272]
    assert len(origins_for(290, 300, 50, 24, 24)) == 0


def test_horizon_truth_is_the_percent_log_return_from_the_last_close():
    price = walk()
    w = Windows(price_series(price), np.array([200, 224]))
    truth = scores.horizon_truth(w, context_length=50, prediction_length=H)
    expected = 100 * np.log(price[[223, 247]] / price[[199, 223]])
    np.testing.assert_allclose(truth.returns, expected, rtol=1e-12)
    np.testing.assert_allclose(truth.step_returns[:, -1], expected, rtol=1e-12)
    bars = 100 * np.diff(np.log(price[199:224]))
    assert truth.realised_variance[0] == pytest.approx(np.sum(bars**2), rel=1e-12)
    moves = 100 * np.abs(np.log(price[150 + H:200]) - np.log(price[150:200 - H]))
    assert truth.scale[0] == pytest.approx(moves.mean(), rel=1e-12)
    np.testing.assert_array_equal(truth.anchors, price[[199, 223]])


def test_a_point_forecast_scores_by_hand():
    """All samples equal: CRPS = |error|, every quantile is the point, MAE/MSE of the error,
    MASE over the scale, coverage 1 only when exact."""
    price = walk()
    origins = np.array([200, 224, 248])
    w = Windows(price_series(price), origins)
    truth = scores.horizon_truth(w, 50, H)
    point = np.array([0.5, -1.0, 0.0])  # % return forecasts
    paths = np.broadcast_to(point[:, None, None] * np.linspace(1 / H, 1, H)[None, None, :], (3, 10, H)).copy()
    s = scores.window_scores(paths, truth)
    error = truth.returns - point
    np.testing.assert_allclose(s["crps"], np.abs(error), rtol=1e-12)
    np.testing.assert_allclose(s["qloss"], np.abs(error), rtol=1e-12)  # mean over q of 2|e|(q or 1-q) = |e|
    np.testing.assert_allclose(s["abs_error"], np.abs(error), rtol=1e-12)
    np.testing.assert_allclose(s["sq_error"], error**2, rtol=1e-12)
    np.testing.assert_allclose(s["mase"], np.abs(error) / truth.scale, rtol=1e-12)
    np.testing.assert_allclose(s["msis"], 2 / 0.05 * np.abs(error) / truth.scale, rtol=1e-12)
    assert np.all(s["coverage_80"] == 0) and np.all(np.isnan(s["qlike"]))  # zero forecast variance: no QLIKE


def test_qlike_is_zero_for_the_right_variance_and_positive_otherwise():
    price = walk()
    w = Windows(price_series(price), np.array([200]))
    truth = scores.horizon_truth(w, 50, H)
    rv = truth.realised_variance[0]
    rng = np.random.default_rng(1)
    for factor, expect_zero in ((1.0, True), (4.0, False), (0.25, False)):
        draws = rng.standard_normal(4000)
        draws = (draws - draws.mean()) / draws.std(ddof=1) * math.sqrt(rv * factor)
        paths = np.repeat(draws[None, :, None], H, axis=2)
        qlike = scores.window_scores(paths, truth)["qlike"][0]
        assert (qlike == pytest.approx(0.0, abs=1e-9)) if expect_zero else qlike > 0.05


def test_unobserved_bars_are_not_scored_and_carry_the_last_close():
    price = walk()
    observed = np.ones(len(price), dtype=bool)
    observed[224:248] = False  # the second window's horizon was filled entirely
    observed[223] = False  # ... and the first window's last bar: its truth is the close before
    price = price.copy()
    price[~observed] = 1e6  # filled bars' values must never be read
    w = Windows(price_series(price, observed), np.array([200, 224]))
    truth = scores.horizon_truth(w, 50, H)
    assert truth.returns[0] == pytest.approx(100 * np.log(price[222] / price[199]), rel=1e-12)
    assert np.isnan(truth.returns[1])
    paths = np.zeros((2, 5, H))
    s = scores.window_scores(paths, truth)
    assert np.isfinite(s["crps"][0]) and all(np.isnan(v[1]) for v in s.values())


def test_price_paths_become_returns_from_the_anchor():
    price = walk()
    s = price_series(price)
    origins = np.array([250])
    paths = random_walk_samples(s, origins, context_length=100, prediction_length=H, num_samples=4000, seed=1)
    w = Windows(s, origins)
    truth = scores.horizon_truth(w, 100, H)
    returns = scores.sample_returns(paths, truth)
    np.testing.assert_allclose(returns, 100 * np.log(paths / price[249]), rtol=0, atol=1e-12)
    assert abs(np.median(returns[0, :, -1])) < 0.5  # about the last close (a price martingale drifts down in log)


def test_crps_per_step_ends_at_the_window_crps():
    price = walk()
    w = Windows(price_series(price), np.array([200, 224, 248]))
    truth = scores.horizon_truth(w, 50, H)
    paths = np.random.default_rng(2).normal(0, 1, (3, 100, H)).cumsum(axis=2)
    steps = scores.crps_per_step(paths, truth)
    assert steps.shape == (3, H)
    np.testing.assert_allclose(steps[:, -1], scores.window_scores(paths, truth)["crps"], rtol=1e-12)


def test_pit_of_a_calibrated_forecast_is_uniform():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(2000)
    samples = rng.standard_normal((len(y), 200, 1))
    truth = scores.HorizonTruth(y, y[:, None], y**2, np.ones_like(y), np.ones_like(y))
    counts = scores.pit_histogram(scores.pit_values(samples, truth, seed=0))
    assert counts.sum() == len(y) and counts.min() > 0.7 * len(y) / 10
    narrow = scores.pit_histogram(scores.pit_values(0.3 * samples, truth, seed=0))
    assert narrow[0] + narrow[-1] > 3 * (narrow[4] + narrow[5])  # too narrow: U-shaped


def test_the_median_standard_error_is_the_normal_closed_form():
    """The order-statistic estimate of the Monte-Carlo standard error of a median: about
    sqrt(pi / 2) sd / sqrt(S) for normal samples (1.2533 sd / sqrt S)."""
    rng = np.random.default_rng(5)
    sd, n_samples = 2.0, 400
    paths = rng.normal(0, sd, (3000, n_samples, 1))  # % log returns
    signal = scores.trading_signal(paths, 0)
    expected = np.sqrt(np.pi / 2) * (sd / 100) / np.sqrt(n_samples)
    assert np.median(signal["signal_se"]) == pytest.approx(expected, rel=0.05)
    assert np.std(signal["signal_return"]) == pytest.approx(expected, rel=0.05)  # what it estimates


def test_score_windows_gives_one_row_per_model_and_window_with_its_own_seed():
    price = walk()
    s = price_series(price)
    w = Windows(s, np.array([200, 224, 248]))
    fns = {"rw": lambda series, o, seed: random_walk_samples(series, o, 50, H, 50, seed)}
    table, kept, _ = scores.score_windows([w], fns, seed=3, context_length=50, prediction_length=H, stride=24,
                                          keep=("rw",))
    assert list(table["origin"]) == [200, 224, 248] and set(table["model"]) == {"rw"}
    assert {"crps", "qlike", "pit", "signal_se", f"crps_step_{H:03d}"} <= set(table.columns)
    np.testing.assert_array_equal(kept["rw"][s.symbol], random_walk_samples(s, w.origins, 50, H, 50, 3))
    again, _, _ = scores.score_windows([w], fns, seed=3, context_length=50, prediction_length=H, stride=24)
    pd.testing.assert_frame_equal(table, again)
