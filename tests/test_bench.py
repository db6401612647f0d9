"""Every script under bench/ runs with the README's kind of command line, on tiny inputs, so a
documented benchmark cannot break unnoticed (the data benchmark once stopped at its first stage
and no test saw it). The figures are not checked, only that each script computes and prints
them: timings are for `make bench` and the README, never for assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_small_data_stages

BENCH = REPO / "bench"
# Model knobs small enough for seconds of training on the small lake (the e2e tests' sizes)
TINY_MODEL = ["patch_size=16", "context_length=64", "prediction_length=12", "model.num_layers=1",
              "model.max_seq_len=256"]


def bench(script: str, *args: str, cwd: Path) -> str:
    """stdout of `python bench/<script> args`, run from `cwd` (not the repo: the scripts must
    not depend on where they are started)."""
    done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=dict(os.environ))
    assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A work dir with params.yaml and the data stages' outputs of the small synthetic lake."""
    return run_small_data_stages(tmp_path_factory.mktemp("small"))


def test_every_bench_script_has_a_smoke_test() -> None:
    tested = {"synthetic_lake.py", "data_pipeline.py", "train_throughput.py", "seeds.py", "reference_noise.py"}
    assert {p.name for p in BENCH.glob("*.py")} == tested


def test_synthetic_lake(tmp_path) -> None:
    bench("synthetic_lake.py", str(tmp_path / "lake"), "--assets", "3", "--years", "1", cwd=tmp_path)
    files = list((tmp_path / "lake").rglob("*.parquet"))
    assert {p.parts[-3] for p in files} == {"symbol=CRY0000", "symbol=FXS0000", "symbol=EQT0000"}


def test_data_pipeline(tmp_path) -> None:
    """`make bench`'s script, every part of it: start-up floor, scan, the four stages, a worker
    comparison, the naive baseline, the table and the JSON."""
    out = bench("data_pipeline.py", "--sizes", "4", "--years", "1", "--compare-workers", "1",
                "--json", str(tmp_path / "bench.json"), cwd=tmp_path)
    assert "4 assets: pipeline" in out and "stage start-up" in out, out
    size = json.loads((tmp_path / "bench.json").read_text())["sizes"][0]
    assert size["assets"] == 4 and size["rows"] > 0 and not size["tmp_left"]
    assert set(size["stages"]) == {"extract", "preprocess", "features", "build"}
    assert size["naive_s"] > 0 and set(size["workers"]["1"]) == {"preprocess", "features"}


def test_train_throughput(small) -> None:
    out = bench("train_throughput.py", "--params", str(small / "params.yaml"), "--datasets",
                str(small / "data" / "datasets"), "--steps", "2", "--warmup", "1", "--modules", "default",
                "--patch-sizes", "16", *[a for kv in TINY_MODEL for a in ("--set", kv)], cwd=small)
    row = out.strip().splitlines()[-1].split()
    assert row[:2] == ["default", "16"] and float(row[3]) > 0, out


def test_seeds(small, tmp_path) -> None:
    tiny = TINY_MODEL + ["pretrain.max_steps=2", "pretrain.warmup_steps=1", "pretrain.batch_size=4",
                         "pretrain.val_check_interval=2", "finetune.max_epochs=1", "finetune.batch_size=16",
                         "finetune.train_distance=400", "evaluate.stride=240", "evaluate.num_samples=20",
                         "baselines.num_samples=20", "evaluate.plot_assets=1"]
    out = bench("seeds.py", "--params", str(small / "params.yaml"), "--data", str(small / "data"), "--seeds", "1",
                "--out", str(tmp_path / "seeds"), "--json", str(tmp_path / "seeds.json"),
                *[a for kv in tiny for a in ("--set", kv)], cwd=tmp_path)
    assert "val skill vs garch_t" in out, out
    result = json.loads((tmp_path / "seeds.json").read_text())["seeds"]["1"]
    assert set(result) >= {"val", "test"} and all(-10 < result[s]["skill"] < 1 for s in ("val", "test"))


def test_reference_noise(small, tmp_path) -> None:
    out = bench("reference_noise.py", "--params", str(small / "params.yaml"), "--data", str(small / "data"),
                "--seeds", "2", *[a for kv in TINY_MODEL + ["evaluate.stride=120", "baselines.num_samples=20"]
                                  for a in ("--set", kv)], cwd=tmp_path)
    assert "seed 1: garch_t CRPS" in out and "skill of a reseeded reference" in out, out
