"""Preprocess stage: calendars, gap filling, bad-bar repair, outliers, scalers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from exchange_calendars.errors import InvalidCalendarName

from finmoirai.data.calendars import BarCalendar
from finmoirai.data.preprocessing import (
    apply_scaler,
    clean_asset,
    fit_scaler,
    invert_scaler,
    preprocess,
    trading_grid,
)
from finmoirai.errors import DataError
from finmoirai.params.base import ParamsError
from finmoirai.params.data import MarketConfig, PreprocessConfig, SplitConfig
from tests.helpers import preprocess_config

CFG = preprocess_config(max_fill_bars=3, outlier_window=24, outlier_threshold=10.0, outlier_action="replace",
                        min_train_rows=10, workers=1)
SPLIT = SplitConfig(train_end="2018-01-03", val_end="2018-01-04")
COLS = ["open", "high", "low", "close", "volume"]
HOUR = pd.Timedelta(hours=1)
CRYPTO, FX, NYSE = BarCalendar("24/7", HOUR), BarCalendar("24/5", HOUR), BarCalendar("XNYS", HOUR)
MARKET = MarketConfig.shipped("market")


def bars(timestamps, seed: int = 0) -> pd.DataFrame:
    """Consistent random-walk bars at the given UTC timestamps."""
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True))
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, len(ts))))
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": np.maximum(open_, close) * 1.001,
                         "low": np.minimum(open_, close) * 0.999, "close": close,
                         "volume": rng.uniform(1, 10, len(ts))})


def hours(start: str, n: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="1h", tz="UTC")


# --------------------------------------------------------------------------- calendars and gaps


def test_crypto_gaps_filled_flat_with_observed_mask() -> None:
    raw = bars(hours("2018-01-01", 48)).drop(index=[10, 11])
    out, counts = clean_asset(raw, CRYPTO, CFG)
    assert len(out) == 48 and counts["gaps_filled"] == 2 and counts["long_gaps"] == 0
    assert out["observed"].tolist() == [i not in (10, 11) for i in range(48)]
    prev_close = out.loc[9, "close"]
    for i in (10, 11):
        assert out.loc[i, ["open", "high", "low", "close"]].tolist() == [prev_close] * 4
        assert out.loc[i, "volume"] == 0
    assert out["timestamp"].diff().dropna().eq(pd.Timedelta("1h")).all()


def test_long_gaps_counted_beyond_max_fill_bars() -> None:
    raw = bars(hours("2018-01-01", 60))
    raw = raw.drop(index=list(range(10, 13)) + list(range(30, 34)))  # runs of 3 (ok) and 4 (long)
    _, counts = clean_asset(raw, CRYPTO, CFG)
    assert counts["gaps_filled"] == 7 and counts["long_gaps"] == 1


def test_fx_weekend_is_not_a_gap() -> None:
    # Friday 2018-01-05 12:00 UTC .. Monday 2018-01-08 06:00 UTC, winter: closed Fri 22:00 - Sun 22:00 UTC
    all_hours = hours("2018-01-05 12:00", 67)
    grid = trading_grid(FX, pd.Series(all_hours))
    weekend = all_hours[(all_hours >= "2018-01-05 22:00") & (all_hours < "2018-01-07 22:00")]
    assert len(weekend) == 48 and not grid.isin(weekend).any() and len(grid) == 67 - 48
    raw = bars(grid.delete(15))  # one genuine gap on Monday
    out, counts = clean_asset(raw, FX, CFG)
    assert counts["gaps_filled"] == 1 and len(out) == len(grid) and (~out["observed"]).sum() == 1


def test_fx_summer_opens_sunday_21_utc() -> None:
    # New York 17:00 is 21:00 UTC in US summer time, as the EURUSD data shows
    grid = trading_grid(FX, pd.Series(hours("2017-07-07 18:00", 60)))
    stamps = set(grid.strftime("%a %H:%M"))
    assert "Sun 21:00" in stamps and "Fri 20:00" in stamps and "Fri 21:00" not in stamps


def test_equity_session_grid_holiday_and_early_close() -> None:
    """XNYS in July 2019: Wednesday the 3rd closes at 13:00, Thursday the 4th is a holiday.
    Neither gives a filled bar: the early close has 4 bars (the 12:30 one ends at 13:00), the
    holiday none; a genuinely missing bar on Monday is the only gap."""
    days = {"2019-07-01": 7, "2019-07-02": 7, "2019-07-03": 4, "2019-07-05": 7}
    wall = [f"{day} {9 + h}:30" for day, n in days.items() for h in range(n)]
    utc = pd.DatetimeIndex(wall).tz_localize("America/New_York").tz_convert("UTC")
    grid = trading_grid(NYSE, pd.Series(utc))
    assert grid.equals(pd.DatetimeIndex(utc, name="timestamp").as_unit("us"))
    out, counts = clean_asset(bars(utc.delete(2)), NYSE, CFG)  # Monday 11:30 missing
    assert len(out) == 25 and counts["gaps_filled"] == 1 and counts["long_gaps"] == 0 and not out.loc[2, "observed"]
    local = out["timestamp"].dt.tz_convert("America/New_York")
    assert not (local.dt.day == 4).any() and (local[local.dt.day == 3].dt.hour.max()) == 12
    # a feed that prints after the early close: those bars are off the calendar, not new grid points
    late = pd.DatetimeIndex(["2019-07-03 13:30", "2019-07-03 15:30"]).tz_localize("America/New_York")
    _, counts = clean_asset(bars(utc.append(late.tz_convert("UTC")).sort_values()), NYSE, CFG)
    assert counts["off_calendar"] == 2 and counts["gaps_filled"] == 0


def test_bar_stamped_at_its_end_and_daily_bars() -> None:
    """market.bar_stamp: end stamps 09:30-10:30 at 10:30 and the short last bar at the close;
    daily bars are the sessions at 00:00 UTC, holidays left out."""
    end = BarCalendar("XNYS", HOUR, "end")
    grid = end.grid(pd.Timestamp("2019-07-03", tz="UTC"), pd.Timestamp("2019-07-04", tz="UTC"))
    assert list(grid.tz_convert("America/New_York").strftime("%H:%M")) == ["10:30", "11:30", "12:30", "13:00"]
    daily = BarCalendar("XNYS", pd.Timedelta(days=1)).grid(pd.Timestamp("2019-07-01", tz="UTC"),
                                                            pd.Timestamp("2019-07-08", tz="UTC"))
    assert list(daily.strftime("%m-%d %H:%M")) == ["07-01 00:00", "07-02 00:00", "07-03 00:00", "07-05 00:00",
                                                   "07-08 00:00"]
    raw = bars(daily.delete(1).append(pd.DatetimeIndex([daily[1] + pd.Timedelta(hours=16)])).sort_values())
    out, counts = clean_asset(raw, BarCalendar("XNYS", pd.Timedelta(days=1)), CFG)
    assert counts["off_grid"] == 1 and counts["gaps_filled"] == 1 and len(out) == 5


def test_london_session_on_its_own_clock() -> None:
    """XLON 5-minute bars: 08:00-16:30 London, so 102 bars a day in summer and winter, Christmas
    Eve closing at 12:30."""
    xlon = BarCalendar("XLON", pd.Timedelta(minutes=5))
    grid = xlon.grid(pd.Timestamp("2018-12-20", tz="UTC"), pd.Timestamp("2018-12-29", tz="UTC"))
    per_day = pd.Series(grid.tz_convert("Europe/London").date).value_counts().sort_index()
    assert per_day.to_dict() == {pd.Timestamp(d).date(): n for d, n in
                                 {"2018-12-20": 102, "2018-12-21": 102, "2018-12-24": 54, "2018-12-27": 102,
                                  "2018-12-28": 102}.items()}


def test_a_feed_stamped_off_the_grid_is_refused_never_taken_as_the_grid() -> None:
    raw = bars(hours("2018-01-01", 48) + pd.Timedelta(milliseconds=123))  # every bar at :00:00.123
    with pytest.raises(DataError, match=r"asset X: 48 of 48 bars are off the grid of 1h bars on 24/7 \(e\.g\. "
                                        r"2018-01-01T00:00:00\.123000\+00:00.*stamp each bar at its start "
                                        r"\(market\.bar_stamp\)"):
        clean_asset(raw, CRYPTO, CFG, "X")


def test_a_few_off_grid_bars_are_counted_under_their_own_kind_and_dropped() -> None:
    stamps = hours("2018-01-01", 48)
    raw = bars(stamps.delete(10).append(pd.DatetimeIndex([stamps[10] + pd.Timedelta(milliseconds=123)])))
    out, counts = clean_asset(raw, CRYPTO, CFG, "X")
    assert counts["off_grid"] == 1 and counts["off_calendar"] == 0 and counts["gaps_filled"] == 1
    assert out["timestamp"].tolist() == stamps.tolist() and not out.loc[10, "observed"]
    assert counts["rows_in"] - counts["rows_dropped"] + counts["rows_inserted"] == len(out)
    # an equity bar on the hour is off New York's :30 grid, one at 8:30 is on it but off the session
    ny = pd.DatetimeIndex([f"2019-07-15 {h}:30" for h in range(9, 16)]).tz_localize("America/New_York")
    extra = pd.DatetimeIndex(["2019-07-15 12:00", "2019-07-15 08:30"]).tz_localize("America/New_York")
    _, counts = clean_asset(bars(ny.append(extra).tz_convert("UTC")), NYSE, CFG, "Y")
    assert counts["off_grid"] == 1 and counts["off_calendar"] == 1


def test_bars_dropped_by_extract_are_counted_as_read_from_the_lake() -> None:
    out, counts = clean_asset(bars(hours("2018-01-01", 24)), CRYPTO, CFG, "X", wrong_year=5)
    assert counts["wrong_year"] == 5 and counts["rows_in"] == 29 and counts["rows_dropped"] == 5 and len(out) == 24


def test_unknown_calendar() -> None:
    """params validation names market.calendars first (test_config); the library's own error is the backstop."""
    with pytest.raises(InvalidCalendarName, match="bonds"):
        trading_grid(BarCalendar("bonds", HOUR), pd.Series(hours("2018-01-01", 3)))


