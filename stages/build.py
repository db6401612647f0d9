"""DVC stage `build`: per-asset features -> uni2ts Hugging Face datasets, with the optional
synthetic pre-training corpus in the train split (finmoirai/data/corpus.py)."""

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
from finmoirai.data.corpus import build  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    features_dir, out = stage_paths(argv, "features", "out")
    params = stage_params("build")
    with atomic_outputs(out) as (staged,):
        build(features_dir, staged, params.split, params.build,
              params.lake.synthetic, params.preprocess,
              params.features, params.market)


if __name__ == "__main__":
    run_stage("build", main)
