"""DVC stage `finetune`: MoiraiFinetune from finetune.init_from (models/pretrained or a hub id)."""

import sys

try:
    from finmoirai.runtime import run_stage, stage_paths, start_stage
except ModuleNotFoundError:  # not the project's Python: one line, not a traceback
    sys.exit(f"error: {sys.executable} cannot import finmoirai: activate the environment first "
             "(`source .venv/bin/activate`), or run through `make repro`")

if __name__ == "__main__":
    start_stage(deterministic=False)  # before torch loads: a wrong interpreter gets one line

from finmoirai import write_json  # noqa: E402
from finmoirai.atomic import atomic_outputs  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.data.builder import IterativeFinancialDatasetBuilder  # noqa: E402
from finmoirai.training.loops import finetune  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    datasets, out, live, metrics = stage_paths(argv, "datasets", "out", "live", "metrics")
    params = stage_params("finetune")
    experiment = params.knobs
    builder = IterativeFinancialDatasetBuilder(datasets).for_target(experiment.target)
    # The model and metrics appear complete or not at all; the live folder (dvclive's plots, the
    # TensorBoard events) is written as training runs, to be watched (finmoirai/training/loops.py).
    with atomic_outputs(out, metrics) as (staged, staged_metrics):
        result = finetune(builder, experiment, params.finetune, staged, live)
        if result is not None:  # None on every process but rank 0 of a multi-device run
            write_json(staged_metrics, result)


if __name__ == "__main__":
    run_stage("finetune", main)
