"""Aggregation and tests of the headline: date panel, geometric skill, bootstrap interval and
Diebold-Mariano on the same panel, model confidence set; hand-computed arrays."""

import math

import numpy as np
import pytest
from scipy import stats

from finmoirai.evaluation import significance as sig

# ----------------------------------------------------------------------------- date_panel, geometric_skill


def test_date_panel_averages_an_assets_windows_per_date_and_leaves_gaps_nan():
    days = [np.array([1, 1, 2]), np.array([2, 3, 3])]
    losses = {"m": [np.array([1.0, 3.0, 5.0]), np.array([2.0, 4.0, np.nan])]}
    dates, panels = sig.date_panel(days, losses)
    assert dates.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(panels["m"], [[2.0, np.nan], [5.0, 2.0], [np.nan, 4.0]])


def test_geometric_skill_by_hand():
    """Asset A: model/ref = 2/4 = 0.5; asset B: 9/3 = 3 (a volatile asset whose losses are
    ten times larger would decide a ratio of means). Geometric mean sqrt(0.5 * 3) = sqrt(1.5)."""
    model = np.array([[1.0, 9.0], [3.0, np.nan]])  # dates x assets; A's mean 2, B's 9
    ref = np.array([[4.0, 3.0], [4.0, np.nan]])
    assert sig.geometric_skill(model, ref) == pytest.approx(1 - math.sqrt(1.5), rel=1e-12)
    assert sig.geometric_skill(ref, ref) == 0.0
    assert sig.geometric_skill(ref / 2, ref) == pytest.approx(0.5, rel=1e-12)
    ratio_of_means = 1 - (2 + 9) / (4 + 3)  # what the old headline computed: B decides
    assert ratio_of_means < sig.geometric_skill(model, ref)


def test_normalised_series_is_in_units_of_the_references_asset_means():
    ref = np.array([[2.0, 10.0], [6.0, 30.0]])  # asset means 4 and 20
    model = np.array([[4.0, 20.0], [np.nan, 10.0]])
    np.testing.assert_allclose(sig.normalised_by_reference(model, ref), [(1.0 + 1.0) / 2, 0.5])
    np.testing.assert_allclose(sig.normalised_by_reference(ref, ref), [0.5, 1.5])


# ----------------------------------------------------------------------------- skill_test


def panels(n_dates=150, shift=0.0, seed=0):
    """(model, reference) panels of 3 assets with very different loss scales; the model's
    losses are the reference's times exp(shift) with noise, correlated across assets by date."""
    rng = np.random.default_rng(seed)
    common = rng.gamma(2.0, 1.0, (n_dates, 1))
    ref = common * np.array([1.0, 10.0, 100.0]) * rng.gamma(4.0, 0.25, (n_dates, 3))
    model = ref * np.exp(shift + 0.2 * rng.standard_normal((n_dates, 3)))
    return model, ref


def test_interval_and_test_run_on_the_same_panel():
    model, ref = panels(shift=-0.15)
    out = sig.skill_test(model, ref, seed=1)
    assert out["skill"] == pytest.approx(sig.geometric_skill(model, ref))
    assert 0 < out["skill_lo"] <= out["skill"] <= out["skill_hi"]  # clearly better: interval above 0
    assert out["dm_stat"] < 0 and out["dm_p"] < 0.01 and out["dm_n"] == 150
    m, r = sig.normalised_by_reference(model, ref), sig.normalised_by_reference(ref, ref)
    direct = sig.diebold_mariano(m, r, max_lag=sig.DM_MIN_LAG)
    assert out["dm_stat"] == direct["statistic"] and out["dm_p"] == direct["p_value"]
    assert out == sig.skill_test(model, ref, seed=1)  # deterministic given the seed


def test_no_difference_gives_an_interval_around_zero_and_a_large_p():
    model, ref = panels(shift=-0.02, seed=0)  # exp(-0.02 + 0.2 z) has mean 1: equal expected loss
    out = sig.skill_test(model, ref, seed=2)
    assert out["skill_lo"] < 0 < out["skill_hi"] and out["dm_p"] > 0.05


def test_block_length_is_chosen_from_the_data():
    rng = np.random.default_rng(4)
    white = rng.standard_normal(400)
    persistent = np.zeros(400)
    for t in range(1, 400):
        persistent[t] = 0.9 * persistent[t - 1] + rng.standard_normal()
    assert sig.block_length(persistent) > sig.block_length(white)
    assert sig.block_length(white, minimum=3) >= 3
    assert sig.block_length(np.ones(10)) == 1


def test_too_few_dates_gives_no_interval_and_no_test():
    model, ref = panels(n_dates=2)
    out = sig.skill_test(model, ref, seed=0)
    assert out["skill_lo"] is None and out["dm_p"] is None and math.isfinite(out["skill"])


# ----------------------------------------------------------------------------- model_confidence_set


def test_mcs_keeps_the_best_and_drops_a_clearly_worse_model():
    best, ref = panels(shift=-0.1, seed=5)
    worse = ref * 1.5
    mcs = sig.model_confidence_set({"best": best, "ref": ref, "worse": worse}, ref, seed=0)
    assert mcs["best"]["in_set"] and not mcs["worse"]["in_set"]
    assert mcs["best"]["p_value"] == 1.0 and mcs["worse"]["p_value"] < 0.1


# ----------------------------------------------------------------------------- diebold_mariano

D5 = np.array([1.0, -1.0, 2.0, 0.0, 3.0])  # mean 1, deviations 0, -2, 1, -1, 2


