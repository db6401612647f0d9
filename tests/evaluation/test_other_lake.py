"""evaluate.lake_path: scoring a lake of other years than the demo's, without retraining.

The lake here is BTC and ETH (crypto, the demo's market proxy) from 2022-11 to 2023-01, so its
years never overlap the demo's 2017-2019. Its data stages run with a warm-up split: scalers
and feature statistics are fitted on the selected bars before evaluate.test_start only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from finmoirai.data.preprocessing import split_counts
from finmoirai.evaluation.other_lake import lake_features_for_scoring, other_lake_features, other_lake_selection
from finmoirai.evaluation.run import scored_data
from finmoirai.evaluation.series import load_series
from finmoirai.params import Params
from finmoirai.params.base import ParamsError, load_yaml
from finmoirai.params.data import SplitConfig
from finmoirai.params.evaluation import EvaluateConfig
from tests.helpers import MARKET, write_hourly_lake

REPO = Path(__file__).resolve().parents[2]
RAW = load_yaml(REPO / "params.yaml")
PARAMS = Params.parse(RAW)
PREPROCESS = PARAMS.preprocess
FEATURES = PARAMS.features
EXTRACT = PARAMS.extract
SYMBOLS = {"BTC": "crypto", "ETH": "crypto"}
LAKE_START, LAKE_END = "2022-11-01", "2023-02-01"  # 2208 hourly bars per asset
TEST_START = "2023-01-01"  # 1464 warm-up bars before it, 744 test bars from it
CONTEXT, HORIZON = 64, 16
EVALUATE = {"symbols": ["BTC", "ETH"], "asset_classes": ["crypto"], "years": [2022, 2023], "test_start": TEST_START}


def evaluate_cfg(lake: Path, **overrides) -> EvaluateConfig:
    return EvaluateConfig.shipped("evaluate", lake_path=str(lake), **{**EVALUATE, **overrides})


def score(lake: Path, work: Path, **overrides) -> pd.Timestamp:
    cfg = evaluate_cfg(lake, **overrides)
    return lake_features_for_scoring(lake, other_lake_selection(EXTRACT, cfg), cfg.test_start, PREPROCESS,
                                     other_lake_features(FEATURES, cfg), CONTEXT, HORIZON, work, market=MARKET,
                                     strict=True, naive_timezone=None)


def scalers(work: Path) -> tuple[dict, dict]:
    """(preprocess scalers, features scalers) of a scored lake."""
    return (json.loads((work / "preprocessed" / "scalers.json").read_text()),
            json.loads((work / "features" / "scalers.json").read_text()))


def edit_lake(lake: Path, symbol: str, edit) -> None:
    """Rewrite every year file of `symbol` with edit(frame) (a pandas frame in, one out)."""
    for path in lake.glob(f"asset_class=*/frequency=*/symbol={symbol}/year=*/*.parquet"):
        pl.from_pandas(edit(pl.read_parquet(path).to_pandas())).write_parquet(path)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    return write_hourly_lake(tmp_path_factory.mktemp("other") / "lake", SYMBOLS, LAKE_START, LAKE_END)


@pytest.fixture(scope="module")
def scored(lake, tmp_path_factory) -> tuple[Path, pd.Timestamp]:
    work = tmp_path_factory.mktemp("scored")
    return work, score(lake, work)


def test_lake_years_do_not_overlap_the_demo(lake):
    years = sorted(int(p.name.removeprefix("year=")) for p in lake.glob("*/*/symbol=BTC/year=*"))
    assert years == [2022, 2023] and not set(years) & set(EXTRACT.years)


def test_series_test_start_is_evaluate_test_start(scored):
    work, start = scored
    assert start == pd.Timestamp(TEST_START, tz="UTC")
    series = load_series(work / "features", scalers(work)[0], start, target="level")
    assert [s.symbol for s in series] == ["BTC", "ETH"]
    for s in series:
        assert s.timestamps[s.test_start] == start and s.timestamps[s.test_start - 1] < start
        assert s.test_start == 1464 and len(s.timestamps) - s.test_start == 744


def test_scalers_fit_only_on_bars_before_test_start(lake, scored, tmp_path):
    """Every bar from the test start on changes, and no scaler or feature statistic moves.

    The first outlier_window / 2 test bars change by 1% only: preprocess's Hampel filter is
    centred, so the last warm-up bars' outlier flags (cleaning, as in the main pipeline, not
    fitting) see that far ahead; a 1% move is no outlier. Later bars jump by half."""
    work, start = scored
    changed = tmp_path / "lake"
    shutil.copytree(lake, changed)
    near = pd.Timedelta(hours=PREPROCESS.outlier_window // 2)

    def future_moves(df: pd.DataFrame) -> pd.DataFrame:
        prices = ["open", "high", "low", "close"]
        df.loc[df["timestamp"] >= start, prices] *= 1.01
        df.loc[df["timestamp"] >= start + near, prices] *= 1.5
        df.loc[df["timestamp"] >= start, "volume"] *= 3.0
        return df

    for symbol in SYMBOLS:
        edit_lake(changed, symbol, future_moves)
    assert score(changed, tmp_path / "work") == start
    assert scalers(tmp_path / "work") == scalers(work)
    before = pd.read_parquet(work / "features" / "ETH.parquet")
    after = pd.read_parquet(tmp_path / "work" / "features" / "ETH.parquet")
    warmup = before["timestamp"] < start
    pd.testing.assert_frame_equal(before[warmup], after[warmup])  # features are causal, too
    assert not before[~warmup].equals(after[~warmup])


def test_a_warmup_bar_does_move_the_scalers(lake, scored, tmp_path):
    """The converse, so the test above can fail: one volume change a week before the test start."""
    work, start = scored
    changed = tmp_path / "lake"
    shutil.copytree(lake, changed)

    def past_moves(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[df["timestamp"] == start - pd.Timedelta(days=7), "volume"] *= 50.0
        return df

    edit_lake(changed, "ETH", past_moves)
    score(changed, tmp_path / "work")
    assert scalers(tmp_path / "work")[0]["ETH"]["volume"] != scalers(work)[0]["ETH"]["volume"]


def test_selection_uses_the_evaluate_years_symbols_and_classes(lake):
    cfg = evaluate_cfg(lake)
    selection = other_lake_selection(EXTRACT, cfg)
    assert (selection.years, selection.symbols, selection.asset_classes) == ([2022, 2023], ["BTC", "ETH"], ["crypto"])
    defaults = other_lake_selection(EXTRACT, evaluate_cfg(lake, years=[], symbols=[], asset_classes=[]))
    assert (defaults.years, defaults.symbols, defaults.asset_classes) == (
        EXTRACT.years, EXTRACT.symbols, EXTRACT.asset_classes)


def test_the_evaluate_stage_runs_the_evaluate_selection(lake, tmp_path):
    """run.scored_data: this repo's params plus the evaluate keys."""
    params = {**RAW, "context_length": CONTEXT, "prediction_length": HORIZON, "min_context_ratio": 4,
              "evaluate": {**RAW["evaluate"], "lake_path": str(lake), **EVALUATE}}
    trained = trained_features(tmp_path / "trained", {"BTC": "2017-01-01", "SPY": "2017-01-03"})
    features_dir, preprocessed_dir, start = scored_data(Params.parse(params), trained,
                                                        tmp_path / "work")
    assert start == pd.Timestamp(TEST_START, tz="UTC")
    assert sorted(json.loads((preprocessed_dir / "scalers.json").read_text())) == ["BTC", "ETH"]
    manifest = json.loads((features_dir / "manifest.json").read_text())
    assert manifest["assets"][0]["first"].startswith(LAKE_START)


