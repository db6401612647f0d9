import dataclasses

import numpy as np
import pandas as pd
import pytest

from finmoirai.data.calendars import BarCalendar
from finmoirai.evaluation import scores, trading
from finmoirai.evaluation.series import AssetSeries, carry_forward, usable_prices
from tests.helpers import price_series

PRICES = np.array([100.0, 101, 102, 100, 99, 99, 100, 103, 104])


def _series(price: np.ndarray, observed: np.ndarray | None = None) -> AssetSeries:
    return price_series(price, observed, start="2019-05-01", test_start=1)


def _strategy(series: AssetSeries, origins: np.ndarray, samples: np.ndarray, stride: int, **kwargs):
    """The rule as evaluate runs it: price paths -> % log returns from the last close -> the
    scored trading signal at the holding step -> positions."""
    hold = min(stride, samples.shape[-1])
    last = carry_forward(series.price, usable_prices(series))[origins - 1]
    signal = pd.DataFrame(scores.trading_signal(100 * np.log(samples / last[:, None, None]), hold - 1))
    return trading.strategy_returns(series, origins, signal, hold=hold, **kwargs)


def _constant_forecasts(series: AssetSeries, origins: np.ndarray, returns: list[float], horizon: int = 2) -> np.ndarray:
    """Every sample path flat at last price * (1 + r): median forecast return r, zero spread."""
    last = series.price[origins - 1]
    return np.stack([np.full((5, horizon), p * (1 + r)) for p, r in zip(last, returns)])


def test_periods_per_year():
    """A year of the asset's calendar at its bar period (2019): 24/7 every hour; 24/5 261
    weekdays minus the Friday evening and plus the Sunday evening; XNYS 252 sessions of 7 hourly
    bars less the half-days' 3; daily bars are sessions."""
    def year(calendar: str, period: str) -> int:
        series = dataclasses.replace(price_series(np.full(10, 100.0)), bars=BarCalendar(calendar, pd.Timedelta(period)))
        return trading.periods_per_year(series)

    assert year("24/7", "1h") == 8760 and year("24/5", "1h") == 6264 and year("XNYS", "1h") == 1755
    assert year("XNYS", "1D") == 252 and year("24/7", "1D") == 365 and year("XLON", "1D") == 253
    with pytest.raises(ValueError, match="no trading calendar"):
        trading.periods_per_year(dataclasses.replace(price_series(np.full(10, 100.0)), bars=None))


def test_sharpe_of_alternating_returns():
    r = np.array([0.02, 0.0, 0.02, 0.0])  # mean 1%, sample std 1% * sqrt(4/3)
    assert trading.sharpe_ratio(r, 8760) == pytest.approx(np.sqrt(0.75 * 8760))
    assert np.isnan(trading.sharpe_ratio(np.zeros(5), 8760))


def test_max_drawdown_of_known_paths():
    # equity 1.1, 0.88, 0.924, 0.8316, 1.08108: worst fall is 1.1 -> 0.8316
    assert trading.max_drawdown(np.array([0.1, -0.2, 0.05, -0.1, 0.3])) == pytest.approx(1 - 0.8316 / 1.1)
    assert trading.max_drawdown(np.array([-0.5, 1.0])) == pytest.approx(0.5)  # the start counts as a peak
    assert trading.max_drawdown(np.array([0.01, 0.02])) == 0.0


