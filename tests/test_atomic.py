"""Stage outputs appear complete or not at all, staged inside a declared output (finmoirai/atomic.py)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from finmoirai import atomic
from finmoirai.atomic import atomic_outputs, find_host, is_rank_zero, scratch_dir

NO_DVC = "no-dvc.yaml"  # no dvc.yaml: the first folder-like path is the host


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def staging_left(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith((".partial", ".old")))


def test_outputs_appear_only_when_the_block_succeeds(tmp_path):
    out, metrics = tmp_path / "out", tmp_path / "m.json"
    with atomic_outputs(out, metrics, dvc_yaml=tmp_path / NO_DVC) as (staged, staged_metrics):
        assert staged == out / ".partial" / "0" / "out"
        assert staged_metrics == out / ".partial" / "1" / "m.json"  # a file is staged in the host too
        staged.mkdir()
        (staged / "a.parquet").write_text("a")
        staged_metrics.write_text("{}")
        assert [p.name for p in out.iterdir()] == [".partial"] and not metrics.exists()
    assert (out / "a.parquet").read_text() == "a" and metrics.read_text() == "{}"
    assert files(tmp_path) == ["m.json", "out/a.parquet"]
    assert not staging_left(tmp_path)


def test_a_failed_block_keeps_the_previous_outputs_and_leaves_no_partial(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.parquet").write_text("previous")
    for error in (ValueError, KeyboardInterrupt):
        with pytest.raises(error), atomic_outputs(out, dvc_yaml=tmp_path / NO_DVC) as (staged,):
            staged.mkdir()
            (staged / "BTC.parquet").write_text("half")
            raise error("asset 2 failed")
        assert [p.name for p in out.iterdir()] == ["old.parquet"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_first_run_leaves_nothing(tmp_path):
    """The folders made to host the staging go too: absent before, absent after."""
    out, metrics = tmp_path / "models" / "pretrained", tmp_path / "metrics" / "pretrain.json"
    with pytest.raises(KeyboardInterrupt), atomic_outputs(out, metrics, dvc_yaml=tmp_path / NO_DVC) as (staged, m):
        staged.mkdir()
        m.write_text("{}")
        raise KeyboardInterrupt
    assert not list(tmp_path.iterdir())


def test_a_new_output_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "gone.parquet").write_text("old asset")
    (out / "gone").mkdir()
    (out / "gone" / "x").write_text("old")
    with atomic_outputs(out, dvc_yaml=tmp_path / NO_DVC) as (staged,):
        staged.mkdir()
        (staged / "new.parquet").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.parquet"]


def test_a_shared_folder_gets_only_the_stage_files(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "pretrain.json").write_text("another stage's")
    (metrics / "evaluate.json").write_text("old")
    with atomic_outputs(metrics, merge=(metrics,), dvc_yaml=tmp_path / NO_DVC) as (staged,):
        (staged / "evaluate.json").write_text("new")
    assert (metrics / "evaluate.json").read_text() == "new"
    assert (metrics / "pretrain.json").read_text() == "another stage's"
    assert files(tmp_path) == ["metrics/evaluate.json", "metrics/pretrain.json"]


def test_leftovers_of_a_killed_run_are_removed_first(tmp_path):
    out = tmp_path / "out"
    for stale in (out / ".partial" / "0" / "out", tmp_path / ".out.partial", tmp_path / ".out.old"):
        stale.mkdir(parents=True)  # this layout's, and the sibling layout's (fallback, or an older version)
        (stale / "x").write_text("killed")
    with atomic_outputs(out, dvc_yaml=tmp_path / NO_DVC) as (staged,):
        assert not staged.exists()
        staged.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not list(out.iterdir())


def test_other_ranks_neither_clean_nor_commit(tmp_path, monkeypatch):
    """Rank 0 is staging into out/.partial while the other ranks run the same stage code."""
    out = tmp_path / "out"
    (out / ".partial" / "0" / "out").mkdir(parents=True)
    (out / ".partial" / "0" / "out" / "rank0.bin").write_text("in progress")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_rank_zero()
    with atomic_outputs(out, dvc_yaml=tmp_path / NO_DVC) as (staged,):
        assert staged == out / ".partial" / "0" / "out"
    assert files(tmp_path) == ["out/.partial/0/out/rank0.bin"]


EVALUATE_LIKE = """\
stages:
  train:
    cmd: python train.py models/m metrics/train.json
    outs: [models/m]
    metrics: [{metrics/train.json: {cache: false}}]
  evaluate:
    cmd: python evaluate.py metrics plots live
    metrics: [{metrics/evaluate.json: {cache: false}}]
    outs: [metrics/report.md, plots/data, live/plots]
    plots: [plots/forecasts]
