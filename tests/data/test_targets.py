"""Target representations and calendar covariates: hand-computed arrays."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from finmoirai.data.calendars import BarCalendar, session_position
from finmoirai.data.targets import calendar_features, log_returns, returns_to_prices
from finmoirai.evaluation.series import load_series
from tests.helpers import write_feature_dir


def test_log_returns_are_percent_and_span_gaps():
    close = np.array([100.0, 110.0, 110.0, 99.0])  # bar 2 was filled (flat at the last close)
    observed = np.array([True, True, False, True])
    r = log_returns(close, observed)
    assert math.isnan(r[0]) and math.isnan(r[2])  # no previous bar; a filled bar is not observed
    assert r[1] == pytest.approx(100 * math.log(1.1))
    assert r[3] == pytest.approx(100 * math.log(0.9))  # the whole move since the last observation


def test_a_return_after_a_long_gap_is_missing_with_max_gap():
    """features.max_return_gap: the bar after more unobserved bars than the limit gets no
    return (its move spans the gap); after a shorter gap, and without a limit, it is kept."""
    close = np.array([100.0, 101.0, 101.0, 101.0, 103.0, 103.0, 104.0, 105.0])
    observed = np.array([True, True, False, False, True, False, True, True])  # gaps of 2 and 1 bars
    kept = log_returns(close, observed)
    assert np.isfinite(kept[[1, 4, 6, 7]]).all()
    limited = log_returns(close, observed, max_gap=1)
    assert math.isnan(limited[4])  # after 2 unobserved bars
    assert limited[6] == kept[6] and limited[7] == kept[7] and limited[1] == kept[1]  # after 1, and no gap
    assert np.array_equal(np.isnan(log_returns(close, observed, max_gap=2)), np.isnan(kept))
    assert math.isnan(log_returns(close, observed, max_gap=0)[6])


def test_return_paths_become_prices_anchored_at_the_last_close():
    last = np.array([100.0, 50.0])
    returns = np.zeros((2, 2, 3))
    returns[0, 0] = [100 * math.log(1.1), 0.0, 100 * math.log(0.5)]
    returns[1, 1] = [-100 * math.log(2.0), 100 * math.log(2.0), 100 * math.log(3.0)]
    prices = returns_to_prices(last, returns)
    np.testing.assert_allclose(prices[0, 0], [110.0, 110.0, 55.0])
    np.testing.assert_allclose(prices[0, 1], [100.0, 100.0, 100.0])  # zero returns: the last price
    np.testing.assert_allclose(prices[1, 1], [25.0, 50.0, 150.0])
    np.testing.assert_allclose(prices[1, 0], [50.0, 50.0, 50.0])


HOUR = pd.Timedelta(hours=1)


def test_calendar_features_by_hand():
    ts = pd.DatetimeIndex(["2019-01-07 00:00", "2019-01-07 06:00", "2019-01-09 18:00"], tz="UTC")  # Monday
    cal = calendar_features(ts, BarCalendar("24/7", HOUR))
    np.testing.assert_allclose(cal[:, 0], [0.0, 1.0, -1.0], atol=1e-12)  # sin(2 pi h / 24)
    np.testing.assert_allclose(cal[:, 1], [1.0, 0.0, 0.0], atol=1e-12)
    dow = np.array([0.0, 0.25, 2.75])
    np.testing.assert_allclose(cal[:, 2], np.sin(2 * np.pi * dow / 7))
    assert np.isnan(cal[:, 4]).all()  # no session for a 24/7 market


def test_session_position_of_equity_bars():
    # UTC 14:30 = 09:30 in New York in January (EST) and 13:30 = 09:30 in July (EDT)
    ts = pd.DatetimeIndex(["2019-01-07 14:30", "2019-01-07 17:45", "2019-01-07 20:30", "2019-07-08 13:30",
                           "2019-07-08 21:00"], tz="UTC")
    np.testing.assert_allclose(session_position(ts, "XNYS"), [0.0, 0.5, 6 / 6.5, 0.0, 1.0])
    np.testing.assert_allclose(calendar_features(ts, BarCalendar("XNYS", HOUR))[:, 4], [0.0, 0.5, 6 / 6.5, 0.0, 1.0])
    # the 2019-07-03 half-day closes at 13:00: its 12:30 bar is 6/7 of the way through it
    half_day = pd.DatetimeIndex(["2019-07-03 13:30", "2019-07-03 16:30"], tz="UTC")
    np.testing.assert_allclose(session_position(half_day, "XNYS"), [0.0, 3 / 3.5])
    # London's session is 08:00-16:30 on its own clock (07:00 UTC in summer)
    np.testing.assert_allclose(session_position(pd.DatetimeIndex(["2019-07-08 07:00"], tz="UTC"), "XLON"), [0.0])


def test_daily_bars_have_no_hour_or_session_position():
    ts = pd.DatetimeIndex(["2019-01-07", "2019-01-08"], tz="UTC")
    cal = calendar_features(ts, BarCalendar("XNYS", pd.Timedelta(days=1)))
    assert np.isnan(cal[:, [0, 1, 4]]).all() and np.isfinite(cal[:, [2, 3]]).all()


def test_load_series_log_return_target_prices_from_the_last_close(tmp_path):
    features = write_feature_dir(tmp_path / "f", {"AAA": 400})
    scalers = {"AAA": {"close": {"mean": 100.0, "std": 10.0, "transform": "identity"}}}
    start = pd.Timestamp("2018-09-10", tz="UTC")
    series = load_series(features, scalers, start, target="log_return")[0]
    frame = pd.read_parquet(features / "AAA.parquet")
    observed = frame["observed"].to_numpy()
    np.testing.assert_array_equal(np.isnan(series.target_z[1:]), ~observed[1:])
    assert series.covariates.shape == (400, 3) and series.calendar.shape == (400, 5)
    origins = np.array([series.test_start, series.test_start + 24])
    paths = series.to_price(np.zeros((2, 3, 4)), origins)  # zero returns: flat at the close before the origin
    np.testing.assert_allclose(paths[:, 0, 0], frame["close_raw"].to_numpy()[origins - 1])
    level = load_series(features, scalers, start, target="level")[0]
    np.testing.assert_allclose(level.to_price(np.ones((1, 1, 2)), origins[:1]), 110.0)
    until = pd.Timestamp("2018-09-12", tz="UTC")  # the validation view ends its scored period there
    val = load_series(features, scalers, start, target="level", scored_until=until)[0]
    assert val.scored_end == int((frame["timestamp"] < until).sum()) < len(frame)
    manifest = json.loads((features / "manifest.json").read_text())
    with pytest.raises(ValueError, match="differ from the model's training covariates"):
        load_series(features, scalers, start, covariates=manifest["covariates"], target="log_return")