def test_known_positions_turnover_costs_and_accuracy():
    s = _series(PRICES)
    origins = np.array([1, 3, 5, 7])
    samples = _constant_forecasts(s, origins, [0.01, 0.02, -0.01, 0.0])
    returns, book, info = _strategy(s, origins, samples, stride=2, cost_bps=10.0)
    assert book["position"].tolist() == [1.0, 1.0, -1.0, 0.0]
    assert book["turnover"].tolist() == [1.0, 0.0, 2.0, 1.0]  # open, hold, flip, close
    p = PRICES
    expected = [
        p[1] / p[0] - 1 - 0.001,
        p[2] / p[1] - 1,
        p[3] / p[2] - 1,
        p[4] / p[3] - 1,
        -(p[5] / p[4] - 1) - 0.002,
        -(p[6] / p[5] - 1),
        -0.001,
        0.0,
    ]
    np.testing.assert_allclose(returns.to_numpy(), expected, atol=1e-15)
    assert returns.index[0] == s.timestamps[1] and returns.index[-1] == s.timestamps[8]
    np.testing.assert_allclose(book["realised_return"], [p[i + 2] / p[i] - 1 for i in (0, 2, 4, 6)])
    assert info["cost"] == pytest.approx(0.004)

    m = trading.trading_metrics(returns, book, 8760, info)
    assert m["turnover"] == pytest.approx(1.0)
    assert m["n_trades"] == 3
    assert m["directional_accuracy"] == pytest.approx(1 / 4)  # hit, miss, miss, zero forecast = miss
    assert m["total_return"] == pytest.approx(np.prod(1 + np.array(expected)) - 1)
    assert m["sharpe"] == pytest.approx(np.mean(expected) / np.std(expected, ddof=1) * np.sqrt(8760))
    assert m["cost"] == pytest.approx(0.004)


def test_zero_realised_windows_do_not_count_for_accuracy():
    assert trading.directional_accuracy([0.1, -0.1, 0.2], [0.05, 0.0, -0.01]) == pytest.approx(0.5)
    assert np.isnan(trading.directional_accuracy([0.1], [0.0]))


def test_flat_between_holdings_when_stride_exceeds_horizon():
    s = _series(PRICES)
    origins = np.array([1, 5])
    samples = _constant_forecasts(s, origins, [0.01, 0.01])
    returns, book, _ = _strategy(s, origins, samples, stride=4, cost_bps=10.0)
    # hold 2 bars (H), flat 2: close after bar 2, reopen at bar 5
    np.testing.assert_allclose(returns.to_numpy()[[2, 3]], [-0.001, 0.0])
    assert book["turnover"].tolist() == [2.0, 1.0]


def test_confidence_sizing_is_forecast_over_iqr():
    s = _series(PRICES)
    origins = np.array([1, 3, 5])
    grid = np.linspace(-1, 1, 101)  # quartiles -0.5, 0.5: IQR of last * (1 + f + a * grid) is a
    f, a = np.array([0.01, -0.004, 0.03]), np.array([0.02, 0.01, 0.01])
    last = PRICES[origins - 1]
    samples = np.stack([np.repeat((p * (1 + fi + ai * grid))[:, None], 2, axis=1) for p, fi, ai in zip(last, f, a)])
    _, book, _ = _strategy(s, origins, samples, stride=2, sizing="confidence")
    np.testing.assert_allclose(book["iqr_return"], a)
    np.testing.assert_allclose(book["position"], [0.5, -0.4, 1.0])
    with pytest.raises(ValueError, match="sizing"):
        _strategy(s, origins, samples, stride=2, sizing="kelly")


def test_filled_bars_earn_nothing_and_the_next_observed_bar_takes_the_move():
    observed = np.ones(len(PRICES), dtype=bool)
    observed[3] = False
    filled = PRICES.copy()
    filled[3] = filled[2]
    wild = PRICES.copy()
    wild[3] = 1e6
    origins = np.array([1, 3])
    samples = _constant_forecasts(_series(filled), origins, [0.01, 0.01])
    a, _, _ = _strategy(_series(filled, observed), origins, samples, stride=2)
    b, _, _ = _strategy(_series(wild, observed), origins, samples, stride=2)
    pd.testing.assert_series_equal(a, b)
    assert a.iloc[2] == 0.0 and a.iloc[3] == pytest.approx(PRICES[4] / PRICES[2] - 1)


