"""The forecast command's own pieces: the bars it forecasts, its column names, and what it says
about a folder it cannot use. (Forecasting end to end, against evaluate's scored windows: the
e2e tests.)"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from finmoirai.data.calendars import BarCalendar
from finmoirai.evaluation.forecast_table import quantile_column
from finmoirai.forecasting.bundle import RECIPE_FILE, ModelFolderError, Recipe
from finmoirai.forecasting.forecast import next_bars


def test_the_bars_forecast_follow_the_trading_calendar() -> None:
    """After Friday's last NYSE hour the next bars are Monday's session (no weekend, no night);
    on 24/7 they are the next hours."""
    xnys = BarCalendar("XNYS", pd.Timedelta(hours=1))
    friday_last = pd.Timestamp("2019-09-27T19:30Z")  # 15:30 New York, the session's last hourly bar
    bars = next_bars(xnys, friday_last, 8)
    assert bars[0] == pd.Timestamp("2019-09-30T13:30Z") and len(bars) == 8
    assert all(b.dayofweek < 5 for b in bars) and (bars > friday_last).all()
    crypto = next_bars(BarCalendar("24/7", pd.Timedelta(hours=1)), pd.Timestamp("2019-09-27T19:00Z"), 3)
    assert list(crypto) == list(pd.date_range("2019-09-27T20:00Z", periods=3, freq="h"))


def test_quantile_columns_are_named_by_percent() -> None:
    assert [quantile_column("price", q) for q in (0.05, 0.5, 0.975)] == ["price_q05", "price_q50", "price_q0.975"]


def test_a_folder_that_is_not_a_packaged_model_is_one_line(tmp_path) -> None:
    with pytest.raises(ModelFolderError, match="no such folder"):
        Recipe.read(tmp_path / "missing")
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(ModelFolderError, match=f"no {RECIPE_FILE}, so not a folder this project packaged"):
        Recipe.read(tmp_path / "checkpoint")
    (tmp_path / "checkpoint" / RECIPE_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(ModelFolderError, match="format 99, this finmoirai reads 1"):
        Recipe.read(tmp_path / "checkpoint")