def test_dm_by_hand_lag_zero():
    loss_ref = np.array([2.0, 3.0, 1.0, 4.0, 0.5])
    res = sig.diebold_mariano(loss_ref + D5, loss_ref, max_lag=0)
    n, h = 5, 1
    mean = (1 - 1 + 2 + 0 + 3) / 5
    var = ((1 - mean) ** 2 + (-1 - mean) ** 2 + (2 - mean) ** 2 + (0 - mean) ** 2 + (3 - mean) ** 2) / n  # = 2
    expected = mean / math.sqrt(var / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)  # = sqrt(2)
    assert expected == pytest.approx(math.sqrt(2))
    assert res["mean_diff"] == pytest.approx(1.0)
    assert res["statistic"] == pytest.approx(expected, rel=1e-12)
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(expected, df=n - 1), rel=1e-12)
    assert res["n"] == 5


def test_dm_newey_west_lag_one_by_hand():
    res = sig.diebold_mariano(D5, np.zeros(5), max_lag=1)
    n, h = 5, 2
    gamma0 = (0**2 + 2**2 + 1**2 + 1**2 + 2**2) / n  # = 2
    gamma1 = (0 * -2 + -2 * 1 + 1 * -1 + -1 * 2) / n  # = -1
    lrv = gamma0 + 2 * (1 - 1 / 2) * gamma1  # Bartlett weight 1 - k / (max_lag + 1); = 1
    expected = 1.0 / math.sqrt(lrv / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)  # = sqrt(2.4)
    assert expected == pytest.approx(math.sqrt(2.4))
    assert res["statistic"] == pytest.approx(expected, rel=1e-12)
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(expected, df=4), rel=1e-12)


def test_dm_symmetric_differential_is_null():
    res = sig.diebold_mariano(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), np.zeros(5))
    assert res["statistic"] == 0.0
    assert res["p_value"] == pytest.approx(1.0)


def test_dm_clearly_better_model():
    rng = np.random.default_rng(6)
    loss_ref = rng.uniform(2.0, 3.0, 200)
    loss_model = loss_ref - 1.0 + 0.1 * rng.standard_normal(200)
    res = sig.diebold_mariano(loss_model, loss_ref, max_lag=3)
    assert res["statistic"] < 0
    assert res["p_value"] < 1e-6
    assert res["mean_diff"] == pytest.approx(-1.0, abs=0.03)
    # swapping the roles flips the sign only
    swapped = sig.diebold_mariano(loss_ref, loss_model, max_lag=3)
    assert swapped["statistic"] == pytest.approx(-res["statistic"])
    assert swapped["p_value"] == pytest.approx(res["p_value"])


def test_dm_size_under_the_null():
    rng = np.random.default_rng(7)
    d = rng.standard_normal((400, 100))
    rejections = np.mean([sig.diebold_mariano(x, np.zeros(100))["p_value"] < 0.05 for x in d])
    assert 0.02 <= rejections <= 0.09


def test_dm_zero_variance():
    same = sig.diebold_mariano(np.full(4, 0.3), np.full(4, 0.3))
    assert (same["statistic"], same["p_value"], same["mean_diff"]) == (0.0, 1.0, 0.0)
    better = sig.diebold_mariano(np.full(4, 0.2), np.full(4, 0.3))
    assert better["statistic"] == -math.inf and better["p_value"] == 0.0
    assert better["mean_diff"] == pytest.approx(-0.1)
    worse = sig.diebold_mariano(np.full(4, 0.1) + 0.3, np.full(4, 0.3), max_lag=2)
    assert worse["statistic"] == math.inf and worse["p_value"] == 0.0


def test_dm_falls_back_to_lag_zero_when_newey_west_is_not_positive(monkeypatch, caplog):
    monkeypatch.setattr(sig, "_newey_west_variance", lambda d, max_lag: -1e-18)
    with caplog.at_level("WARNING", logger="finmoirai.evaluation.significance"):
        res = sig.diebold_mariano(D5, np.zeros(5), max_lag=1)
    n, h = 5, 2
    expected = 1.0 / math.sqrt(2.0 / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)  # lag-0 var = 2
    assert res["statistic"] == pytest.approx(expected, rel=1e-12)
    assert "using lag 0" in caplog.text


@pytest.mark.parametrize(
    ("model", "ref", "max_lag", "message"),
    [
        (np.ones(2), np.zeros(2), 0, "at least 3"),
        (np.ones(5), np.zeros(4), 0, "equal length"),
        (np.ones((5, 2)), np.zeros((5, 2)), 0, "1-D"),
        (np.array([1.0, np.inf, 0.0]), np.zeros(3), 0, "non-finite"),
        (np.arange(5.0), np.zeros(5), 4, "max_lag"),
        (np.arange(5.0), np.zeros(5), -1, "max_lag"),
    ],
)
def test_dm_validates_inputs(model, ref, max_lag, message):
    with pytest.raises(ValueError, match=message):
        sig.diebold_mariano(model, ref, max_lag=max_lag)




def test_a_handful_of_dates_still_gets_an_interval_and_a_test():
    """Another lake scored over a few origin dates (8 windows on 4 dates): too short to choose
    a block length from the data (arch's estimator fails below 8 points), so blocks of 1."""
    model, ref = panels(n_dates=4, shift=-0.1)
    out = sig.skill_test(model, ref, seed=0)
    assert out["block_days"] == 1 and out["skill_lo"] <= out["skill"] <= out["skill_hi"] and out["dm_n"] == 4
    mcs = sig.model_confidence_set({"m": model, "ref": ref}, ref, seed=0)
    assert set(mcs) == {"m", "ref"}