def test_perfect_foresight_is_always_right():
    rng = np.random.default_rng(0)
    n, h, stride = 600, 24, 24
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    s = _series(price)
    origins = np.arange(100, n - h + 1, stride)
    truth = np.stack([price[o : o + h] for o in origins])
    samples = truth[:, None, :] * np.exp(rng.normal(0, 1e-6, (len(origins), 9, h)))
    returns, book, info = _strategy(s, origins, samples, stride=stride, cost_bps=0.0)
    m = trading.trading_metrics(returns, book, 8760, info)
    assert m["directional_accuracy"] == 1.0
    assert m["total_return"] > 0.5 and m["sharpe"] > 5
    wrong = _strategy(s, origins, 2 * price[origins - 1][:, None, None] - samples, stride=stride)
    assert trading.trading_metrics(wrong[0], wrong[1], 8760)["directional_accuracy"] == 0.0


def test_signal_uses_only_the_samples_and_past_prices():
    rng = np.random.default_rng(1)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    origins = np.array([50, 74, 98])
    samples = 100 * np.exp(rng.normal(0, 0.02, (3, 20, 24)))
    _, a, _ = _strategy(_series(price), origins, samples, stride=24)
    later = price.copy()
    later[74:] *= 1.5
    _, b, _ = _strategy(_series(later), origins, samples, stride=24)
    cols = ["position", "forecast_return", "iqr_return"]
    pd.testing.assert_frame_equal(a[cols].iloc[:2], b[cols].iloc[:2])  # origins 50 and 74 see bars < 74 only
    assert a["forecast_return"].iloc[2] != b["forecast_return"].iloc[2]


def test_overlapping_origins_are_an_error():
    s = _series(PRICES)
    origins = np.array([1, 2])
    with pytest.raises(ValueError, match="overlap"):
        _strategy(s, origins, _constant_forecasts(s, origins, [0.01, 0.01]), stride=2)


def test_a_forecast_within_its_monte_carlo_error_takes_no_position():
    """Driftless paths: the median of 100 samples is noise around zero, beyond one standard
    error in about 32% of windows (|Z| > 1), so about 68% stay flat (without the rule: none);
    the same paths shifted by far more than that noise are always traded."""
    s = _series(100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 4100))))
    origins = np.arange(100, 4098, 2)
    rng = np.random.default_rng(1)
    last = s.price[origins - 1][:, None, None]
    noise = last * np.exp(rng.normal(0, 0.01, (len(origins), 100, 2)).cumsum(axis=2))
    _, book, _ = _strategy(s, origins, noise, stride=2)
    assert 0.6 < (book["position"] == 0).mean() < 0.76
    _, sure, _ = _strategy(s, origins, noise * 1.05, stride=2)
    assert (sure["position"] == 1).all()


def test_buy_and_hold_is_long_over_the_held_bars_with_one_entry_cost():
    s = _series(PRICES)
    origins = np.array([1, 3, 5, 7])
    returns, book, info = trading.buy_and_hold(s, origins, hold=2, cost_bps=10.0)
    assert (book["position"] == 1).all() and info["cost"] == pytest.approx(10.0 * 1e-4)
    assert np.prod(1 + returns.to_numpy()) == pytest.approx(PRICES[-1] / PRICES[0] * (1 - 1e-3), rel=1e-4)


def test_the_sharpe_standard_error_shrinks_with_more_bars():
    rng = np.random.default_rng(2)
    short, long = rng.normal(0.001, 0.01, 500), rng.normal(0.001, 0.01, 8000)
    se_short, se_long = (trading.sharpe_standard_error(r, periods_per_year=1) for r in (short, long))
    assert se_short == pytest.approx(1 / np.sqrt(500), rel=0.25)  # iid: about sqrt((1 + SR^2 / 2) / T)
    assert se_long == pytest.approx(1 / np.sqrt(8000), rel=0.25)
