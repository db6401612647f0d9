"""summarise -> headline, report and plots: a confidently wrong model against a calibrated one."""

import json

import numpy as np
import pandas as pd
import pytest

from finmoirai.evaluation.metrics import headline, score_assets, summarise
from finmoirai.evaluation.plots import plot_all, write_plot_data
from finmoirai.evaluation.report import headline_metrics, markdown_report
from finmoirai.evaluation.series import Windows
from finmoirai.params import EvaluateConfig, shipped_section
from tests.helpers import price_series

CFG = shipped_section(EvaluateConfig, "evaluate", baselines=["rw_ewma", "garch_t"], reference="garch_t")


def _windows(symbols=("AAA", "BBB"), n_origins=12):
    out = []
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
        out.append(Windows(series=s, origins=origins, samples={"garch_t": good, "rw_ewma": also_good, "moirai": bad}))
    return out


def test_summary_headline_report_and_plots(tmp_path):
    windows = _windows()
    models = ["moirai", "rw_ewma", "garch_t"]
    result = summarise(windows, models, 50, 24, CFG)
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

    period = headline(score_assets(windows, ["moirai", "garch_t"], 50, 24), "moirai", "garch_t", 24, 24)
    assert period["windows"] == 24 and period["skill"] == pytest.approx(sig["skill"], rel=1e-12)
    head = headline_metrics(result, {"test": period, "val": None}, "test")
    assert head["reference"] == "garch_t" and head["val"]["skill"] is None and head["test"]["dm_p"] == sig["dm_p"]
    assert set(head["moirai"]) == {"crps", "qlike", "msis", "coverage_80"}
    json.dumps(head)  # a DVC metrics file

    meta = {"val_end": "2019-01-09", "windows": 24, "assets": ["AAA", "BBB"], "context_length": 50,
            "prediction_length": 24, "stride": 24, "cost_bps": 5.0}
    text = markdown_report(result, meta)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[2].startswith("| moirai |") or rows[3].startswith("| moirai |")  # worst CRPS last in the first table
    assert "**moirai** vs garch_t" in text and "Model confidence set" in text and "Skill vs every baseline" in text
    write_plot_data(result, tmp_path)
    assert list(pd.read_csv(tmp_path / "crps_by_horizon.csv").columns) == ["step", *models]
    plot_all(result, tmp_path / "img")
    assert {p.name for p in (tmp_path / "img").glob("*.png")} == {"calibration.png", "crps_by_horizon.png", "pit.png",
                                                                  "cumulative_returns.png"}


def test_the_skill_weighs_every_asset_alike():
    """Doubling the loss on the volatile asset and halving it on the calm one leaves the
    geometric skill at 0; a ratio of means would follow the volatile asset."""
    windows = _windows()
    for w, factor in zip(windows, (0.5, 2.0)):
        anchor = w.series.price[w.origins - 1][:, None, None]
        w.samples["moirai"] = anchor * (w.samples["garch_t"] / anchor) ** factor  # wider or narrower returns
    result = summarise(windows, ["moirai", "garch_t"], 50, 24, shipped_section(
        EvaluateConfig, "evaluate", baselines=["garch_t"], reference="garch_t"))
    per_asset = result["per_asset"]
    ratios = [per_asset[s]["moirai"]["crps"] / per_asset[s]["garch_t"]["crps"] for s in ("AAA", "BBB")]
    assert result["models"]["moirai"]["skill"] == pytest.approx(1 - np.sqrt(ratios[0] * ratios[1]), rel=1e-12)