# --------------------------------------------------------------------------- bad bars and outliers


def test_bad_bars_repaired_and_counted() -> None:
    raw = bars(hours("2018-01-01", 48))
    raw.loc[5, ["high", "low"]] = [raw.loc[5, "low"], raw.loc[5, "high"]]  # high < low
    raw.loc[6, "close"] = raw.loc[6, "high"] * 1.0005  # close above high
    raw.loc[7, "low"] = -1.0  # non-positive price
    raw.loc[8, "close"] = np.nan  # NaN price
    raw.loc[9, "volume"] = 0.0
    raw.loc[10, "open"] = np.inf  # infinite price: as unusable as NaN
    raw.loc[11, "volume"] = np.inf  # infinite volume: set to 0 like NaN
    dup = raw.loc[[20]].assign(close=raw.loc[20, "close"] * 1.001, high=raw.loc[20, "high"] * 1.002)
    raw = pd.concat([raw, dup])  # duplicate timestamp: the later row wins
    raw = raw.iloc[[1, 0, *range(2, len(raw))]]  # unsorted
    out, counts = clean_asset(raw, CRYPTO, CFG)
    assert counts["inconsistent_high_low"] == 2
    assert counts["non_positive_price"] == 3 and counts["gaps_filled"] == 3
    assert counts["zero_volume"] == 2 and counts["duplicate_timestamps"] == 1
    assert counts["unsorted"] == 2  # rows out of order: the swapped pair and the appended duplicate
    assert counts["rows_in"] == 49 and counts["rows_out"] == 48
    assert not out.loc[7, "observed"] and not out.loc[8, "observed"] and out.loc[9, "observed"]
    assert not out.loc[10, "observed"] and out.loc[11, "volume"] == 0.0 and out.loc[11, "observed"]
    assert out.loc[20, "close"] == pytest.approx(dup["close"].iloc[0])
    assert (out["high"] >= out[["open", "close", "low"]].max(axis=1)).all()
    assert (out["low"] <= out[["open", "close", "high"]].min(axis=1)).all()
    assert out["timestamp"].is_monotonic_increasing


