import numpy as np
import pandas as pd
import pytest

from finmoirai.evaluation.baselines import random_walk_samples
from finmoirai.evaluation.metrics import gluonts_metrics
from finmoirai.evaluation.series import AssetSeries, Windows, origins_for


def _series(n=300, seed=0):
    rng = np.random.default_rng(seed)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return AssetSeries(
        symbol="AAA",
        timestamps=pd.date_range("2019-01-01", periods=n, freq="h", tz="UTC"),
        target_z=(price - 100) / 10,
        covariates=np.zeros((n, 1)),
        price=price,
        observed=np.ones(n, dtype=bool),
        test_start=200,
        to_price=lambda z, origins: z * 10 + 100,
    )


def test_origins_stay_in_test_period():
    origins = origins_for(test_start=200, length=300, context_length=50, prediction_length=24, stride=24)
    assert origins[0] == 200 and np.all(origins + 24 <= 300)
    assert list(origins) == [200, 224, 248, 272]
    assert len(origins_for(290, 300, 50, 24, 24)) == 0


def test_point_forecast_metrics_match_hand_computation():
    s = _series()
    origins = np.array([200, 224])
    h = 24
    forecast = np.stack([np.full((5, h), s.price[o - 1]) for o in origins])  # naive, all samples equal
    w = Windows(series=s, origins=origins, samples={"naive": forecast})
    m = gluonts_metrics([w], "naive", context_length=50, prediction_length=h)
    truth = np.stack([s.price[o : o + h] for o in origins])
    point = forecast[:, 0, :]
    err = truth - point
    assert m["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-9)
    assert m["mse"] == pytest.approx((err**2).mean(), rel=1e-9)
    # A point forecast's quantile loss at every level is |error|, so wQL = sum|e| / sum|y|.
    assert m["crps"] == pytest.approx(np.abs(err).sum() / np.abs(truth).sum(), rel=1e-6)


def test_unobserved_truth_is_not_scored():
    s = _series()
    origins = np.array([200])
    forecast = np.full((1, 5, 24), s.price[199])
    base = gluonts_metrics([Windows(s, origins, {"m": forecast})], "m", 50, 24)
    s.price = s.price.copy()
    s.price[210] = 1e6  # a filled bar with a wild value must not count
    s.observed[210] = False
    masked = gluonts_metrics([Windows(s, origins, {"m": forecast})], "m", 50, 24)
    assert masked["mae"] < base["mae"] * 2


def test_random_walk_is_centred_on_last_price_and_widens():
    s = _series()
    paths = random_walk_samples(s, np.array([250]), context_length=100, prediction_length=24, num_samples=4000, seed=1)
    median = np.median(paths[0], axis=0)
    assert median[0] == pytest.approx(s.price[249], rel=0.01)
    spread = np.quantile(paths[0], 0.95, axis=0) - np.quantile(paths[0], 0.05, axis=0)
    assert spread[-1] > 3 * spread[0]  # ~ sqrt(24) wider at the end of the horizon
