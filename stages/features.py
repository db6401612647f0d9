"""DVC stage `features`: indicators, cross-asset and regime covariates, both target representations."""

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
from finmoirai.data.features import features  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    preprocessed, out = stage_paths(argv, "preprocessed", "out")
    params = stage_params("features")
    on_bad_asset = params.preprocess.on_bad_asset
    with atomic_outputs(out) as (staged,):
        features(preprocessed, params.split, params.features,
                 staged, on_bad_asset)


if __name__ == "__main__":
    run_stage("features", main)