def test_hampel_replaces_a_spike() -> None:
    raw = bars(hours("2018-01-01", 100))
    raw.loc[50, ["close", "high"]] = raw.loc[50, "close"] * 5
    out, counts = clean_asset(raw, CRYPTO, CFG)
    assert counts["outliers"] == 1 and not out.loc[50, "observed"]
    neighbours = raw.loc[[49, 51], "close"]
    assert neighbours.min() * 0.98 < out.loc[50, "close"] < neighbours.max() * 1.02
    assert out.loc[50, "high"] >= out.loc[50, ["open", "close"]].max()
    assert out.loc[50, "high"] < raw.loc[49, "close"] * 2
    assert out["observed"].sum() == 99


# --------------------------------------------------------------------------- scalers


def scaled_frame() -> pd.DataFrame:
    out, _ = clean_asset(bars(hours("2018-01-01", 96)), CRYPTO, CFG)  # 3 train days, then val, test
    return out


def test_scaler_fitted_on_training_period_only() -> None:
    df = scaled_frame()
    base = fit_scaler(df, SPLIT, 10, "X")
    later = df["timestamp"] >= SPLIT.train_end_ts
    changed = df.copy()
    changed.loc[later, COLS] *= 7.0
    assert fit_scaler(changed, SPLIT, 10, "X") == base
    changed.loc[~later, "close"] *= 2.0
    assert fit_scaler(changed, SPLIT, 10, "X")["close"] != base["close"]
    train = df[~later]
    assert base["close"]["mean"] == pytest.approx(train["close"].mean())
    assert base["volume"]["mean"] == pytest.approx(np.log1p(train["volume"]).mean())
    assert base["volume"]["transform"] == "log1p" and base["close"]["transform"] == "identity"