def trained_features(out: Path, firsts: dict[str, str]) -> Path:
    """A data/features folder whose manifest says the models were trained on `firsts`
    (symbol -> first bar)."""
    out.mkdir(parents=True)
    assets = [{"symbol": s, "asset_class": "crypto", "first": str(pd.Timestamp(f, tz="UTC"))}
              for s, f in firsts.items()]
    (out / "manifest.json").write_text(json.dumps({"assets": assets}))
    return out


def test_scoring_the_training_period_of_a_trained_symbol_is_refused(lake, tmp_path):
    """BTC trained from 2022-11-01 to split.train_end 2023-01-15; scoring it from 2023-01-01
    would score 14 days of its training bars: one line naming both periods, before any work."""
    params = {**RAW, "context_length": CONTEXT, "prediction_length": HORIZON, "min_context_ratio": 4,
              "split": {"train_end": "2023-01-15", "val_end": "2023-01-25"},
              "evaluate": {**RAW["evaluate"], "lake_path": str(lake), **EVALUATE}}
    trained = trained_features(tmp_path / "trained", {"BTC": LAKE_START, "SPY": "2017-01-03"})
    with pytest.raises(ParamsError) as raised:
        scored_data(Params.parse(params), trained, tmp_path / "work")
    assert str(raised.value) == (
        f"evaluate.lake_path {lake}: the scored period (evaluate.test_start 2023-01-01 00:00:00+00:00 to "
        "2024-01-01 00:00:00+00:00) overlaps the models' training period of BTC (2022-11-01 00:00:00+00:00 to "
        "split.train_end 2023-01-15 00:00:00+00:00), which would score in-sample bars; set evaluate.test_start "
        "to 2023-01-15 or later, or leave BTC out of evaluate.symbols")
    assert not (tmp_path / "work").exists()  # refused before the lake's data stages ran


