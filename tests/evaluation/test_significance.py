import math
import time

import numpy as np
import pytest
from scipy import stats

from finmoirai.evaluation import significance as sig

# ----------------------------------------------------------------------------- moving_block_indices


@pytest.mark.parametrize(("n", "block_length"), [(1, 1), (1, 5), (7, 3), (10, 5), (11, 4), (100, 7)])
def test_block_indices_have_length_n_and_stay_in_range(n, block_length):
    idx = sig.moving_block_indices(n, block_length, np.random.default_rng(0))
    assert idx.shape == (n,)
    assert np.issubdtype(idx.dtype, np.integer)
    assert idx.min() >= 0 and idx.max() <= n - 1


def test_block_length_one_is_iid_sampling():
    n, reps = 20, 20_000
    rng = np.random.default_rng(1)
    draws = np.stack([sig.moving_block_indices(n, 1, rng) for _ in range(reps)])
    # every index equally likely at every position
    freq = np.bincount(draws.ravel(), minlength=n) / draws.size
    assert np.abs(freq - 1 / n).max() < 0.005
    # consecutive positions independent: the next index follows the current one only by chance,
    # P = (n - 1) / n**2 (blocks of 2 would make it about 1/2)
    follows = (draws[:, 1:] == draws[:, :-1] + 1).mean()
    assert abs(follows - (n - 1) / n**2) < 0.003


@pytest.mark.parametrize("block_length", [8, 9, 50])
def test_block_at_least_n_is_the_whole_series(block_length):
    for seed in range(5):
        idx = sig.moving_block_indices(8, block_length, np.random.default_rng(seed))
        np.testing.assert_array_equal(idx, np.arange(8))


@pytest.mark.parametrize(("n", "block_length"), [(12, 3), (14, 4), (50, 7)])
def test_blocks_are_consecutive_runs(n, block_length):
    rng = np.random.default_rng(2)
    for _ in range(50):
        idx = sig.moving_block_indices(n, block_length, rng)
        n_blocks = math.ceil(n / block_length)
        padded = np.full(n_blocks * block_length, -1)
        padded[:n] = idx
        for block in padded.reshape(n_blocks, block_length):
            block = block[block >= 0]  # the last block may be truncated
            np.testing.assert_array_equal(np.diff(block), 1)
            assert block[0] <= n - block_length  # starts drawn in [0, n - block_length]


def test_block_starts_cover_the_whole_range():
    # starts are uniform over [0, n - b]: both ends are reachable
    rng = np.random.default_rng(3)
    starts = np.concatenate([sig.moving_block_indices(10, 4, rng)[::4] for _ in range(500)])
    assert set(starts.tolist()) == set(range(7))


def test_block_indices_reject_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        sig.moving_block_indices(0, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="block_length"):
        sig.moving_block_indices(5, 0, np.random.default_rng(0))


# ----------------------------------------------------------------------------- panel_skill_interval


def _panel(seed=0, assets=3, periods=40, noise=0.3):
    """Random positive (assets, periods) numerators / denominators; model ~10% better than ref."""
    rng = np.random.default_rng(seed)
    num_r = rng.uniform(1.0, 3.0, (assets, periods))
    num_m = 0.9 * num_r * np.exp(noise * rng.standard_normal(num_r.shape))
    den = rng.uniform(5.0, 10.0, (assets, periods))
    return num_m, num_r, den


def test_identical_model_and_ref_give_exactly_zero():
    _, num_r, den = _panel()
    assert sig.panel_skill_interval(num_r.copy(), num_r, den, n_boot=200) == (0.0, 0.0, 0.0)


def test_half_the_loss_gives_exactly_one_half():
    _, num_r, den = _panel()
    point, lo, hi = sig.panel_skill_interval(0.5 * num_r, num_r, den, n_boot=200)
    assert (point, lo, hi) == pytest.approx((0.5, 0.5, 0.5), abs=1e-15)


