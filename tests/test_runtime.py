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

from finmoirai.runtime import DETERMINISTIC_KERNELS, check_interpreter, dispatch_above_baseline, kernels_pinned
from tests.helpers import run_small_data_stages

REPO = Path(__file__).resolve().parents[1]
# sha256 over (path, bytes) of every file the five stages wrote for helpers.SMALL_LAKE; see the module docstring
PINNED = "ff7484512c7a6bed731f64322708b4d706291f5770c692fd8f1e641f3613875d"  # scalers.json: + the regime threshold
x86_64 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                            reason="the kernels are pinned for x86-64 machines")


def run_data_stages(work: Path, env: dict[str, str] | None = None) -> str:
    """The checksum of everything the five data stages wrote under `work`/data."""
    return tree_checksum(run_small_data_stages(work, env) / "data")


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


@x86_64
def test_without_the_pins_numpy_dispatches_above_its_baseline() -> None:
    """The check can fail: a process that never pinned runs numpy's SSE4/AVX2/AVX-512 loops on
    any CPU that has them (every x86-64 CPU in use has SSSE3 at least)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPY_") and k not in DETERMINISTIC_KERNELS}
    code = ("from numpy._core._multiarray_umath import __cpu_features__ as f, __cpu_dispatch__ as d\n"
            "from finmoirai.runtime import numpy_dispatch_above_baseline, kernels_pinned\n"
            "print(any(f[t] for t in d), bool(numpy_dispatch_above_baseline()), kernels_pinned())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    has_targets, above, pinned = out.stdout.split()
    assert has_targets == "True", "this CPU has no numpy dispatch target: nothing here can show the pins' effect"
    assert (above, pinned) == ("True", "False")


# numpy 2.2's x86-64 dispatch targets, and the flags it reported on an AMD EPYC (Zen 4) under
# NPY_ENABLE_CPU_FEATURES="SSE SSE2 SSE3": AVX-512 extensions on, AVX512F and every target off.
NUMPY_DISPATCH = ["SSSE3", "SSE41", "POPCNT", "SSE42", "AVX", "F16C", "FMA3", "AVX2", "AVX512F", "AVX512CD",
                  "AVX512_KNL", "AVX512_KNM", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL"]
EPYC_PINNED_ON = ["MMX", "SSE", "SSE2", "SSE3", "AVX512VPOPCNTDQ", "AVX512VL", "AVX512BW", "AVX512DQ", "AVX512VNNI",
                  "AVX512IFMA", "AVX512VBMI", "AVX512VBMI2", "AVX512BITALG"]
BASELINE = "baseline(SSE SSE2 SSE3)"


def _features(on: list[str]) -> dict[str, bool]:
    names = dict.fromkeys(NUMPY_DISPATCH + EPYC_PINNED_ON + ["AVX512ER", "AVX512PF", "AVX512_SPR"], False)
    return names | dict.fromkeys(on, True)


def test_avx512_extension_flags_without_avx512f_dispatch_nothing() -> None:
    """The AVX-512 machine's report: extension flags on, no target on, every function on the
    baseline. That is pinned (the old check on raw flags said it was not)."""
    assert dispatch_above_baseline(_features(EPYC_PINNED_ON), NUMPY_DISPATCH, [BASELINE]) == []


def test_a_dispatch_target_on_or_chosen_is_not_pinned() -> None:
    assert dispatch_above_baseline(_features(EPYC_PINNED_ON + ["AVX512F"]), NUMPY_DISPATCH, [BASELINE]) == ["AVX512F"]
    assert dispatch_above_baseline(_features(["SSE", "SSE2", "SSE3", "SSSE3", "SSE41"]), NUMPY_DISPATCH,
                                   [BASELINE, "SSE41"]) == ["SSSE3", "SSE41"]
    assert dispatch_above_baseline(_features(EPYC_PINNED_ON), NUMPY_DISPATCH, [BASELINE, "AVX2"]) == ["AVX2"]


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
