"""The data stages' bytes are pinned: a small fixed lake through lake -> extract -> preprocess
-> features -> build must give the checksum below on every x86-64 machine (the CPU kernels are
pinned in finmoirai/runtime.py). A CI run on another machine that fails here has found
cross-machine drift: find the kernel or library that moved, do not just update the number.

The stages run in a subprocess, as DVC runs them: the kernel pins only take effect before
numpy is imported, which in this pytest process has long happened."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finmoirai.config import stage_command
from finmoirai.runtime import DETERMINISTIC_KERNELS, check_interpreter, kernels_pinned

REPO = Path(__file__).resolve().parents[1]
DATA_STAGES = ("lake", "extract", "preprocess", "features", "build")
SMALL = {
    "lake": {"path": "data/lake", "source": "synthetic",
             "synthetic": {"assets": 4, "start": "2018-01-01", "years": 1, "seed": 3}},
    "extract": {"asset_classes": ["crypto", "fx", "equity"], "frequency": "1h", "years": [2018], "symbols": []},
    "split": {"train_end": "2018-09-01", "val_end": "2018-11-01"},
    "features": {"market_proxy": {"crypto": "CRY0000", "fx": "FXS0000", "equity": "EQT0000"}},
}
# sha256 over (path, bytes) of every file the five stages wrote for SMALL; see the module docstring
PINNED = "e79b6eb8df9462db9e749da5f38e3f7825fa6dbcabc548dc520dea8d5781fefa"
x86_64 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                            reason="the kernels are pinned for x86-64 machines")


def run_data_stages(work: Path, env: dict[str, str] | None = None) -> str:
    """The repo's params with SMALL merged in, the five data stage scripts run in one fresh
    interpreter in `work`; returns the checksum of everything they wrote under data/."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    synthetic = {**params["lake"]["synthetic"], **SMALL["lake"]["synthetic"]}
    for key, value in SMALL.items():
        params[key] = {**params[key], **value}
    params["lake"]["synthetic"] = synthetic
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    script = "import runpy, sys\n"
    for stage in DATA_STAGES:  # each with its dvc.yaml command line
        argv = [str(REPO / a) if a.startswith("stages/") else a for a in stage_command(stage, REPO / "dvc.yaml")[1:]]
        script += f"sys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True, timeout=600,
                          env=env if env is not None else dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    return tree_checksum(work / "data")


def tree_checksum(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@x86_64
def test_data_stages_give_the_pinned_bytes_whatever_the_environment_says(tmp_path) -> None:
    """The pinned checksum, also with an environment that asks for other OpenBLAS and numpy
    kernels: the stages override it, so the host cannot change the bytes."""
    assert run_data_stages(tmp_path / "a") == PINNED
    hostile = dict(os.environ, OPENBLAS_CORETYPE="Sandybridge", NPY_DISABLE_CPU_FEATURES="AVX2 FMA3",
                   NUMBA_CPU_NAME="host", OPENBLAS_NUM_THREADS="2")
    assert run_data_stages(tmp_path / "b", hostile) == PINNED


def test_kernel_pins_apply_in_a_stage_process() -> None:
    code = "from finmoirai.runtime import pin_cpu_kernels, kernels_pinned; pin_cpu_kernels(); print(kernels_pinned())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    expected = platform.machine().lower() in ("x86_64", "amd64")
    assert out == str(expected)
    assert not kernels_pinned() or all(os.environ.get(k) == v for k, v in DETERMINISTIC_KERNELS.items())


def test_pinning_after_numpy_is_refused(monkeypatch) -> None:
    from finmoirai.runtime import pin_cpu_kernels

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("pins are x86-64 only")
    for key in DETERMINISTIC_KERNELS:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="before numpy"):
        pin_cpu_kernels()  # numpy is loaded in this process


def test_a_python_without_the_packages_gets_one_line(tmp_path) -> None:
    """A stage started by a bare interpreter says what to do instead of a traceback."""
    with pytest.raises(SystemExit, match=r"activate the environment .*make repro"):
        check_interpreter(("numpy", "no_such_package_here"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([sys.executable, "-S", "-I", str(REPO / "stages" / "pretrain.py")], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "source .venv/bin/activate" in lines[0], done.stderr