def test_point_skill_by_hand_on_two_assets():
    # asset A: crps_model = (1 + 2 + 0) / (1 + 3 + 0) = 0.75, crps_ref = (2 + 2) / 4 = 1.0
    # asset B: crps_model = (3 + 1 + 2) / 6 = 1.0,            crps_ref = 12 / 6 = 2.0
    # skill = 1 - mean(0.75, 1.0) / mean(1.0, 2.0) = 1 - 0.875 / 1.5 = 5 / 12
    # (pooling the windows instead would give 1 - 0.9 / 1.6 = 0.4375); A has no window on date 3
    num_m = np.array([[1.0, 2.0, 0.0], [3.0, 1.0, 2.0]])
    num_r = np.array([[2.0, 2.0, 0.0], [4.0, 4.0, 4.0]])
    den = np.array([[1.0, 3.0, 0.0], [2.0, 2.0, 2.0]])
    point, lo, hi = sig.panel_skill_interval(num_m, num_r, den, block_length=1, n_boot=50)
    assert point == pytest.approx(5 / 12, abs=1e-15)
    assert lo <= point <= hi


def test_interval_contains_point_and_same_seed_reproduces():
    num_m, num_r, den = _panel()
    first = sig.panel_skill_interval(num_m, num_r, den, seed=7)
    assert first[1] < first[0] < first[2]
    assert first[2] - first[1] > 0.01  # noisy data: a genuine interval, not a point
    assert sig.panel_skill_interval(num_m, num_r, den, seed=7) == first
    assert sig.panel_skill_interval(num_m, num_r, den, seed=8)[1:] != first[1:]


def test_interval_is_centred_near_the_point():
    num_m, num_r, den = _panel(assets=2, periods=300)
    point, lo, hi = sig.panel_skill_interval(num_m, num_r, den, block_length=1, n_boot=2000)
    assert point == pytest.approx(1 - 0.9 * math.exp(0.3**2 / 2), abs=0.03)  # E[lognormal noise] = e^(s^2/2)
    assert abs((hi - point) - (point - lo)) < 0.3 * (hi - lo)


def test_interval_widens_with_noise():
    # ref loss 1 per window, model 1 + s * e: skill = -s * mean(e) replicate by replicate,
    # so with the same seed the interval width is exactly proportional to s
    e = np.random.default_rng(4).standard_normal((2, 50))
    ones = np.ones_like(e)
    widths = []
    for s in (0.1, 0.5):
        _, lo, hi = sig.panel_skill_interval(1 + s * e, ones, ones, n_boot=500, seed=1)
        widths.append(hi - lo)
    assert widths[0] > 0
    assert widths[1] == pytest.approx(5 * widths[0], rel=1e-9)


def test_longer_blocks_widen_the_interval_for_persistent_noise():
    # noise constant over runs of 20 dates: iid resampling treats 200 dates as independent
    # and understates the spread; blocks of 20 see the ~10 effective observations
    e = np.repeat(np.random.default_rng(5).standard_normal(10), 20)[None, :]
    ones = np.ones((1, 200))
    _, lo1, hi1 = sig.panel_skill_interval(1 + 0.2 * e, ones, ones, block_length=1, seed=2)
    _, lo20, hi20 = sig.panel_skill_interval(1 + 0.2 * e, ones, ones, block_length=20, seed=2)
    assert hi20 - lo20 > 2.5 * (hi1 - lo1)


def test_interval_matches_a_loop_over_moving_block_indices():
    # the vectorised bootstrap is the plain loop: n_boot calls of moving_block_indices, the
    # same dates for every asset and for model and ref
    num_m, num_r, den = _panel(assets=2, periods=14, seed=3)
    n_boot, block, seed = 40, 4, 11
    rng = np.random.default_rng(seed)
    skills = []
    for _ in range(n_boot):
        idx = sig.moving_block_indices(14, block, rng)
        crps_m = num_m[:, idx].sum(axis=1) / den[:, idx].sum(axis=1)
        crps_r = num_r[:, idx].sum(axis=1) / den[:, idx].sum(axis=1)
        skills.append(1 - crps_m.mean() / crps_r.mean())
    expected = np.quantile(skills, [0.05, 0.95])
    _, lo, hi = sig.panel_skill_interval(num_m, num_r, den, block_length=block, n_boot=n_boot, seed=seed, level=0.9)
    np.testing.assert_allclose([lo, hi], expected, rtol=1e-12)


def test_panel_interval_is_fast():
    num_m, num_r, den = _panel(assets=10, periods=200)
    start = time.perf_counter()
    sig.panel_skill_interval(num_m, num_r, den, n_boot=2000)
    assert time.perf_counter() - start < 2.0


def test_resamples_missing_an_asset_are_dropped():
    # asset 0 has a window on one date of two: iid resamples of dates sometimes miss it
    num_m = np.array([[1.0, 0.0], [1.0, 1.0]])
    num_r = np.array([[2.0, 0.0], [2.0, 2.0]])
    den = np.array([[1.0, 0.0], [1.0, 1.0]])
    point, lo, hi = sig.panel_skill_interval(num_m, num_r, den, block_length=1, n_boot=200)
    assert point == pytest.approx(0.5) and (lo, hi) == pytest.approx((0.5, 0.5))


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


