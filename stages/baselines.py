"""DVC stage `baselines`: what a quant would use instead of the model, scored on the validation
and test windows with their own seed, so that a model knob never reruns them
(finmoirai/evaluation/scoring.py)."""

import sys

try:
    from finmoirai.runtime import run_stage, stage_paths, start_stage
except ModuleNotFoundError:  # not the project's Python: one line, not a traceback
    sys.exit(f"error: {sys.executable} cannot import finmoirai: activate the environment first "
             "(`source .venv/bin/activate`), or run through `make repro`")

if __name__ == "__main__":
    start_stage(deterministic=True)  # before numpy loads: the same score bytes on every x86-64 machine

from finmoirai.atomic import atomic_outputs  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.evaluation.scoring import baselines  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    features_dir, preprocessed, out = stage_paths(argv, "features", "preprocessed", "out")
    params = stage_params("baselines")
    stride = params.evaluate.stride
    with atomic_outputs(out) as (staged,):
        baselines(params.knobs, params.baselines, stride,
                  params.split, features_dir, preprocessed, staged)


if __name__ == "__main__":
    run_stage("baselines", main)