def test_scaler_ignores_unobserved_rows_and_constant_columns() -> None:
    df = scaled_frame()
    df.loc[3, "close"] = 1e9
    df.loc[3, "observed"] = False
    df["volume"] = 5.0
    entry = fit_scaler(df, SPLIT, 10, "X")
    assert entry["close"]["mean"] < 1000 and entry["volume"]["std"] == 1.0


def test_scaler_needs_min_train_rows() -> None:
    with pytest.raises(ValueError, match=r"asset X: 48 observed training rows.*min_train_rows=500"):
        fit_scaler(scaled_frame(), SPLIT, 500, "X")


@pytest.mark.parametrize("transform", ["identity", "log1p"])
def test_scaler_round_trip(transform: str) -> None:
    entry = {"mean": 3.2, "std": 0.7, "transform": transform}
    values = np.array([0.0, 1.5, 1234.5, 1e6])
    z = apply_scaler(values, entry)
    assert not np.allclose(z, values)
    np.testing.assert_allclose(invert_scaler(z, entry), values, rtol=1e-10)


def test_preprocess_config_validation() -> None:
    raw = {"max_fill_bars": 6, "outlier_window": 2, "outlier_threshold": 10.0, "outlier_action": "flag",
           "min_train_rows": 5, "workers": 1, "on_bad_asset": "fail"}
    with pytest.raises(ParamsError, match="preprocess.outlier_window"):
        PreprocessConfig.parse(raw, "preprocess")
    with pytest.raises(ParamsError, match="param preprocess.outlier_action: 'median' is not one of flag, replace"):
        PreprocessConfig.parse(raw | {"outlier_window": 48, "outlier_action": "median"}, "preprocess")


# --------------------------------------------------------------------------- stage