# ----------------------------------------------------------------------------- loss_differential_by_time


def test_loss_differential_by_time_averages_across_assets():
    times = [np.array([3, 1, 2], dtype=np.int64), np.array([2, 4, 3], dtype=np.int64)]
    loss_model = [np.array([3.0, 1.0, 2.0]), np.array([6.0, 8.0, 5.0])]
    loss_ref = [np.array([1.0, 1.0, 1.0]), np.array([3.0, 5.0, 7.0])]
    t, m, r = sig.loss_differential_by_time(times, loss_model, loss_ref)
    np.testing.assert_array_equal(t, [1, 2, 3, 4])
    assert t.dtype == np.int64
    # t=1: A only; t=2: A 2, B 6; t=3: A 3, B 5; t=4: B only
    np.testing.assert_allclose(m, [1.0, (2.0 + 6.0) / 2, (3.0 + 5.0) / 2, 8.0])
    np.testing.assert_allclose(r, [1.0, (1.0 + 3.0) / 2, (1.0 + 7.0) / 2, 5.0])


def test_loss_differential_by_time_keeps_datetime_dtype_and_feeds_dm():
    base = np.datetime64("2024-01-01T00:00", "ns")
    step = np.timedelta64(1, "h")
    times = [base + step * np.arange(6), base + step * np.arange(2, 8)]
    rng = np.random.default_rng(8)
    loss_ref = [rng.uniform(1, 2, 6), rng.uniform(1, 2, 6)]
    loss_model = [x - 0.5 for x in loss_ref]
    t, m, r = sig.loss_differential_by_time(times, loss_model, loss_ref)
    assert t.dtype == times[0].dtype and len(t) == 8
    np.testing.assert_allclose(m - r, -0.5)
    assert sig.diebold_mariano(m, r)["statistic"] < -1e6  # -inf or huge: d is -0.5 up to rounding


def test_loss_differential_by_time_validates_inputs():
    with pytest.raises(ValueError, match="one array per asset"):
        sig.loss_differential_by_time([np.arange(2)], [np.ones(2)], [])
    with pytest.raises(ValueError, match="equal length"):
        sig.loss_differential_by_time([np.arange(3)], [np.ones(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="non-finite"):
        sig.loss_differential_by_time([np.arange(2)], [np.array([1.0, np.nan])], [np.ones(2)])


# ----------------------------------------------------------------------------- joint resampling
def test_panel_resamples_the_same_dates_for_every_asset():
    """Two assets whose model-minus-reference losses are perfectly anti-correlated across dates:
    resampling dates jointly keeps the cancellation (a narrow interval), resampling each asset
    on its own would not."""
    rng = np.random.default_rng(4)
    swing = rng.normal(0, 0.5, 60)
    ref = np.ones((2, 60))
    model = np.vstack([1 + swing, 1 - swing])
    den = np.ones((2, 60))
    _, lo, hi = sig.panel_skill_interval(model, ref, den, block_length=3, n_boot=500)
    assert hi - lo < 1e-9
    apart = [sig.panel_skill_interval(model[[a]], ref[[a]], den[[a]], block_length=3, n_boot=500) for a in (0, 1)]
    assert all(h - low > 0.05 for _, low, h in apart)  # each asset alone is noisy


def test_panel_rejects_bad_input():
    ok = np.ones((2, 5))
    with pytest.raises(ValueError, match="one shape"):
        sig.panel_skill_interval(ok, np.ones((2, 4)), ok)
    with pytest.raises(ValueError, match="positive denominator"):
        sig.panel_skill_interval(ok, ok, np.vstack([np.ones(5), np.zeros(5)]))
    with pytest.raises(ValueError, match="non-finite"):
        sig.panel_skill_interval(np.full((2, 5), np.nan), ok, ok)
    with pytest.raises(ValueError, match="n_boot"):
        sig.panel_skill_interval(ok, ok, ok, n_boot=0)
    with pytest.raises(ValueError, match="level"):
        sig.panel_skill_interval(ok, ok, ok, level=1.0)
    with pytest.raises(ValueError, match="block_length"):
        sig.panel_skill_interval(ok, ok, ok, block_length=0)