def test_a_period_before_or_after_the_training_period_is_scored(lake, tmp_path):
    """Trained on BTC from 2024 on (after the lake's bars), or with split.train_end before the
    test start: no overlap, nothing refused."""
    from finmoirai.evaluation.other_lake import check_not_in_sample

    selection = other_lake_selection(EXTRACT, evaluate_cfg(lake))
    start = pd.Timestamp(TEST_START, tz="UTC")
    later = [{"symbol": "BTC", "first": "2024-02-01 00:00:00+00:00"}]
    check_not_in_sample(lake, selection, ["BTC", "ETH"], start, later, pd.Timestamp("2025-01-01", tz="UTC"))
    earlier = [{"symbol": "BTC", "first": "2020-01-01 00:00:00+00:00"}]
    check_not_in_sample(lake, selection, ["BTC", "ETH"], start, earlier, start)
    with pytest.raises(ParamsError, match="overlaps the models' training period of BTC"):
        check_not_in_sample(lake, selection, ["BTC", "ETH"], start, earlier, start + pd.Timedelta(hours=1))


def one_line_error(lake: Path, work: Path, **overrides) -> str:
    with pytest.raises(ParamsError) as raised:
        score(lake, work, **overrides)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"evaluate.lake_path {lake}: "), message
    return message


def test_too_short_warmup_is_one_line(lake, tmp_path):
    message = one_line_error(lake, tmp_path, test_start="2022-11-05")
    assert message.endswith(
        "warm-up before evaluate.test_start too short: asset BTC: 96 observed training rows before 2022-11-05 "
        "(of 2208 rows), need preprocess.min_train_rows=500; "
        "set evaluate.test_start later or evaluate.years to include earlier bars"), message


def test_warmup_cut_by_the_evaluate_years_is_one_line(lake, tmp_path):
    message = one_line_error(lake, tmp_path, years=[2023], test_start="2023-01-10")
    assert "asset BTC: 216 observed training rows before 2023-01-10 (of 744 rows)" in message, message
    assert message.endswith("set evaluate.test_start later or evaluate.years to include earlier bars")


