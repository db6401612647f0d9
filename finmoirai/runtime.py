"""What a stage does before it imports anything numeric: check that this Python has the
project's packages, and pin the CPU kernels the data stages compute with.

Standard library only, so it runs (and explains itself) under any interpreter.

Why the pins: the same code, params and inputs gave different `data/features` bytes on an
AVX2 machine and an AVX-512 machine. pandas-ta's Bollinger bands and MFI sum their windows
with `np.convolve`, which numpy hands to OpenBLAS's `ddot`; OpenBLAS picks a kernel for the
CPU at load time (Haswell, SkylakeX, ...), and each kernel accumulates in its own order, so
the last bits differ (measured here: forcing OpenBLAS's Prescott kernel changes 6-17% of the
values of BBL/BBM/BBU/BBB/BBP/MFI by up to 2e-13). numpy also dispatches its float64
log/exp/sin/cos to AVX-512 code where the CPU has it, which rounds differently from the libm
used elsewhere, and numba compiles for the host CPU. The pins make every x86-64 machine take
the same code path: OpenBLAS's baseline kernel on one thread, numpy's baseline (SSE3)
loops, numba for a generic x86-64. They cost the data stages little (their heavy work is
pandas and pyarrow). Training does not use them (torch has its own kernels); evaluate and the
forecast command do, because they turn the data stages' numbers into model inputs and prices
with numpy: pinned alike, a forecast as of one of evaluate's origins is the very one evaluate
scored (finmoirai/forecasting/forecast.py).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from finmoirai.errors import FinMoiraiError, first_line

# Imported by the stage scripts; missing any of them means the wrong interpreter.
PROJECT_PACKAGES = ("numpy", "pandas", "polars", "pyarrow", "yaml", "pandas_ta", "datasets", "torch",
                    "lightning", "uni2ts", "dvclive", "gluonts")

DETERMINISTIC_KERNELS = {
    "OPENBLAS_CORETYPE": "Prescott",        # OpenBLAS's SSE3 kernels, present on every x86-64 CPU
    "OPENBLAS_NUM_THREADS": "1",            # ... on one thread: a threaded dot splits its sum by core count
    "NPY_ENABLE_CPU_FEATURES": "SSE SSE2 SSE3",  # numpy's baseline loops only (no AVX2/AVX-512 dispatch)
    "NUMBA_CPU_NAME": "generic",            # numba (pandas-ta's kernels) compiled for any x86-64
}
KERNEL_MODULES = ("numpy", "numba", "pandas", "scipy")


class WrongInterpreter(SystemExit):
    """This Python lacks the project's packages (a stage run outside .venv)."""


def check_interpreter(packages: tuple[str, ...] = PROJECT_PACKAGES) -> None:
    """Exit with one line, not a traceback, when a stage runs under a Python without the
    project's packages (e.g. `.venv/bin/dvc exp run` with the venv not activated: the stage
    command's `python` is whichever comes first on PATH)."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise WrongInterpreter(
            f"error: {sys.executable} does not have the project's packages ({', '.join(missing)} missing): "
            f"activate the environment first (`source .venv/bin/activate`), or run through `make repro`")


def pin_cpu_kernels() -> None:
    """Set DETERMINISTIC_KERNELS for this process and its workers. Must run before numpy,
    numba or pandas are imported: the libraries read these variables when they load. A no-op
    when they are already set (several stages in one process), and off x86-64, whose kernel
    names these are (the cross-machine promise is for x86-64)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    if all(os.environ.get(k) == v for k, v in DETERMINISTIC_KERNELS.items()):
        return
    loaded = [m for m in KERNEL_MODULES if m in sys.modules]
    if loaded:
        raise RuntimeError(f"pin_cpu_kernels() must run before {', '.join(loaded)} is imported")
    os.environ.pop("NPY_DISABLE_CPU_FEATURES", None)  # numpy refuses it together with NPY_ENABLE_CPU_FEATURES
    os.environ.update(DETERMINISTIC_KERNELS)


def kernels_pinned() -> bool:
    """True when this process computes with the pinned kernels: the variables are set, and
    numpy runs no dispatch target above its SSE3 baseline (see `dispatch_above_baseline`)."""
    if any(os.environ.get(k) != v for k, v in DETERMINISTIC_KERNELS.items()):
        return False
    return not numpy_dispatch_above_baseline()


def numpy_dispatch_above_baseline() -> list[str]:
    """The dispatch targets above the baseline that this process's numpy can run or has chosen."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    from numpy.lib.introspect import opt_func_info

    chosen = {sig["current"] for sigs in opt_func_info().values() for sig in sigs.values()}
    return dispatch_above_baseline(__cpu_features__, __cpu_dispatch__, chosen)


def dispatch_above_baseline(cpu_features: Mapping[str, bool], dispatch_targets: Iterable[str],
                            chosen: Iterable[str] = ()) -> list[str]:
    """numpy's dispatch targets (`__cpu_dispatch__`: SSE41, AVX2, AVX512F, AVX512_SKX, ...) whose
    runtime flag is on, plus every target an optimised function has chosen (`opt_func_info`'s
    "current") that is not the baseline. Empty means numpy computes with its baseline loops.

    The raw `__cpu_features__` flags are not the question: under NPY_ENABLE_CPU_FEATURES numpy
    turns off the dispatch targets, but leaves extension flags that are no target of their own
    on (AVX512VL, AVX512BW, AVX512VNNI, ... on an AVX-512 CPU, with AVX512F off). numpy picks a
    target only when that target's own flag is on, so those flags enable nothing."""
    targets = [t for t in dispatch_targets if cpu_features.get(t, False)]
    return targets + sorted({c for c in chosen if not c.startswith("baseline")} - set(targets))


def start_stage(deterministic: bool) -> None:
    """First call of every stage script: the interpreter check, then (data stages, whose
    outputs must be the same bytes on every machine) the kernel pins."""
    check_interpreter()
    if deterministic:
        pin_cpu_kernels()


VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "FINMOIRAI_VERBOSE"  # set to 1 for full tracebacks (as --verbose on a stage's command line)


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main() the way a user wants to read its failure: the project's own errors
    (FinMoiraiError: bad params, bad data) as their one-line message; anything else as one line
    naming the stage and the exception, since the cause is not the user's input. The full
    traceback is printed instead with --verbose or FINMOIRAI_VERBOSE=1."""
    verbose = VERBOSE_FLAG in sys.argv or os.environ.get(VERBOSE_ENV, "") not in ("", "0")
    if VERBOSE_FLAG in sys.argv:
        sys.argv.remove(VERBOSE_FLAG)
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # worker processes and relaunched ranks too
        main()
        return
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(f"error: stage {name} interrupted; its outputs were not written") from None
    except FinMoiraiError as e:
        raise SystemExit(f"error: {e}") from None
    except Exception as e:  # noqa: BLE001 - one line instead of a traceback; --verbose shows it
        raise SystemExit(f"error: stage {name} failed: {type(e).__name__}: {first_line(e)} "
                         f"(--verbose or {VERBOSE_ENV}=1 for the traceback)") from None


def stage_paths(argv: list[str] | None, *names: str) -> list[Path]:
    """The paths a stage script gets on its command line (written once, in dvc.yaml's `cmd`)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != len(names):
        raise SystemExit(f"usage: {Path(sys.argv[0]).name} {' '.join(n.upper() for n in names)} "
                         f"(got {len(args)} argument(s); the stage commands are in dvc.yaml)")
    return [Path(a) for a in args]
