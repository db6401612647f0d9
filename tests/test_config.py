"""The whole of params.yaml is validated at every stage's start: the shipped file passes, and
each cross-section rule fails with one line naming the numbers and what to change."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from finmoirai.config import declared_params, validate_params
from finmoirai.params.base import ParamsError, load_yaml

REPO = Path(__file__).resolve().parents[1]
SHIPPED = load_yaml(REPO / "params.yaml")


def changed(**changes) -> dict:
    params = copy.deepcopy(SHIPPED)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = params
        for key in path:
            node = node[key]
        node[last] = value
    return params


def test_the_shipped_params_are_valid() -> None:
    parsed = validate_params(SHIPPED)
    assert parsed.knobs.context_length >= 5 * parsed.knobs.prediction_length
    assert parsed.evaluate.threads == parsed.pretrain.threads == 2


def test_context_shorter_than_five_horizons_names_the_numbers_and_the_way_out() -> None:
    with pytest.raises(ParamsError, match=r"context_length=100, prediction_length=30: the context is 3.3x the "
                                          r"horizon, the rule is >= 5x .*context_length >= 150.*min_context_ratio"):
        validate_params(changed(context_length=100, prediction_length=30))
    validate_params(changed(context_length=100, prediction_length=30, min_context_ratio=3))  # relaxed on purpose


def test_a_window_over_the_token_budget_names_the_tokens() -> None:
    with pytest.raises(ParamsError, match=r"patch_size=8: a window is 28 variates x 24 patches = 672 tokens > "
                                          r"model.max_seq_len 512"):
        validate_params(changed(patch_size=8))
    validate_params(changed(patch_size=8, model__max_seq_len=1024))
    with pytest.raises(ParamsError, match="33 variates"):  # the calendar adds five known-future variates
        validate_params(changed(patch_size=8, calendar=True, model__max_seq_len=672))


def test_a_typo_anywhere_fails_in_any_stage() -> None:
    with pytest.raises(ParamsError, match=r"baselines.models: unknown \['arima'\]"):
        validate_params(changed(baselines__models=["rw_ewma", "arima"]))
    with pytest.raises(ParamsError, match="unknown top-level key patchsize"):
        validate_params(changed(patchsize=64))
    with pytest.raises(ParamsError, match="model.scaler: zero_mean needs target log_return"):
        validate_params(changed(target="level"))
    with pytest.raises(ParamsError, match="market_proxy: no proxy for asset class.*equity"):
        validate_params(changed(features__market_proxy={"crypto": "BTC", "fx": "EURUSD"}))


def test_a_synthetic_share_needs_a_synthetic_corpus() -> None:
    with pytest.raises(ParamsError, match=r"pretrain.synthetic_share: 0.3 .* build.synthetic_assets is 0"):
        validate_params(changed(pretrain__synthetic_share=0.3))
    with pytest.raises(ParamsError, match=r"pretrain.synthetic_share: null or a number in \[0, 1\], got 1.5"):
        validate_params(changed(pretrain__synthetic_share=1.5, build__synthetic_assets=10))
    validate_params(changed(pretrain__synthetic_share=0.3, build__synthetic_assets=10))
    validate_params(changed(pretrain__synthetic_share=0))  # the real-only control needs no corpus


def test_the_recipe_and_scaling_params_are_checked() -> None:
    with pytest.raises(ParamsError, match=r"pretrain.symbols: DOGE not in extract.symbols \['BTC', 'SPY'\]"):
        validate_params(changed(extract__symbols=["BTC", "SPY"], pretrain__symbols=["BTC", "DOGE"]))
    with pytest.raises(ParamsError, match=r"pretrain.symbols: repeated"):
        validate_params(changed(pretrain__symbols=["BTC", "BTC"]))
    validate_params(changed(pretrain__symbols=["BTC"]))  # checked against the build when extract takes all
    with pytest.raises(ParamsError, match=r"features.max_return_gap: null or a number of bars >= 0, got -1"):
        validate_params(changed(features__max_return_gap=-1))
    validate_params(changed(features__max_return_gap=6, model__covariate_scaler="std", model__scale_halflife=48))


def test_every_stage_declares_sections_that_exist() -> None:
    for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]:
        for name in declared_params(stage, REPO / "dvc.yaml"):
            assert name.split(".")[0] in SHIPPED, (stage, name)


def test_a_bad_param_stops_the_first_stage_with_one_line(tmp_path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(changed(evaluate__sizing="kelly")))
    done = subprocess.run([sys.executable, str(REPO / "stages" / "extract.py"), "data/extracted"], cwd=tmp_path,
                          capture_output=True,
                          text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "error: param evaluate.sizing: 'sign' or 'confidence', got 'kelly'"
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was extracted


def test_every_stage_sweeps_what_killed_stages_left(tmp_path, monkeypatch):
    """Sibling staging copies (an older version's layout, or finmoirai/atomic.py's fallback for an
    output on another filesystem) are outside every DVC output, so a restore from the run cache
    keeps them; the next stage that runs removes those of every stage."""
    import shutil

    from finmoirai.config import sweep_stale_outputs

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    left = ["data/.datasets.partial/x", "dvclive/.pretrain.partial/plots/a.tsv", "models/.pretrained.old/w",
            ".plots.partial/data/x.csv", "metrics/.pretrain.json.partial"]
    kept = ["data/datasets/keep", "dvclive/pretrain/plots/keep.tsv", "metrics/pretrain.json"]
    for rel in left + kept:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    monkeypatch.chdir(tmp_path)
    sweep_stale_outputs()
    remaining = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert remaining == sorted([*kept, "dvc.yaml"])


@pytest.mark.parametrize(("change", "message"), [
    ({"baselines__models": ["rw_ewma"]}, "param evaluate.reference: 'garch_t' must be one of baselines.models"),
    ({"lake__path": "/lakes/mine"},
     "param evaluate.lake_path: data/lake is the demo lake's folder, but lake.path is /lakes/mine; to score the "
     "pipeline's own data set evaluate.lake_path: /lakes/mine"),
    ({"evaluate__split": "val", "evaluate__symbols": ["BTC"]}, "param evaluate.split: 'val' scores this repo's"),
    ({"evaluate__transaction_cost_bps": {"crypto": 5.0}},
     "param evaluate.transaction_cost_bps: no cost for asset class(es) fx, equity"),
    ({"evaluate__market_proxy": {"crypto": "BTCUSD"}},
     "param evaluate.market_proxy: {'crypto': 'BTCUSD'} names the proxies of another lake, but evaluate scores the "
     "pipeline's own data"),
    ({"extract__frequency": "1w"}, "param extract.frequency: '1w' is not a bar frequency"),
    ({"extract__frequency": "7m"}, "param extract.frequency: 7m bars do not fit a trading day"),
    ({"extract__frequency": "2d"}, "param extract.frequency: 2d bars do not fit a trading day"),
    ({"market__calendars": {"crypto": "24/7", "fx": "24/5"}},
     "param market.calendars: no calendar for asset class(es) equity of extract.asset_classes"),
    ({"market__calendars": {"crypto": "24/7", "fx": "24/5", "equity": "WALLST"}},
     "param market.calendars: equity: 'WALLST' is not a calendar"),
    ({"market__symbol_calendars": {"VOD": "LONDON"}}, "param market.symbol_calendars: VOD: 'LONDON' is not a calendar"),
    ({"market__bar_stamp": "middle"}, "param market.bar_stamp: 'middle' is not one of start, end"),
    ({"evaluate__accelerator": "tpu"}, "param evaluate.accelerator: 'tpu' is not one of cpu, gpu, cuda, mps, auto"),
    ({"evaluate__devices": 2}, "param evaluate.devices: evaluate forecasts on one device, got 2"),
    ({"evaluate__reference_models": {"garch_t": "Salesforce/moirai-1.1-R-small"}},
     "param evaluate.reference_models: garch_t is already a model's name"),
    ({"evaluate__reference_models": {"Moirai-Small": "Salesforce/moirai-1.1-R-small"}},
     "param evaluate.reference_models: Moirai-Small: a name is lower case letters"),
    ({"evaluate__reference_models": {"small": " "}}, "param evaluate.reference_models: small names no checkpoint"),
    ({"forecast__quantiles": [0.5, 0.1]}, "param forecast.quantiles: increasing and distinct"),
    ({"forecast__quantiles": [0.0, 0.5]}, "param forecast.quantiles: levels strictly between 0 and 1"),
    ({"extract__frequency": "1m"},  # a day of one-minute crypto bars is 1,440: two seasons and a horizon
     "param baselines.lookback: 500 bars, but the seasonal baselines need two seasons of 1440 1m bars "
     "(crypto on 24/7)"),
])
def test_evaluation_rules_across_sections(change, message) -> None:
    with pytest.raises(ParamsError) as raised:
        validate_params(changed(**change))
    assert str(raised.value).startswith(message), raised.value


@pytest.mark.parametrize(("change", "warning"), [
    ({"extract__frequency": "1d", "patch_size": 64, "baselines__lookback": 500},
     "patch_size 64: Moirai's authors use 16..32 for daily bars (extract.frequency 1d)"),
    ({"extract__frequency": "5m", "baselines__lookback": 700},
     "context_length 168: the model sees less than one trading day of 5m bars (288 on 24/7, crypto)"),
])
def test_frequency_warnings(change, warning) -> None:
    """A patch size outside Moirai's range for the frequency, or a context shorter than a trading
    day, is a warning (a user may mean it), not an error."""
    from finmoirai.config import check_frequency

    assert warning in check_frequency(validate_params(changed(**change)))
    assert check_frequency(validate_params(changed())) == []


def test_patch_ranges_are_uni2ts_defaults() -> None:
    """The recommended patch sizes are uni2ts's own table (Moirai paper), read by frequency kind."""
    from uni2ts.transform.patch import DefaultPatchSizeConstraints

    from finmoirai.config import recommended_patch_sizes

    table = DefaultPatchSizeConstraints.DEFAULT_RANGES
    assert recommended_patch_sizes(pd.Timedelta(minutes=5))[1] == table["T"]
    assert recommended_patch_sizes(pd.Timedelta(hours=1))[1] == table["H"]
    assert recommended_patch_sizes(pd.Timedelta(hours=4))[1] == table["H"]
    assert recommended_patch_sizes(pd.Timedelta(days=1))[1] == table["D"]


def test_a_misspelt_key_is_named_with_the_key_it_meant() -> None:
    """A typo is both an unknown key and a missing one: the line names the typo and its likely
    key, not the gap it left."""
    typo = changed()
    typo["pretrain"]["max_step"] = typo["pretrain"].pop("max_steps")
    with pytest.raises(ParamsError, match=r"^param pretrain: unknown key max_step \(a typo of max_steps\?\); known: "):
        validate_params(typo)
    with pytest.raises(ParamsError, match=r"^param split\.val_end is missing$"):
        validate_params({**changed(), "split": {"train_end": "2019-01-01"}})
    with pytest.raises(ParamsError, match=r"^param model\.dropout: expected a number, got '0\.1'$"):
        validate_params(changed(model__dropout="0.1"))
