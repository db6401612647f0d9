"""summarise -> headline, report and plots: a confidently wrong model against a calibrated one."""

import json

import numpy as np
import pandas as pd
import pytest

from finmoirai.errors import DataError
from finmoirai.evaluation.metrics import check_same_windows, headline, summarise
from finmoirai.evaluation.plots import plot_all, write_plot_data
from finmoirai.evaluation.report import headline_metrics, markdown_report
from finmoirai.evaluation.scores import score_windows
from finmoirai.evaluation.series import Windows
from finmoirai.params.evaluation import EvaluateConfig
from tests.helpers import price_series

CFG = EvaluateConfig.shipped("evaluate", reference="garch_t")


def _table(windows, samples, models):
    """The score table of precomputed sample paths ({model: {symbol: (W, S, H)}})."""
    fns = {m: (lambda s, o, seed, m=m: samples[m][s.symbol]) for m in models}
    table, _, _ = score_windows(windows, fns, seed=0, context_length=50, prediction_length=24, stride=24)
    return table


def _windows(symbols=("AAA", "BBB"), n_origins=12):
    """Windows of two assets (the second four times as volatile) and sample paths of a good
    reference (garch_t), another good model (rw_ewma) and a confidently wrong one (moirai)."""
    out, samples = [], {"garch_t": {}, "rw_ewma": {}, "moirai": {}}
    for k, symbol in enumerate(symbols):
        rng = np.random.default_rng(k)
        price = (100 + 900 * k) * np.exp(np.cumsum(rng.normal(0, 0.01 * (1 + 3 * k), 800)))
        s = price_series(price)
        s.symbol = symbol
        origins = 200 + 24 * np.arange(n_origins)
        last = s.price[origins - 1][:, None, None]
        sd = 0.01 * (1 + 3 * k)
        good = last * np.exp(rng.normal(0, sd, (n_origins, 200, 24)).cumsum(axis=2))
        also_good = last * np.exp(rng.normal(0, sd, (n_origins, 200, 24)).cumsum(axis=2))
        bad = last * 1.2 * np.exp(rng.normal(0, 0.001, (n_origins, 200, 24)))  # confidently wrong
        out.append(Windows(series=s, origins=origins))
        samples["garch_t"][symbol], samples["rw_ewma"][symbol], samples["moirai"][symbol] = good, also_good, bad
    return out, samples


def test_summary_headline_report_and_plots(tmp_path):
    windows, samples = _windows()
    models = ["moirai", "rw_ewma", "garch_t"]
    table = _table(windows, samples, models)
    result = summarise(table, windows, CFG, 24)
    assert result["reference"] == "garch_t" and result["models"]["garch_t"]["skill"] == 0.0
    assert result["models"]["moirai"]["skill"] < -1.0 and result["models"]["moirai"]["coverage_95"] == 0.0
    assert set(result["skill_vs"]["moirai"]) == {"rw_ewma", "garch_t"}
    assert result["skill_vs"]["moirai"]["garch_t"] == result["models"]["moirai"]["skill"]
    assert len(result["per_step"]["moirai"]) == 24 and sum(result["pit"]["moirai"]) == 2 * 12
    sig = result["significance"]["moirai"]
    assert sig["skill"] == result["models"]["moirai"]["skill"]
    assert sig["skill_lo"] <= sig["skill"] <= sig["skill_hi"] < 0 and sig["dm_stat"] > 0 and sig["dm_n"] == 12
    assert not result["mcs"]["moirai"]["in_set"] and result["mcs"]["garch_t"]["in_set"]
    for scores in result["per_asset"].values():
        assert scores["moirai"]["crps"] > scores["garch_t"]["crps"]

    period = headline(table[table["model"] != "rw_ewma"], "moirai", "garch_t", 24, 24)
    assert period["windows"] == 24 and period["skill"] == pytest.approx(sig["skill"], rel=1e-12)
    head = headline_metrics(result, {"test": period, "val": None}, "test")
    assert head["reference"] == "garch_t" and head["val"]["skill"] is None and head["test"]["dm_p"] == sig["dm_p"]
    assert set(head["moirai"]) == {"crps", "qlike", "msis", "coverage_80"}
    json.dumps(head)  # a DVC metrics file

    meta = {"val_end": "2019-01-09", "windows": 24, "assets": ["AAA", "BBB"], "context_length": 50,
            "prediction_length": 24, "stride": 24, "cost_bps": {"crypto": 5.0}}
    text = markdown_report(result, meta)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[2].startswith("| moirai |") or rows[3].startswith("| moirai |")  # worst CRPS last in the first table
    assert "**moirai** vs garch_t" in text and "Model confidence set" in text and "Skill vs every baseline" in text
    assert "| buy_and_hold |" in text and "± SE" in text
    write_plot_data(result, tmp_path, baselines=["rw_ewma", "garch_t"])
    assert list(pd.read_csv(tmp_path / "crps_by_horizon.csv").columns) == ["step", "moirai"]
    assert list(pd.read_csv(tmp_path / "crps_by_horizon_baselines.csv").columns) == ["step", "rw_ewma", "garch_t"]
    assert list(pd.read_csv(tmp_path / "cumulative_returns.csv").columns) == ["days", "moirai", "buy_and_hold"]
    pit = pd.read_csv(tmp_path / "pit_baselines.csv")
    assert pit["garch_t"].mean() == pytest.approx(1.0)  # a density over [0, 1]
    plot_all(result, tmp_path / "img")
    assert {p.name for p in (tmp_path / "img").glob("*.png")} == {"calibration.png", "crps_by_horizon.png", "pit.png",
                                                                  "cumulative_returns.png"}


def test_the_skill_weighs_every_asset_alike():
    """Doubling the loss on the volatile asset and halving it on the calm one leaves the
    geometric skill at 0; a ratio of means would follow the volatile asset."""
    windows, samples = _windows()
    for w, factor in zip(windows, (0.5, 2.0)):
        anchor = w.series.price[w.origins - 1][:, None, None]
        reference = samples["garch_t"][w.series.symbol]
        samples["moirai"][w.series.symbol] = anchor * (reference / anchor) ** factor  # wider or narrower returns
    result = summarise(_table(windows, samples, ["moirai", "garch_t"]), windows, CFG, 24)
    per_asset = result["per_asset"]
    ratios = [per_asset[s]["moirai"]["crps"] / per_asset[s]["garch_t"]["crps"] for s in ("AAA", "BBB")]
    assert result["models"]["moirai"]["skill"] == pytest.approx(1 - np.sqrt(ratios[0] * ratios[1]), rel=1e-12)


def test_rows_scored_on_other_windows_are_refused():
    windows, samples = _windows()
    table = _table(windows, samples, ["moirai", "garch_t"])
    stale = table[~((table["model"] == "garch_t") & (table["origin"] == 200))]
    check_same_windows(table, "x")
    with pytest.raises(DataError, match=r"^data/baselines/test.parquet: garch_t was scored on other windows"):
        check_same_windows(stale, "data/baselines/test.parquet")
