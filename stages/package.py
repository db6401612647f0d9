"""DVC stage `package`: models/pretrained and models/finetuned as self-contained folders, each
with its recipe, statistics and model card (finmoirai/forecasting/bundle.py, card.py)."""

import sys

try:
    from finmoirai.runtime import run_stage, stage_paths, start_stage
except ModuleNotFoundError:  # not the project's Python: one line, not a traceback
    sys.exit(f"error: {sys.executable} cannot import finmoirai: activate the environment first "
             "(`source .venv/bin/activate`), or run through `make repro`")

if __name__ == "__main__":
    start_stage(deterministic=False)

from finmoirai.atomic import atomic_outputs  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.forecasting.bundle import package_models  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    checkpoints, preprocessed, features, metrics, pretrained, finetuned = stage_paths(
        argv, "checkpoints", "preprocessed", "features", "metrics", "pretrained", "finetuned")
    params = stage_params("package")
    with atomic_outputs(pretrained, finetuned) as (staged_pretrained, staged_finetuned):
        package_models(params, checkpoints, preprocessed, features, metrics,
                       {"pretrained": staged_pretrained, "finetuned": staged_finetuned})


if __name__ == "__main__":
    run_stage("package", main)
