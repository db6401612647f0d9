import numpy as np
import pandas as pd

from finmoirai.evaluation.metrics import summarise
from finmoirai.evaluation.plots import plot_all, write_plot_data
from finmoirai.evaluation.report import markdown_report
from finmoirai.evaluation.series import Windows
from finmoirai.params import EvaluateConfig, shipped_section
from tests.evaluation.test_metrics import _series


def _windows():
    s = _series(n=400)
    s.asset_class = "crypto"
    origins = np.array([200, 224, 248, 272, 296])
    rng = np.random.default_rng(0)
    last = s.price[origins - 1][:, None, None]
    good = last * np.exp(rng.normal(0, 0.01, (5, 200, 24)).cumsum(axis=2))
    bad = last * 1.2 + rng.normal(0, 0.01, (5, 200, 24))  # confidently wrong
    return [Windows(series=s, origins=origins, samples={"rw_ewma": good, "moirai": bad})]


def test_summary_ranks_a_confidently_wrong_model_below_the_baseline(tmp_path):
    result = summarise(_windows(), ["moirai", "rw_ewma"], 50, 24, shipped_section(EvaluateConfig, "evaluate"))
    assert result["models"]["rw_ewma"]["skill"] == 0.0
    assert result["models"]["moirai"]["skill"] < -1.0
    assert result["models"]["moirai"]["coverage_90"] < 0.1
    assert len(result["per_step"]["moirai"]) == 24
    assert sum(result["pit"]["moirai"]) == 5 * 24
    sig = result["significance"]["moirai"]
    assert abs(sig["skill"] - result["models"]["moirai"]["skill"]) < 1e-9  # window losses add up to gluonts's
    assert sig["skill_lo"] <= sig["skill"] <= sig["skill_hi"] < 0 and sig["dm_stat"] > 0 and sig["dm_n"] == 5  # dates
    meta = {"val_end": "2019-01-09", "windows": 5, "assets": ["AAA"], "context_length": 50, "prediction_length": 24,
            "stride": 24, "cost_bps": 5.0}
    text = markdown_report(result, meta)
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| rw_ewma |") and lines[2].startswith("| moirai |")  # best CRPS first
    assert "95% interval" in text and "Diebold-Mariano" in text
    write_plot_data(result, tmp_path)
    assert list(pd.read_csv(tmp_path / "crps_by_horizon.csv").columns) == ["step", "moirai", "rw_ewma"]
    plot_all(result, tmp_path / "img")
    assert {p.name for p in (tmp_path / "img").glob("*.png")} == {"calibration.png", "crps_by_horizon.png", "pit.png",
                                                                  "cumulative_returns.png"}
