"""Staging copies never outlive a restore, and live logs are readable mid-run, under real DVC:
a tiny git + DVC repo with two trivial stages that use finmoirai.atomic as the pipeline's do
(one like pretrain, one like evaluate), no finmoirai training. A few seconds per DVC command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# `model` is pretrain's shape: a model folder and a metrics file staged, a live folder written as
# it runs. `report` is evaluate's: a shared metrics/ folder (merge) and two folders, plots/ and
# live_report/, that are parents of its DVC outputs. HANG=<stage> makes that stage write half
# its outputs and wait to be killed; HOLD=<file> makes `model` wait, mid-run, until it exists.
STAGE = """\
import json, os, sys, time
from pathlib import Path
from finmoirai.atomic import atomic_outputs

name, *paths = sys.argv[1:]
with open(os.environ["RUNS_LOG"], "a") as log:
    log.write(name + "\\n")


def wait_for(path, seconds=120):
    deadline = time.monotonic() + seconds
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


if name == "model":
    out, metrics, live = map(Path, paths)
    tsv = live / "plots" / "metrics" / "train" / "loss.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(out, metrics) as (staged, staged_metrics):
        staged.mkdir()
        with tsv.open("w") as f:
            f.write("step\\tloss\\n")
            for step in range(6):
                f.write(f"{step}\\t{1.0 / (step + 1)}\\n")
                f.flush()
                if step == 2 and os.environ.get("HOLD"):
                    Path(os.environ["HOLD"] + ".waiting").touch()
                    wait_for(os.environ["HOLD"])
        (staged / "weights.bin").write_bytes(b"w" * 1000)
        if os.environ.get("HANG") == name:
            wait_for("never", seconds=600)
        staged_metrics.write_text(json.dumps({"loss": 1.0 / 6}))
else:
    metrics, plots, live = map(Path, paths)
    with atomic_outputs(metrics, plots, live, merge=(metrics,)) as (m, p, l):
        (m / "report.json").write_text(json.dumps({"score": 0.5}))
        (m / "report.md").write_text("# report\\n")
        for rel in ("data/curve.csv", "forecasts/a.png"):
            (p / rel).parent.mkdir(parents=True, exist_ok=True)
            (p / rel).write_text("x,y\\n1,2\\n")
        if os.environ.get("HANG") == name:
            wait_for("never", seconds=600)
        (l / "plots" / "metrics").mkdir(parents=True)
        (l / "plots" / "metrics" / "score.tsv").write_text("step\\tscore\\n0\\t0.5\\n")
        (l / "metrics.json").write_text("{}")  # a dvclive side file, not an output
"""

DVC_YAML = """\
stages:
  model:
    cmd: python stage.py model models/m metrics/model.json live
    deps: [stage.py]
    outs: [models/m, live/plots]
    metrics:
      - metrics/model.json:
          cache: false
  report:
    cmd: python stage.py report metrics plots live_report
    deps: [stage.py, models/m]
    outs: [metrics/report.md, plots/data, live_report/plots]
    metrics:
      - metrics/report.json:
          cache: false
    plots: [plots/forecasts]
plots:
  - live/plots/metrics/train/loss.tsv:
      x: step
      y: loss
"""
DECLARED = ("models/m", "live/plots", "metrics/model.json", "metrics/report.md", "plots/data", "live_report/plots",
            "metrics/report.json", "plots/forecasts")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HANG", "HOLD")}
    return env | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                  "RUNS_LOG": str(tmp_path / "runs.log")} | extra


def _run(args: list[str], repo: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _state(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*"))
            if p.is_file() and p.relative_to(repo).parts[0] not in (".git", ".dvc")}


def _staging(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in repo.rglob("*")
                  if p.name.endswith((".partial", ".old")) and p.relative_to(repo).parts[0] not in (".git", ".dvc"))


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    env = _env(tmp_path)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "t"], ["dvc", "init", "-q"],
                ["dvc", "config", "core.analytics", "false"]):
        _run(cmd, repo, env)
    out = _run(["dvc", "repro"], repo, env)
    assert "Running stage 'model'" in out and "Running stage 'report'" in out, out
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "first run"], repo, env)
    return repo


@pytest.mark.parametrize("stage", ["model", "report"])
def test_a_kill_9_then_plain_dvc_repro_restores_from_the_run_cache_and_leaves_no_staging(repo, tmp_path, stage):
    reference, lock = _state(repo), (repo / "dvc.lock").read_text()
    runs = tmp_path / "runs.log"
    proc = subprocess.Popen(["dvc", "repro", "--force", "--single-item", stage], cwd=repo,
                            env=_env(tmp_path, HANG=stage), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        marker = {"model": "weights.bin", "report": "a.png"}[stage]
        while not any(p.name == marker for s in _staging(repo) for p in (repo / s).rglob("*")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage, mid-write
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    left = _staging(repo)
    assert left, "the kill came too late to leave a staging folder"
    assert all(any(s == d or s.startswith(f"{d}/") for d in DECLARED) for s in left), left  # inside a DVC output
    ran = runs.read_text()

    out = _run(["dvc", "repro"], repo, _env(tmp_path))  # plain: no sweep, no make
    assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out, out
    assert runs.read_text() == ran  # restored: none of the stage's code ran
    assert not _staging(repo)
    state = _state(repo)
    assert state == reference, sorted(set(state.items()) ^ set(reference.items()))
    assert (repo / "dvc.lock").read_text() == lock
    assert "up to date" in _run(["dvc", "status"], repo, _env(tmp_path)).lower()


def test_dvc_plots_show_draws_the_live_curve_of_a_running_stage(repo, tmp_path):
    """The live folder is written in place, not staged: `dvc plots show` while `dvc repro` runs
    the stage draws the steps logged so far (DVC releases its repo lock while a command runs)."""
    hold = tmp_path / "hold"
    proc = subprocess.Popen(["dvc", "repro", "--force", "--single-item", "model"], cwd=repo,
                            env=_env(tmp_path, HOLD=str(hold)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{hold}.waiting").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        shown = json.loads(_run(["dvc", "plots", "show", "--json"], repo, _env(tmp_path)))
        hold.touch()
        assert proc.wait(timeout=120) == 0, proc.communicate()[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rows = shown["data"]["live/plots/metrics/train/loss.tsv"][0]["content"]["data"]["values"]
    assert [float(r["loss"]) for r in rows] == [1.0, 0.5, 1.0 / 3], rows  # steps 0-2 of 6
    assert not _staging(repo)
