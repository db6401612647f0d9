"""Stage outputs appear complete or not at all (finmoirai/atomic.py)."""

import pytest

from finmoirai.atomic import atomic_outputs, is_rank_zero, scratch_dir


def test_outputs_appear_only_when_the_block_succeeds(tmp_path):
    out, metrics = tmp_path / "out", tmp_path / "m.json"
    with atomic_outputs(out, metrics) as (staged, staged_metrics):
        staged.mkdir()
        (staged / "a.parquet").write_text("a")
        staged_metrics.write_text("{}")
        assert not out.exists() and not metrics.exists()
    assert (out / "a.parquet").read_text() == "a" and metrics.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "out"]


def test_a_failed_block_keeps_the_previous_outputs_and_leaves_no_partial(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.parquet").write_text("previous")
    for error in (ValueError, KeyboardInterrupt):
        with pytest.raises(error), atomic_outputs(out) as (staged,):
            staged.mkdir()
            (staged / "BTC.parquet").write_text("half")
            raise error("asset 2 failed")
        assert [p.name for p in out.iterdir()] == ["old.parquet"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_new_output_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "gone.parquet").write_text("old asset")
    with atomic_outputs(out) as (staged,):
        staged.mkdir()
        (staged / "new.parquet").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.parquet"]


def test_a_shared_folder_gets_only_the_stage_files(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "pretrain.json").write_text("another stage's")
    (metrics / "evaluate.json").write_text("old")
    with atomic_outputs(metrics, merge=(metrics,)) as (staged,):
        (staged / "evaluate.json").write_text("new")
    assert (metrics / "evaluate.json").read_text() == "new"
    assert (metrics / "pretrain.json").read_text() == "another stage's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics"]


def test_leftovers_of_a_killed_run_are_removed_first(tmp_path):
    out = tmp_path / "out"
    for stale in (tmp_path / ".out.partial", tmp_path / ".out.old"):
        stale.mkdir()
        (stale / "x").write_text("killed")
    with atomic_outputs(out) as (staged,):
        assert not staged.exists()
        staged.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_other_ranks_neither_clean_nor_commit(tmp_path, monkeypatch):
    """Rank 0 is staging into .out.partial while the other ranks run the same stage code."""
    out = tmp_path / "out"
    (tmp_path / ".out.partial").mkdir()
    (tmp_path / ".out.partial" / "rank0.bin").write_text("in progress")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_rank_zero()
    with atomic_outputs(out) as (staged,):
        assert staged == tmp_path / ".out.partial"
    assert (tmp_path / ".out.partial" / "rank0.bin").exists() and not out.exists()


def test_scratch_dir_is_removed_however_the_block_ends(tmp_path):
    work = tmp_path / ".scratch"
    work.mkdir()
    (work / "stale").write_text("killed run")
    with pytest.raises(RuntimeError), scratch_dir(work) as d:
        assert not (d / "stale").exists()
        raise RuntimeError
    assert not work.exists()
