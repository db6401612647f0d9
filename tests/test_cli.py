"""The `finmoirai` command line: `check` validates the shipped params and names what it checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from finmoirai.cli import check

REPO = Path(__file__).resolve().parents[1]


def test_check_passes_the_shipped_params_and_names_each_lake(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert check() == [f"params.yaml: {len(params)} top-level keys valid",
                       "params.yaml: the composition of conf/ (what dvc exp run writes)",
                       "lake.path: data/lake, written by the lake stage (lake.source: demo)"]
    other = tmp_path / "other"
    (other / "asset_class=crypto").mkdir(parents=True)
    params["evaluate"]["lake_path"] = str(other)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert check(tmp_path / "params.yaml")[1:] == [
        "lake.path: data/lake, written by the lake stage (lake.source: demo)",
        f"evaluate.lake_path: {other}, a partitioned lake"]


def test_a_bad_param_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["extract"]["frequency"] = "1M"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "finmoirai.cli", "check", "--params", str(tmp_path / "params.yaml")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1 and result.stderr == (
        "error: param extract.frequency: '1M' is not a bar frequency; write a count and a unit, one of m, min, h, d "
        "(e.g. 5m, 1h, 1d)\n")
