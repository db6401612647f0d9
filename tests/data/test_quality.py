"""Data-quality report: planted bad bars are found, acted on as reported, and every row is
accounted for (rows_out = rows_in - rows_dropped + rows_inserted); workers give equal output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finmoirai.data.lake import extract, write_partitions
from finmoirai.data.parallel import map_assets
from finmoirai.data.preprocessing import ACTIONS, preprocess, quality_headline, quality_report
from finmoirai.params.data import ExtractConfig, SplitConfig
from tests.helpers import MARKET, preprocess_config

CFG = preprocess_config(max_fill_bars=3, outlier_window=24, outlier_threshold=10.0, outlier_action="replace",
                        min_train_rows=10, workers=1)
SPLIT = SplitConfig(train_end="2018-01-08", val_end="2018-01-10")


def clean_bars(start: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": np.maximum(open_, close) * 1.002,
                         "low": np.minimum(open_, close) * 0.998, "close": close,
                         "volume": rng.uniform(10, 20, n)})


def planted() -> pd.DataFrame:
    """Two weeks of hourly crypto bars with one or more of each kind of bad bar at known rows."""
    df = clean_bars("2018-01-01", 14 * 24, seed=1)
    df.loc[20, ["high", "low"]] = [df.loc[20, "low"], df.loc[20, "high"]]  # high < low
    df.loc[40, "close"] = df.loc[40, "high"] * 1.001  # close above high (inconsistent, not high < low)
    df.loc[60, "low"] = 0.0  # non-positive price
    df.loc[80, "open"] = -3.0  # non-positive price
    df.loc[100, "volume"] = 0.0  # zero volume
    df.loc[120, ["close", "high"]] = df.loc[120, "close"] * 4  # spike -> Hampel outlier
    df = df.drop(index=range(150, 155))  # a gap of 5 bars (long: > max_fill_bars=3)
    df = df.drop(index=[200])  # a single missing bar
    dup = df.loc[[250]].assign(close=df.loc[250, "close"] * 1.0005, high=df.loc[250, "high"] * 1.0005)
    df = pd.concat([df.loc[:250], dup, df.loc[251:]])  # a duplicate timestamp (the later row wins)
    order = list(range(len(df)))
    order[280], order[281] = order[281], order[280]  # one pair out of order
    return df.iloc[order].reset_index(drop=True)


@pytest.fixture
def report(tmp_path: Path) -> tuple[dict, Path]:
    lake = tmp_path / "lake"
    write_partitions(lake, "crypto", "BAD", planted(), sort=False)
    write_partitions(lake, "crypto", "OK", clean_bars("2018-01-01", 14 * 24, seed=2), sort=False)
    fx = clean_bars("2018-01-01", 14 * 24, seed=3)  # two fx weekends: 2 x 48 off-calendar bars
    write_partitions(lake, "fx", "FXX", fx, sort=False)
    extract(lake, ExtractConfig(asset_classes=["crypto", "fx"], frequency="1h", years=[2018], symbols=[]),
            tmp_path / "ext", strict=True, naive_timezone=None)
    metrics = tmp_path / "metrics" / "data_quality.json"
    preprocess(tmp_path / "ext", SPLIT, CFG, tmp_path / "pre", MARKET, metrics_path=metrics)
    return json.loads((tmp_path / "pre" / "quality_report.json").read_text()), tmp_path


def test_metrics_hold_the_headline_totals_only(report) -> None:
    rep, root = report
    headline = json.loads((root / "metrics" / "data_quality.json").read_text())
    assert headline == quality_headline(rep)
    assert all(isinstance(v, int) for v in headline.values())  # flat: one `dvc exp show` column each
    assert headline["rows_out"] == rep["totals"]["rows_out"] and headline["assets"] == 3
    assert headline["bad_bars"] >= rep["assets"]["BAD"]["non_positive_price"] + rep["assets"]["BAD"]["unsorted"]


def test_planted_bad_bars_are_counted(report) -> None:
    rep, _ = report
    bad = rep["assets"]["BAD"]
    assert bad["rows_in"] == 14 * 24 - 6 + 1
    assert bad["high_below_low"] == 1
    assert bad["inconsistent_high_low"] == 2  # the swapped pair and the close above high
    assert bad["non_positive_price"] == 2
    assert bad["zero_volume"] == 1
    assert bad["outliers"] == 1
    assert bad["duplicate_timestamps"] == 1
    assert bad["unsorted"] == 1
    assert bad["gaps_filled"] == 5 + 1 + 2  # the two missing runs and the two dropped bad-price rows
    assert bad["long_gaps"] == 1
    assert bad["off_calendar"] == 0
    assert bad["rows_dropped"] == 3 and bad["rows_inserted"] == 8 and bad["rows_out"] == 14 * 24
    ok = rep["assets"]["OK"]
    assert all(ok[k] == 0 for k in ACTIONS), ok
    assert rep["assets"]["FXX"]["off_calendar"] == 96 and rep["assets"]["FXX"]["rows_dropped"] == 96


def test_every_row_is_accounted_for_and_every_kind_has_an_action(report) -> None:
    rep, _ = report
    for sym, q in rep["assets"].items():
        assert q["rows_in"] - q["rows_dropped"] + q["rows_inserted"] == q["rows_out"], sym
        assert q["rows_dropped"] == sum(q[k] for k, a in ACTIONS.items() if a["action"] == "dropped"), sym
        assert set(ACTIONS) <= set(q)
    assert set(rep["actions"]) == set(ACTIONS)
    assert {a["action"] for a in rep["actions"].values()} <= {"dropped", "repaired", "kept", "flagged",
                                                                "inserted", "reordered"}
    totals = rep["totals"]
    assert totals["assets"] == 3 and totals["assets_with_bad_bars"] == 2
    for key in ("rows_in", "rows_out", "rows_dropped", "gaps_filled", "non_positive_price"):
        assert totals[key] == sum(q[key] for q in rep["assets"].values())
    assert all(isinstance(v, int) for v in totals.values())


def test_report_matches_what_was_written(report) -> None:
    rep, root = report
    out = pd.read_parquet(root / "pre" / "BAD.parquet")
    assert len(out) == rep["assets"]["BAD"]["rows_out"]
    # unobserved = inserted gaps + the replaced outlier; repaired and zero-volume rows stay observed
    assert (~out["observed"]).sum() == rep["assets"]["BAD"]["gaps_filled"] + rep["assets"]["BAD"]["outliers"]
    assert (out["high"] >= out["low"]).all() and (out[["open", "high", "low", "close"]] > 0).all(axis=None)
    quality = json.loads((root / "pre" / "quality.json").read_text())
    assert quality["BAD"]["rows_dropped"] == rep["assets"]["BAD"]["rows_dropped"]


def test_workers_give_identical_outputs(report) -> None:
    rep, root = report
    cfg2 = CFG.replace(workers=2)
    preprocess(root / "ext", SPLIT, cfg2, root / "pre2", MARKET, metrics_path=root / "m2.json")
    assert json.loads((root / "m2.json").read_text()) == quality_headline(rep)
    for name in ("BAD.parquet", "OK.parquet", "FXX.parquet", "scalers.json", "manifest.json", "quality.json",
                 "quality_report.json"):
        assert (root / "pre" / name).read_bytes() == (root / "pre2" / name).read_bytes(), name


def test_errors_in_workers_name_the_asset(report) -> None:
    _, root = report
    (root / "ext" / "OK.parquet").write_bytes(b"not parquet")
    cfg2 = CFG.replace(workers=2)
    with pytest.raises(Exception, match="OK.parquet|Parquet|parquet"):
        preprocess(root / "ext", SPLIT, cfg2, root / "pre3", MARKET)


def _boom(x: int) -> int:
    if x == 3:
        raise ValueError("asset 3: broken")
    return x * 2


@pytest.mark.parametrize("workers", [1, 2])
def test_map_assets_keeps_order_and_raises_at_the_failing_item(workers: int) -> None:
    got = []
    with pytest.raises(ValueError, match="asset 3"):
        for value in map_assets(_boom, list(range(8)), workers):
            got.append(value)
    assert got == [0, 2, 4]


def test_quality_report_of_nothing() -> None:
    assert quality_report({})["totals"]["assets"] == 0
