"""DVC stage `preprocess`: calendar grid, bad-bar repair, outliers and scalers, and the
data-quality report (its headline totals are the DVC metrics)."""

import sys

try:
    from finmoirai.runtime import run_stage, stage_paths, start_stage
except ModuleNotFoundError:  # not the project's Python: one line, not a traceback
    sys.exit(f"error: {sys.executable} cannot import finmoirai: activate the environment first "
             "(`source .venv/bin/activate`), or run through `make repro`")

if __name__ == "__main__":
    start_stage(deterministic=True)  # before numpy loads: the same bytes on every x86-64 machine

from finmoirai.atomic import atomic_outputs  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.data.preprocessing import preprocess  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    extracted, out, metrics = stage_paths(argv, "extracted", "out", "metrics")
    params = stage_params("preprocess")
    with atomic_outputs(out, metrics) as (staged, staged_metrics):
        preprocess(extracted, params.split, params.preprocess,
                   staged, params.market, metrics_path=staged_metrics)


if __name__ == "__main__":
    run_stage("preprocess", main)
