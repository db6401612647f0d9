import numpy as np
import pandas as pd
import pytest

from finmoirai.evaluation import calibration

GRID = np.linspace(0.0, 1.0, 101)  # np.quantile(GRID, q) == q exactly


def _grid_samples(truth: np.ndarray) -> np.ndarray:
    return np.broadcast_to(GRID[None, :, None], (truth.shape[0], len(GRID), truth.shape[1])).copy()


def test_coverage_of_known_intervals():
    # 0.5 -> [0.25, 0.75], 0.8 -> [0.1, 0.9], 0.9 -> [0.05, 0.95], 0.95 -> [0.025, 0.975]
    truth = np.array([[0.5, 0.2, 0.08, 0.04, 0.01, np.nan]]).T  # (6 windows, 1 step)
    cov = calibration.interval_coverage(_grid_samples(truth), truth)
    assert cov == pytest.approx({0.5: 1 / 5, 0.8: 2 / 5, 0.9: 3 / 5, 0.95: 4 / 5})


def test_coverage_bounds_are_inclusive_and_levels_selectable():
    truth = np.array([[GRID[25], GRID[75], GRID[24], GRID[76]]])  # (1 window, 4 steps)
    cov = calibration.interval_coverage(_grid_samples(truth), truth, levels=(0.5,))
    assert cov == {0.5: pytest.approx(0.5)}


def test_coverage_of_calibrated_gaussian_is_nominal():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((4000, 500, 1))
    truth = rng.standard_normal((4000, 1))
    for level, value in calibration.interval_coverage(samples, truth).items():
        assert value == pytest.approx(level, abs=0.02)


def test_pit_of_truth_at_a_known_quantile():
    samples = np.arange(100.0)[None, :, None]  # 0..99
    assert calibration.pit_values(samples, np.array([[30.5]])) == pytest.approx([0.31])  # 31 samples below
    assert calibration.pit_values(samples, np.array([[-1.0]])) == pytest.approx([0.0])
    assert calibration.pit_values(samples, np.array([[99.5]])) == pytest.approx([1.0])


def test_pit_ties_are_randomised_between_strict_and_non_strict():
    samples = np.arange(100.0)[None, :, None].repeat(2000, axis=0)
    pit = calibration.pit_values(samples, np.full((2000, 1), 30.0), seed=3)
    assert pit.min() >= 0.30 and pit.max() <= 0.31 and pit.std() > 0.002
    np.testing.assert_array_equal(pit, calibration.pit_values(samples, np.full((2000, 1), 30.0), seed=3))
    point = np.zeros((5000, 10, 1))  # a point forecast that is always right: PIT ~ U(0, 1)
    counts = calibration.pit_histogram(calibration.pit_values(point, np.zeros((5000, 1)), seed=1))
    assert counts.min() > 400 and counts.max() < 600


def test_pit_skips_unscored_and_is_uniform_when_calibrated():
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((3000, 200, 2))
    truth = rng.standard_normal((3000, 2))
    truth[::3, 1] = np.nan
    pit = calibration.pit_values(samples, truth)
    assert len(pit) == 6000 - 1000
    counts = calibration.pit_histogram(pit)
    assert counts.sum() == 5000 and counts.min() > 400 and counts.max() < 600
    narrow = calibration.pit_histogram(calibration.pit_values(0.3 * samples, truth))
    assert narrow[0] > 2 * narrow[5] and narrow[-1] > 2 * narrow[5]  # too-narrow intervals: U shape


def test_pit_histogram_counts():
    counts = calibration.pit_histogram(np.array([0.0, 0.05, 0.15, 0.99, 1.0]), bins=10)
    assert counts.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert calibration.pit_histogram(np.array([0.2, 0.7]), bins=2).tolist() == [1, 1]


def test_quantile_crps_by_hand():
    # Samples 0..10 (S=11): the q-quantile is the sample at round(10 q) = 10 q.
    samples = np.arange(11.0)[None, :, None]
    y = 4.0
    losses = [2 * abs((y - 10 * q) * ((10 * q >= y) - q)) for q in calibration.QUANTILES]
    assert calibration.quantile_crps_per_step(samples, np.array([[y]])) == pytest.approx([np.mean(losses) / y])


class _TestData:
    def __init__(self, inputs, labels):
        self.input, self.label = inputs, labels


def _gluonts_wql(samples: np.ndarray, truth: np.ndarray) -> float:
    from gluonts.ev.metrics import MeanWeightedSumQuantileLoss
    from gluonts.model.evaluation import evaluate_forecasts
    from gluonts.model.forecast import SampleForecast

    inputs, labels, forecasts = [], [], []
    for w in range(len(samples)):
        start = pd.Period("2019-05-01 00:00", freq="h") + 24 * w
        inputs.append({"target": np.ones(10), "start": start - 10, "item_id": "A"})
        labels.append({"target": truth[w], "start": start, "item_id": "A"})
        forecasts.append(SampleForecast(samples=samples[w], start_date=start, item_id="A"))
    metric = MeanWeightedSumQuantileLoss(quantile_levels=calibration.QUANTILES)
    frame = evaluate_forecasts(forecasts, test_data=_TestData(inputs, labels), metrics=[metric], seasonality=1)
    return float(frame.iloc[0]["mean_weighted_sum_quantile_loss"])


@pytest.mark.parametrize("num_samples", [100, 37])
def test_quantile_crps_per_step_agrees_with_gluonts(num_samples):
    rng = np.random.default_rng(4)
    truth = 100 * np.exp(rng.normal(0, 0.02, (12, 4)))
    truth[[1, 5], 2] = np.nan
    samples = 100 * np.exp(rng.normal(0, 0.03, (12, num_samples, 4)))
    ours = calibration.quantile_crps_per_step(samples, truth)
    theirs = [_gluonts_wql(samples[:, :, h : h + 1], truth[:, h : h + 1]) for h in range(4)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_quantile_crps_ranks_a_sharper_correct_forecast_first():
    rng = np.random.default_rng(5)
    truth = 10 + rng.standard_normal((500, 2))
    good = 10 + rng.standard_normal((500, 200, 2))
    bad = 10 + 3 * rng.standard_normal((500, 200, 2))
    assert np.all(calibration.quantile_crps_per_step(good, truth) < calibration.quantile_crps_per_step(bad, truth))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="samples must be"):
        calibration.interval_coverage(np.zeros((2, 5, 3)), np.zeros((2, 4)))
