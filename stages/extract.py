"""DVC stage `extract`: one parquet per selected asset of the lake at lake.path to OUT."""

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
from finmoirai.data.lake import extract  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    (out,) = stage_paths(argv, "out")
    params = stage_params("extract")
    lake = params.lake
    with atomic_outputs(out) as (staged,):
        extract(lake.path, params.extract, staged, strict=lake.strict,
                naive_timezone=lake.naive_timezone)


if __name__ == "__main__":
    run_stage("extract", main)