def test_preprocess_stage_outputs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "extracted"
    src.mkdir()
    assets = [{"symbol": "AAA", "asset_class": "crypto", "frequency": "1h"},
              {"symbol": "OLD", "asset_class": "crypto", "frequency": "1h"}]
    bars(hours("2018-01-01", 120)).drop(index=[30]).to_parquet(src / "AAA.parquet")
    bars(hours("2018-01-01", 48)).to_parquet(src / "OLD.parquet")  # ends before val/test
    (src / "manifest.json").write_text(json.dumps({"assets": assets}))
    with caplog.at_level(logging.WARNING):
        result = preprocess(src, SPLIT, CFG, tmp_path / "pre", MARKET)
    out = tmp_path / "pre"
    assert "OLD has no test rows (data ends before the test period); it trains but cannot be scored" in caplog.text
    with pytest.raises(DataError, match=r"^no asset has bars in the test period from 2018-02-01 \(split.val_end\); "):
        preprocess(src, SPLIT.replace(val_end="2018-02-01"), CFG, tmp_path / "pre2", MARKET)
    df = pd.read_parquet(out / "AAA.parquet")
    assert list(df.columns) == ["timestamp", *COLS, "observed"] and df["observed"].dtype == bool
    quality = json.loads((out / "quality.json").read_text())
    assert quality["AAA"]["gaps_filled"] == 1 and quality["AAA"]["rows_out"] == 120
    assert (quality["AAA"]["train_rows"], quality["AAA"]["val_rows"], quality["AAA"]["test_rows"]) == (48, 24, 48)
    scalers = json.loads((out / "scalers.json").read_text())
    assert set(scalers["AAA"]) == set(COLS) and scalers == result["scalers"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["assets"][0]["rows_out"] == 120 and manifest["assets"][0]["asset_class"] == "crypto"


@pytest.mark.parametrize("window", [3, 24, 48, 49])
def test_hampel_median_and_mad_match_their_definition(window: int) -> None:
    from finmoirai.data.preprocessing import MAD_SCALE, hampel_flags

    x = np.cumsum(np.random.default_rng(1).standard_t(3, size=400)) * 0.01
    x[[0, 150, 399]] += 0.5  # spikes at both edges and inside
    flags, med, mad = hampel_flags(x, window, 3.0)
    rows = [x[max(0, i - window + 1) : i + 1] for i in range(len(x))]  # trailing, cut at the start
    np.testing.assert_array_equal(med, [np.median(r) for r in rows])
    np.testing.assert_array_equal(mad, [MAD_SCALE * np.median(np.abs(r - m)) for r, m in zip(rows, med)])
    np.testing.assert_array_equal(flags, (mad > 0) & (np.abs(x - med) > 3.0 * mad))
    assert flags[150]


def test_the_hampel_decision_at_t_never_depends_on_later_bars() -> None:
    """No look-ahead: rewriting every bar after t (a reversal, a crash, nothing at all) leaves
    the filter's flags, medians and MADs of bars up to t unchanged."""
    from finmoirai.data.preprocessing import hampel_flags

    rng = np.random.default_rng(4)
    x = np.cumsum(rng.standard_t(3, size=300)) * 0.01
    x[100] += 0.4  # a spike
    x[200:] += 0.4  # a jump that lasts
    full = hampel_flags(x, 48, 10.0)
    for t in (100, 150, 200):
        for after in (x[t + 1 :] - 1.0, x[t + 1 :] * 0 + x[t], rng.normal(0, 1, len(x) - t - 1)):
            changed = hampel_flags(np.concatenate([x[: t + 1], after]), 48, 10.0)
            for a, b in zip(full, changed):
                np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
        cut = hampel_flags(x[: t + 1], 48, 10.0)
        for a, b in zip(full, cut):
            np.testing.assert_array_equal(a[: t + 1], b)
    assert full[0][100]  # the spike is found with bars up to it


def test_outliers_are_only_counted_by_default() -> None:
    raw = bars(hours("2018-01-01", 100))
    raw.loc[50, ["close", "high"]] = raw.loc[50, "close"] * 5
    out, counts = clean_asset(raw, CRYPTO, preprocess_config(outlier_window=24, workers=1))
    assert counts["outliers"] == 1 and out.loc[50, "observed"]
    assert out.loc[50, "close"] == raw.loc[50, "close"]


def test_as_utc_keeps_utc_and_converts_the_rest() -> None:
    from finmoirai.data.preprocessing import as_utc

    utc = pd.Series(pd.date_range("2018-01-01", periods=3, freq="h", tz="UTC", unit="ns"))
    berlin = utc.dt.tz_convert("Europe/Berlin")
    naive = utc.dt.tz_localize(None)
    for ts in (utc, berlin, naive, naive.astype(str)):
        out = as_utc(ts)
        assert str(out.dtype) == "datetime64[us, UTC]"
        assert (out == utc).all()


def test_tokyo_lunch_break_and_end_stamped_bars_give_no_gap() -> None:
    """XTKS 30-minute bars have no bar over the 11:30-12:30 lunch; bars stamped at their end
    (market.bar_stamp: end) fit the end-stamped grid: nothing off the grid, off the calendar or filled."""
    for stamp in ("start", "end"):
        xtks = BarCalendar("XTKS", pd.Timedelta(minutes=30), stamp)
        grid = xtks.grid(pd.Timestamp("2019-03-04", tz="UTC"), pd.Timestamp("2019-03-09", tz="UTC"))
        local = grid.tz_convert("Asia/Tokyo")
        assert not ((local.hour == 12) & (local.minute == 0)).any() and len(grid) == 5 * 10
        _, counts = clean_asset(bars(grid), xtks, CFG)
        assert counts["off_grid"] == counts["off_calendar"] == counts["gaps_filled"] == 0, (stamp, counts)


def test_bars_before_the_calendars_history_are_one_line() -> None:
    raw = bars(pd.date_range("1996-12-30", periods=48, freq="1h", tz="UTC"))
    with pytest.raises(DataError, match=r"bars from 1996-12-30, but calendar XTKS starts on 1997-01-01 "
                                        r"\(exchange-calendars' history\); set extract.years from 1997"):
        clean_asset(raw, BarCalendar("XTKS", HOUR), CFG, "J")