def test_empty_year_selection_is_one_line(lake, tmp_path):
    message = one_line_error(lake, tmp_path, years=[2017, 2018, 2019])
    assert message.endswith("empty selection, no bars of years [2017, 2018, 2019] "
                            "(asset_classes=['crypto'] symbols=['BTC', 'ETH']); "
                            "set evaluate.years to years the lake has: [2022, 2023]"), message


def test_no_full_test_window_is_one_line(lake, tmp_path):
    message = one_line_error(lake, tmp_path, test_start="2023-01-31T20:00")
    assert "context_length=64 bars before, prediction_length=16 from it): BTC 4 bars from it (2204 before)" in message
    assert message.endswith("set evaluate.test_start earlier or evaluate.years to include later bars"), message


def test_missing_market_proxy_is_one_line(lake, tmp_path):
    message = one_line_error(lake, tmp_path, symbols=["ETH"])
    assert message.endswith("market proxy BTC of asset class crypto is not in the selection (ETH); add BTC to "
                            "evaluate.symbols (the lake needs its bars for evaluate.years), set "
                            "evaluate.market_proxy.crypto to this lake's name for it, or leave crypto out of "
                            "evaluate.asset_classes"), message


def test_a_lake_that_names_the_proxy_otherwise_is_scored_with_evaluate_market_proxy(tmp_path):
    vendor = write_hourly_lake(tmp_path / "vendor", {"BTCUSD": "crypto", "ETH": "crypto"}, LAKE_START, LAKE_END)
    with pytest.raises(ParamsError, match=r"market proxy BTC of asset class crypto is not in the selection "
                                          r"\(BTCUSD, ETH\).*set evaluate.market_proxy.crypto"):
        score(vendor, tmp_path / "refused", symbols=["BTCUSD", "ETH"])
    score(vendor, tmp_path / "work", symbols=["BTCUSD", "ETH"], market_proxy={"crypto": "BTCUSD"})
    features = json.loads((tmp_path / "work/features/manifest.json").read_text())["assets"]
    assert sorted(a["symbol"] for a in features) == ["BTCUSD", "ETH"]


def test_warmup_split_has_no_validation_period():
    split = SplitConfig.warmup_then_test("2023-01-01")
    ts = pd.Series(pd.date_range("2022-12-31 22:00", periods=4, freq="h", tz="UTC"))
    assert split_counts(ts, split) == {"train_rows": 2, "val_rows": 0, "test_rows": 2}
    with pytest.raises(ParamsError, match="train_end 2023-01-01 must be before val_end 2023-01-01"):
        SplitConfig.parse(dict(split), "split")  # the user's split stays strict


@pytest.mark.parametrize(("raw", "message"), [
    ({"lake_path": " "}, "param evaluate.lake_path: must name a lake"),
    ({"transaction_cost_bps": {"crypto": -1.0}}, "param evaluate.transaction_cost_bps: must be >= 0"),
    ({"lake_path": "x", "test_start": "2023-13-01"}, "param evaluate.test_start: '2023-13-01' is not a date"),
    ({"lake_path": "x", "test_start": ""}, "param evaluate.test_start: '' is not a date"),
    ({"lake_path": "x", "test_start": 2023}, "param evaluate.test_start: 2023 is not of type"),
    ({"lake_path": "x", "years": [2022, 2022]}, "param evaluate.years: duplicate year(s) 2022"),
    ({"lake_path": "x", "years": ["2022"]}, "param evaluate.years[0]: expected an integer"),
])
def test_evaluate_params_are_validated(raw, message):
    with pytest.raises(ParamsError) as raised:
        EvaluateConfig.shipped("evaluate", **raw)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value), raised.value


def test_evaluate_params_accept_another_period():
    cfg = EvaluateConfig.shipped("evaluate", lake_path="x", years=[2024, 2025], test_start="2025-01-01")
    assert cfg.years == [2024, 2025] and cfg.test_start == "2025-01-01"
    assert PARAMS.evaluate.test_start is None  # params.yaml's default
