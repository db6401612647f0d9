"""DVC stage `evaluate`: the fine-tuned and the pre-trained Moirai (and any reference
checkpoints) beside the baselines on the same windows of the test (or validation, or another
lake's) period (finmoirai/evaluation/run.py)."""

import sys

try:
    from finmoirai.runtime import run_stage, stage_paths, start_stage
except ModuleNotFoundError:  # not the project's Python: one line, not a traceback
    sys.exit(f"error: {sys.executable} cannot import finmoirai: activate the environment first "
             "(`source .venv/bin/activate`), or run through `make repro`")

if __name__ == "__main__":
    start_stage(deterministic=True)  # the data code's kernels (finmoirai/runtime.py): inputs and paths as forecast's

from finmoirai.atomic import atomic_outputs  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.evaluation.run import evaluate  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    features_dir, preprocessed, baselines, finetuned, pretrained, metrics, plots, live, forecasts = stage_paths(
        argv, "features", "preprocessed", "baselines", "finetuned", "pretrained", "metrics", "plots", "live",
        "forecasts")
    params = stage_params("evaluate")
    models = {"moirai": finetuned, "pretrained": pretrained}
    with atomic_outputs(metrics, plots, live, forecasts, merge=(metrics,)) as staged:
        evaluate(params, features_dir, preprocessed, baselines, models, *staged)


if __name__ == "__main__":
    run_stage("evaluate", main)
