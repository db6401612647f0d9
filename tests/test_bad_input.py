"""The bad-input suite (`make check`): lakes other people wrote, planted with one fault each,
run through the real stage scripts as DVC runs them. Every case ends in one of two ways: the
one line the user sees (naming the file, asset or parameter, and what to do), or a repair or
omission that the data-quality report counts. Nothing is dropped silently, and a failed stage
leaves no half-written output."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yaml

from finmoirai.data.calendars import BarCalendar
from finmoirai.runtime import run_stage

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.bad_input

SYMBOLS = ("BTC", "ETH", "LTC")  # three crypto assets, one year of hourly bars; BTC is the market proxy
PLANTED = {
    "lake": {"path": "lake", "strict": True, "naive_timezone": None},
    "extract": {"asset_classes": ["crypto"], "years": [2018], "symbols": []},
    "split": {"train_end": "2018-09-01", "val_end": "2018-11-01"},
    "features": {"market_proxy": {"crypto": "BTC"}, "workers": 1},
    "preprocess": {"workers": 1},
    "evaluate": {"lake_path": "lake"},  # the pipeline's own lake
}
STAGE_PATHS = {
    "extract": ["data/extracted"],
    "preprocess": ["data/extracted", "data/preprocessed", "metrics/data_quality.json"],
    "features": ["data/preprocessed", "data/features"],
    "build": ["data/features", "data/datasets"],
}


def bars(start: str, n: int, seed: int, tz: str | None = "UTC") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return pd.DataFrame({"timestamp": pd.date_range(start, periods=n, freq="h", tz=tz), "open": close,
                         "high": close * 1.002, "low": close * 0.998, "close": close,
                         "volume": rng.uniform(1.0, 2.0, n)})


def write_file(lake: Path, symbol: str, df: pd.DataFrame | pl.DataFrame, year: str = "2018",
               asset_class: str = "crypto", symbol_dir: str | None = None) -> Path:
    d = lake / f"asset_class={asset_class}" / "frequency=1h" / (symbol_dir or f"symbol={symbol}") / f"year={year}"
    d.mkdir(parents=True, exist_ok=True)
    frame = df if isinstance(df, pl.DataFrame) else pl.from_pandas(df)
    frame.write_parquet(d / "data.parquet")
    return d / "data.parquet"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A work dir with the shipped params (the PLANTED selection merged in) and a clean lake;
    each test plants its fault."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in PLANTED.items():
        params[key] = {**params[key], **value}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for i, symbol in enumerate(SYMBOLS):
        write_file(tmp_path / "lake", symbol, bars("2018-01-01", 24 * 365, seed=i))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def set_params(project: Path, **sections: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for key, value in sections.items():
        params[key] = {**params[key], **value}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage(name: str) -> str | None:
    """Run stage `name` in-process as its script's entry point does; the line it exits with, or
    None when it succeeded."""
    main = runpy.run_path(str(REPO / "stages" / f"{name}.py"), run_name="stage")["main"]
    try:
        run_stage(name, lambda: main(STAGE_PATHS[name]))
    except SystemExit as e:
        return str(e.code)
    return None


def run_until(last: str) -> None:
    for name in STAGE_PATHS:
        assert stage(name) is None, name
        if name == last:
            return


def quality(project: Path) -> dict:
    return json.loads((project / "data" / "preprocessed" / "quality_report.json").read_text())


def no_partials(project: Path) -> bool:
    return not [p for p in project.rglob("*") if p.name.endswith((".partial", ".old"))]


# --------------------------------------------------------------------------- partitions


MALFORMED = {
    "symbol=": ("crypto/frequency=1h/symbol=/year=2018", "symbol= partition with an empty value"),
    "yeer=2018": ("crypto/frequency=1h/symbol=ETH/yeer=2018", "not a year=<YYYY> partition directory"),
    "year=20x8": ("crypto/frequency=1h/symbol=ETH/year=20x8", "year partition '20x8' is not a four-digit year"),
    "no symbol=": ("crypto/frequency=1h/ETH", "not a symbol=<value> partition directory"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_partition_is_an_error_or_listed_as_skipped(project, case):
    folder, why = MALFORMED[case]
    planted = project / "lake" / f"asset_class={folder}"
    planted.mkdir(parents=True)
    bars("2018-01-01", 100, seed=9).to_parquet(planted / "data.parquet" if "year" in planted.name else
                                                planted / "x.parquet")
    shown = planted.relative_to(project / "lake").as_posix()
    reported = shown if case != "symbol=" else planted.parent.relative_to(project / "lake").as_posix()
    assert stage("extract") == (f"error: lake lake: {reported}: {why}; fix or remove it, or set lake.strict: false "
                                "to skip it (then it is listed in the data-quality report)")
    assert not (project / "data" / "extracted").exists() and no_partials(project)
    set_params(project, lake={"strict": False})
    run_until("preprocess")
    skipped = quality(project)["skipped_partitions"]
    assert skipped == [{"path": reported, "reason": why}]
    assert json.loads((project / "metrics" / "data_quality.json").read_text())["skipped_partitions"] == 1
    assert [a["symbol"] for a in json.loads((project / "data/extracted/manifest.json").read_text())["assets"]] == \
        list(SYMBOLS)  # no asset named "" and no hidden ".parquet" file


def test_bars_outside_their_year_partition_stop_the_run_or_are_counted(project):
    """A year=2018 file that also holds 2019's first two days: under strict the run stops with
    the file and the counts; under lake.strict: false they are dropped and counted."""
    path = write_file(project / "lake", "ETH", bars("2018-01-01", 24 * 365 + 48, seed=1))
    assert stage("extract") == (f"error: lake lake: symbol ETH: {path.relative_to(project)}: 48 of 8808 bars are "
                                "from 2019, not the partition's year=2018; move them to their year's partition, or "
                                "set lake.strict: false to drop and count them")
    assert not (project / "data" / "extracted").exists() and no_partials(project)
    set_params(project, lake={"strict": False})
    run_until("preprocess")
    report = quality(project)
    eth = report["assets"]["ETH"]
    assert (eth["wrong_year"], eth["rows_in"], eth["rows_dropped"], eth["rows_out"]) == (48, 8808, 48, 8760)
    assert report["totals"]["wrong_year"] == 48 and report["actions"]["wrong_year"]["action"] == "dropped"
    assert json.loads((project / "metrics" / "data_quality.json").read_text())["bad_bars"] == 48


LAKE_PATH_MISTAKES = {
    "missing": ("nowhere", "error: param lake.path: nowhere does not exist; point it at a hive-partitioned lake "
                           "(asset_class=<c>/frequency=<f>/symbol=<s>/year=<y>/*.parquet), or leave it at data/lake "
                           "for the embedded demo"),
    "a file": ("lake/asset_class=crypto/frequency=1h/symbol=BTC/year=2018/data.parquet",
               "error: param lake.path: lake/asset_class=crypto/frequency=1h/symbol=BTC/year=2018/data.parquet is a "
               "file, not a folder; point it at the lake's top folder, the one holding asset_class=<c> folders"),
    "no partitions": (".", "error: param lake.path: . has no asset_class=<c> partitions (it holds lake, params.yaml); "
                           "lake is a lake: point lake.path at it"),
}


@pytest.mark.parametrize("case", list(LAKE_PATH_MISTAKES))
def test_each_lake_path_mistake_is_one_line_before_any_stage_runs(project, case):
    """`finmoirai check` (what `make repro` runs before `dvc repro`, whose own line for a
    missing dependency would not name lake.path) and the extract stage give the same line."""
    path, line = LAKE_PATH_MISTAKES[case]
    set_params(project, lake={"path": path}, evaluate={"lake_path": path})
    checked = subprocess.run([sys.executable, "-m", "finmoirai.cli", "check"], capture_output=True, text=True)
    assert (checked.returncode, checked.stderr.strip(), checked.stdout) == (1, line, "")
    if case == "no partitions":  # the stage stages inside its output, data/extracted/, which "." then holds too
        line = line.replace("(it holds lake, params.yaml)", "(it holds data, lake, params.yaml)")
    assert stage("extract") == line


# --------------------------------------------------------------------------- file contents


def test_naive_timestamps_need_their_time_zone(project):
    """A New York equity feed stored without a zone: never read as UTC (which put 62% of its
    bars off the trading calendar), but an error until lake.naive_timezone names the zone."""
    xnys = BarCalendar("XNYS", pd.Timedelta(hours=1))  # New York's sessions of 2018, holidays and half-days
    local = xnys.grid(pd.Timestamp("2018-01-02", tz="UTC"), pd.Timestamp("2018-12-29", tz="UTC"))
    local = local.tz_convert("America/New_York").tz_localize(None)
    spy = bars("2018-01-01", len(local), seed=5, tz=None).assign(timestamp=local)
    path = write_file(project / "lake", "SPY", spy, asset_class="equity")
    set_params(project, extract={"asset_classes": ["crypto", "equity"]},
               features={"market_proxy": {"crypto": "BTC", "equity": "SPY"}})
    assert stage("extract") == (f"error: lake lake: symbol SPY: {path.relative_to(project)}: timestamps have no "
                                "time zone; set lake.naive_timezone to the zone they were recorded in (e.g. UTC, "
                                "America/New_York)")
    set_params(project, lake={"naive_timezone": "America/New_York"})
    run_until("preprocess")
    spy_quality = quality(project)["assets"]["SPY"]
    assert spy_quality["off_calendar"] == 0 and spy_quality["gaps_filled"] == 0 and spy_quality["rows_out"] == len(spy)


def test_a_bad_time_zone_name_is_a_param_error(project):
    set_params(project, lake={"naive_timezone": "New York"})
    assert stage("extract") == ("error: param lake.naive_timezone: 'New York' is not a time zone name "
                                "(such as UTC or America/New_York)")


def test_text_in_a_price_column_is_named_with_an_example(project):
    df = pl.from_pandas(bars("2018-01-01", 24 * 365, seed=1)).with_columns(pl.col("close").cast(pl.String))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 17).then(pl.lit("n/a")).otherwise(pl.col("close"))
                         .alias("close"))
    path = write_file(project / "lake", "ETH", df)
    assert stage("extract") == (f"error: lake lake: symbol ETH: {path.relative_to(project)}: column close is not "
                                "numeric (String): 1 of 8760 values do not parse as numbers, e.g. 'n/a' in row 17")


def test_null_timestamps_get_their_own_count(project):
    df = pl.from_pandas(bars("2018-01-01", 24 * 365, seed=1))
    df = df.with_columns(pl.when(pl.int_range(pl.len()).is_in([5, 6, 7])).then(None).otherwise(pl.col("timestamp"))
                         .alias("timestamp"))
    write_file(project / "lake", "ETH", df)
    run_until("preprocess")
    eth = quality(project)["assets"]["ETH"]
    assert (eth["null_timestamps"], eth["duplicate_timestamps"], eth["off_calendar"]) == (3, 0, 0)
    assert eth["gaps_filled"] == 3 and eth["rows_dropped"] == 3  # their slots are filled, and flagged unobserved


def test_corrupt_file_missing_column_unknown_symbol_and_empty_lake(project):
    path = write_file(project / "lake", "ETH", bars("2018-01-01", 10, seed=1))
    path.write_bytes(b"PAR1 not really")
    assert stage("extract").startswith(f"error: lake lake: corrupt parquet file {path.relative_to(project)} (")
    write_file(project / "lake", "ETH", bars("2018-01-01", 10, seed=1).drop(columns=["volume"]))
    assert stage("extract") == f"error: lake lake: symbol ETH: column volume missing in {path.relative_to(project)}"
    write_file(project / "lake", "ETH", bars("2018-01-01", 24 * 365, seed=1))
    set_params(project, extract={"symbols": ["BTC", "XRP"]})
    assert stage("extract").startswith("error: lake lake: symbol(s) XRP not in asset_classes=['crypto'] ")
    set_params(project, extract={"symbols": [], "years": [2030]})
    assert stage("extract").startswith("error: lake lake: empty selection, no data for ")


# --------------------------------------------------------------------------- assets


def test_an_asset_too_short_for_the_feature_windows_is_named_with_the_window(project):
    write_file(project / "lake", "LTC", bars("2018-08-20", 24 * 100, seed=2))  # 2400 bars, BTC and ETH 8760
    set_params(project, features={"cross_window": 3000}, preprocess={"min_train_rows": 200})
    run_until("preprocess")
    assert stage("features") == ("error: asset LTC: covariate mkt_relstr is all NaN: the asset has 2400 bars, too few "
                                 "for features.cross_window=3000 (bars shared with the market proxy: 2400); lower "
                                 "that window, extend the asset's data, or set preprocess.on_bad_asset: skip")
    set_params(project, preprocess={"on_bad_asset": "skip"})
    assert stage("features") is None
    manifest = json.loads((project / "data/features/manifest.json").read_text())
    assert [a["symbol"] for a in manifest["assets"]] == ["BTC", "ETH"]
    assert manifest["skipped_assets"]["LTC"].startswith("covariate mkt_relstr is all NaN")


def test_an_asset_without_test_bars_trains_and_is_named(project, caplog):
    write_file(project / "lake", "LTC", bars("2018-01-01", 24 * 200, seed=2))  # ends in July
    run_until("preprocess")
    assert "LTC has no test rows (data ends before the test period); it trains but cannot be scored" in caplog.text
    assert json.loads((project / "data/preprocessed/quality.json").read_text())["LTC"]["test_rows"] == 0


def test_no_asset_with_validation_or_test_bars_stops_before_any_dataset(project):
    set_params(project, split={"train_end": "2018-06-01", "val_end": "2019-03-01"})
    run_until("extract")
    assert stage("preprocess") == ("error: no asset has bars in the test period from 2019-03-01 (split.val_end); "
                                   "move the split dates inside the data, or extract other years")
    set_params(project, split={"train_end": "2019-02-01", "val_end": "2019-03-01"})
    assert stage("preprocess") == ("error: no asset has bars in the validation period 2019-02-01 .. 2019-03-01 "
                                   "(split.train_end .. split.val_end); move the split dates inside the data, or "
                                   "extract other years")
    assert not (project / "data" / "preprocessed").exists() and no_partials(project)


def test_a_bad_asset_is_skipped_and_reported_when_asked(project):
    write_file(project / "lake", "LTC", bars("2018-08-25", 24 * 120, seed=2))  # 168 training bars
    run_until("extract")
    assert stage("preprocess") == ("error: asset LTC: 168 observed training rows before 2018-09-01 (of 2880 rows), "
                                   "need preprocess.min_train_rows=500")
    set_params(project, preprocess={"on_bad_asset": "skip"})
    assert stage("preprocess") is None
    assert quality(project)["skipped_assets"] == {"LTC": "168 observed training rows before 2018-09-01 "
                                                          "(of 2880 rows), need preprocess.min_train_rows=500"}
    assert json.loads((project / "metrics" / "data_quality.json").read_text())["skipped_assets"] == 1
    assert [a["symbol"] for a in json.loads((project / "data/preprocessed/manifest.json").read_text())["assets"]] == \
        ["BTC", "ETH"]
    run_until("build")


def test_a_skipped_market_proxy_is_named(project):
    write_file(project / "lake", "BTC", bars("2018-08-25", 24 * 120, seed=0))
    set_params(project, preprocess={"on_bad_asset": "skip"})
    run_until("preprocess")
    assert stage("features").startswith("error: market proxy BTC of asset class crypto was skipped by preprocess "
                                         "(168 observed training rows")


# --------------------------------------------------------------------------- failed and killed stages


def test_a_stage_that_fails_at_asset_two_leaves_the_previous_output(project):
    run_until("preprocess")
    before = {p.relative_to(project): p.read_bytes() for p in project.glob("**/*") if p.is_file()
              and p.parts[len(project.parts)] in ("data", "metrics")}
    write_file(project / "lake", "ETH", bars("2018-08-25", 24 * 120, seed=1))  # ETH: too few training bars
    assert stage("extract") is None
    assert stage("preprocess").startswith("error: asset ETH: 168 observed training rows")
    after = {p.relative_to(project): p.read_bytes() for p in project.glob("**/*") if p.is_file()
             and p.parts[len(project.parts)] in ("data", "metrics") and "extracted" not in p.parts}
    assert after == {k: v for k, v in before.items() if "extracted" not in k.parts}  # BTC.parquet alone: never
    assert no_partials(project)


def test_partials_of_a_killed_run_are_removed_by_the_next_run(project):
    stale_files = ("data/extracted/.partial/0/extracted/BTC.parquet", "data/preprocessed/.partial/old/0-x",
                   "data/.extracted.partial/BTC.parquet", "data/.preprocessed.old/x",  # an older version's
                   "metrics/.data_quality.json.partial")
    for stale in stale_files:
        (project / stale).parent.mkdir(parents=True, exist_ok=True)
        (project / stale).write_text("left by a killed run")
    run_until("preprocess")
    assert no_partials(project)


def test_a_stage_process_prints_one_line_not_a_traceback(project):
    path = write_file(project / "lake", "ETH", bars("2018-01-01", 10, seed=1).drop(columns=["close"]))
    env = dict(os.environ)
    env.pop("FINMOIRAI_VERBOSE", None)
    done = subprocess.run([sys.executable, str(REPO / "stages" / "extract.py"), "data/extracted"], cwd=project,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (f"error: lake lake: symbol ETH: column close missing in "
                                                     f"{path.relative_to(project)}")
    assert "Traceback" not in done.stderr
    verbose = subprocess.run([sys.executable, str(REPO / "stages" / "extract.py"), "--verbose", "data/extracted"],
                             cwd=project, capture_output=True, text=True, env=env, timeout=300)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "DataError" in verbose.stderr


def test_a_library_failure_names_the_stage_and_asset(project, monkeypatch):
    run_until("extract")
    import finmoirai.data.preprocessing as preprocessing

    clean_bars = preprocessing.clean_bars
    monkeypatch.setattr(preprocessing, "clean_bars", lambda df: 1 / 0)
    assert stage("preprocess") == ("error: asset BTC: ZeroDivisionError: division by zero")
    monkeypatch.setattr(preprocessing, "clean_bars", clean_bars)
    monkeypatch.setattr("finmoirai.data.preprocessing.write_json", lambda *a: {}["no such key"])
    assert stage("preprocess") == ("error: stage preprocess failed: KeyError: 'no such key' "
                                   "(--verbose or FINMOIRAI_VERBOSE=1 for the traceback)")