"""


def _evaluate_like(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "dvc.yaml").write_text(EVALUATE_LIKE)
    for rel, text in {"models/m/old.bin": "old", "metrics/train.json": "train's", "metrics/evaluate.json": "old",
                      "plots/data/a.csv": "old", "plots/forecasts/a.png": "old", "plots/stale.txt": "old",
                      "live/plots/x.tsv": "old", "live/metrics.json": "old side file"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path / "dvc.yaml"


def _write_evaluate(metrics: Path, plots: Path, live: Path, data: bool = True) -> None:
    (metrics / "evaluate.json").write_text("new")
    (metrics / "report.md").write_text("new")
    for rel in (["data/a.csv", "data/b.csv"] if data else []) + ["forecasts/b.png"]:
        (plots / rel).parent.mkdir(parents=True, exist_ok=True)
        (plots / rel).write_text("new")
    (live / "plots").mkdir(parents=True)
    (live / "plots" / "y.tsv").write_text("new")


def test_folders_that_hold_dvc_outputs_stage_inside_one_of_them(tmp_path):
    """Like evaluate: plots/ and live/ are parents of DVC outputs, metrics/ is shared. All is
    staged inside plots/data (a DVC output), so a restore, which removes it, removes the staging."""
    dvc_yaml = _evaluate_like(tmp_path)
    metrics, plots, live = tmp_path / "metrics", tmp_path / "plots", tmp_path / "live"
    assert find_host([metrics, plots, live], {metrics}, dvc_yaml) == plots / "data"
    (tmp_path / "models").rename(tmp_path / "other")
    with atomic_outputs(metrics, plots, live, merge=(metrics,), dvc_yaml=dvc_yaml) as staged:
        assert all(plots / "data" / ".partial" in s.parents for s in staged), staged
        _write_evaluate(*staged)
    assert {f: (tmp_path / f).read_text() for f in files(tmp_path) if f != "dvc.yaml"} == {
        "metrics/train.json": "train's", "metrics/evaluate.json": "new", "metrics/report.md": "new",
        "plots/data/a.csv": "new", "plots/data/b.csv": "new", "plots/forecasts/b.png": "new", "live/plots/y.tsv": "new",
        "other/m/old.bin": "old"}
    assert not staging_left(tmp_path)


def test_a_new_output_without_the_host_folder_removes_it(tmp_path):
    dvc_yaml = _evaluate_like(tmp_path)
    metrics, plots, live = tmp_path / "metrics", tmp_path / "plots", tmp_path / "live"
    with atomic_outputs(metrics, plots, live, merge=(metrics,), dvc_yaml=dvc_yaml) as staged:
        _write_evaluate(*staged, data=False)
    assert sorted(p.name for p in plots.iterdir()) == ["forecasts"]
    assert not staging_left(tmp_path)


def test_the_model_and_its_metrics_file_stage_in_the_model_folder(tmp_path):
    dvc_yaml = _evaluate_like(tmp_path)
    model, metrics = tmp_path / "models" / "m", tmp_path / "metrics" / "train.json"
    with atomic_outputs(model, metrics, dvc_yaml=dvc_yaml) as (staged, staged_metrics):
        assert staged_metrics == model / ".partial" / "1" / "train.json"
        staged.mkdir()
        (staged / "w.safetensors").write_text("w")
        staged_metrics.write_text("new")
    assert metrics.read_text() == "new" and files(model) == ["w.safetensors"]


def test_a_path_on_another_filesystem_falls_back_to_a_sibling(tmp_path, monkeypatch):
    out, metrics = tmp_path / "out", tmp_path / "elsewhere" / "m.json"
    metrics.parent.mkdir()
    device = atomic._device
    monkeypatch.setattr(atomic, "_device", lambda p: -7 if "elsewhere" in str(p) else device(p))
    with atomic_outputs(out, metrics, dvc_yaml=tmp_path / NO_DVC) as (staged, staged_metrics):
        assert staged_metrics == metrics.parent / ".m.json.partial"  # a rename across devices would fail
        staged.mkdir()
        staged_metrics.write_text("{}")
    assert files(tmp_path) == ["elsewhere/m.json"] and not list(out.iterdir())


class Killed(BaseException):
    """Stands for kill -9 in the middle of the commit: nothing of ours runs after it."""


@pytest.mark.parametrize("layout", ["evaluate", "train"])
def test_a_kill_at_any_point_of_the_commit_leaves_the_staging_only_inside_a_dvc_output(tmp_path, monkeypatch, layout):
    """Whichever rename the kill comes before, everything outside the stage's DVC outputs is
    the old version or the new one, never a staging or superseded copy: removing the declared
    outputs, as `dvc repro` does before restoring the stage from its run cache, leaves no
    leftover."""
    calls = {"n": 0, "kill_at": None}
    real_replace = os.replace

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    kill_at = 1
    while True:
        work = tmp_path / str(kill_at)
        dvc_yaml = _evaluate_like(work)
        if layout == "evaluate":
            declared = ["metrics/evaluate.json", "metrics/report.md", "plots/data", "live/plots", "plots/forecasts"]
            paths, merge = (work / "metrics", work / "plots", work / "live"), (work / "metrics",)
        else:
            declared, merge = ["models/m", "metrics/train.json"], ()
            paths = (work / "models/m", work / "metrics/train.json")
        calls.update(n=0, kill_at=kill_at)
        try:
            with atomic_outputs(*paths, merge=merge, dvc_yaml=dvc_yaml) as staged:
                if layout == "evaluate":
                    _write_evaluate(*staged)
                else:
                    staged[0].mkdir()
                    (staged[0] / "w").write_text("new")
                    staged[1].write_text("new")
        except Killed:
            pass
        else:
            break
        for rel in declared:  # what DVC removes before it restores
            atomic.remove(work / rel)
        assert not staging_left(work), (kill_at, staging_left(work))
        kill_at += 1
    assert kill_at > 3  # the commit was interrupted at each of its renames


KILLED_STAGE = """\
import os, signal, sys
from finmoirai.atomic import atomic_outputs
out, metrics = sys.argv[1:]
with atomic_outputs(out, metrics, dvc_yaml="no-dvc.yaml") as (staged, staged_metrics):
    staged.mkdir()
    (staged / "half.parquet").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_while_writing_leaves_the_staging_inside_the_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_text("previous")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_STAGE), "out", "metrics/m.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert files(tmp_path) == ["out/.partial/0/out/half.parquet", "out/old.parquet"]


def test_scratch_dir_is_removed_however_the_block_ends(tmp_path):
    work = tmp_path / ".scratch"
    work.mkdir()
    (work / "stale").write_text("killed run")
    with pytest.raises(RuntimeError), scratch_dir(work) as d:
        assert not (d / "stale").exists()
        raise RuntimeError
    assert not work.exists()
