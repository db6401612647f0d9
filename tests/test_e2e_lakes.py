"""End to end on other lakes than the hourly demo: real `dvc repro` through evaluate on the
demo lake's daily bars (conf/data/daily.yaml), on a synthetic 5-minute crypto lake, and on a
synthetic equity lake that trades on the London Stock Exchange's calendar (XLON)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from tests.test_e2e import TINY, _merge, _run, tiny_repo

pytestmark = pytest.mark.e2e

# Each lake's params on top of the tiny model and training of tests/test_e2e.py (the daily demo:
# its data group, conf/data/daily.yaml, then these).
DAILY = {
    "patch_size": 16, "context_length": 64, "prediction_length": 12,
    "extract": {"symbols": ["SPY", "AAPL", "GSPC"]},
    "evaluate": {"stride": 20},
}
FIVE_MINUTE = {
    "lake": {"source": "synthetic", "synthetic": {"assets": 3, "start": "2018-01-01", "years": 1,
                                                  "class_mix": {"crypto": 1.0, "fx": 0.0, "equity": 0.0}}},
    "extract": {"frequency": "5m", "asset_classes": ["crypto"], "years": [2018], "symbols": []},
    "features": {"market_proxy": {"crypto": "CRY0000"}},
    "split": {"train_end": "2018-03-01", "val_end": "2018-04-01"},
    "baselines": {"lookback": 700},  # two days of 5-minute bars and the horizon, for the seasonal baselines
    "evaluate": {"stride": 2000},
}
LONDON = {
    "lake": {"source": "synthetic", "synthetic": {"assets": 3, "start": "2018-01-01", "years": 1,
                                                  "class_mix": {"crypto": 0.0, "fx": 0.0, "equity": 1.0}}},
    "market": {"calendars": {"equity": "XLON"}},
    "extract": {"frequency": "1h", "asset_classes": ["equity"], "years": [2018], "symbols": []},
    "features": {"market_proxy": {"equity": "EQT0000"}},
    "split": {"train_end": "2018-07-01", "val_end": "2018-09-01"},
    "evaluate": {"stride": 48},
}
LAKES = {"daily": (DAILY, "D", 3), "five_minute": (FIVE_MINUTE, "5min", 3), "london": (LONDON, "h", 3)}


def _tiny(overrides: dict) -> dict:
    """TINY without its hourly demo selection, then the lake's own params."""
    tiny = {k: v for k, v in TINY.items() if k not in ("extract", "features")}
    return _merge(copy.deepcopy(tiny), copy.deepcopy(overrides))


@pytest.mark.parametrize("lake", list(LAKES))
def test_repro_through_evaluate_on_another_lake(tmp_path: Path, lake: str) -> None:
    """Each lake runs every stage and gives finite skill on validation and test, a quality
    report, datasets whose freq is the lake's bar frequency, and tomorrow's forecast."""
    overrides, freq, assets = LAKES[lake]
    repo = tiny_repo(tmp_path / "repo", _tiny(overrides), groups={"data": "daily"} if lake == "daily" else None)
    _run(["dvc", "repro"], repo)
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    for period in ("val", "test"):
        head = metrics[period]
        assert head["windows"] > 0 and math.isfinite(head["skill"]), (lake, period, head)
    quality = json.loads((repo / "metrics/data_quality.json").read_text())
    assert quality["assets"] == assets and quality["rows_out"] > 0, quality
    report = json.loads((repo / "data/preprocessed/quality_report.json").read_text())
    assert set(report["assets"]) and "off_calendar" in report["actions"]
    built = json.loads((repo / "data/datasets/log_return/manifest.json").read_text())
    assert built["freq"] == freq
    forecast = pd.read_parquet(repo / "data/forecast/forecast.parquet")  # the bars after the lake's last, per asset
    assert forecast["symbol"].nunique() == assets and forecast.groupby("symbol").size().eq(12).all(), forecast
    assert (forecast["timestamp"] > forecast["asof"]).all() and forecast["price_q50"].gt(0).all()
    if lake == "london":  # on the exchange's own clock: the session opens at 08:00 London, summer and winter
        frame = pd.read_parquet(next((repo / "data/preprocessed").glob("EQT0001.parquet")))
        local = frame["timestamp"].dt.tz_convert("Europe/London")
        assert local.groupby(local.dt.date).min().dt.strftime("%H:%M").eq("08:00").all()
        assert not (local.dt.strftime("%m-%d") == "12-25").any()
