"""DVC stage `lake`: the embedded demo lake (lake.source: demo) or a synthetic market
(lake.source: synthetic) at OUT, or only a marker when lake.path names the user's own lake."""

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
from finmoirai.data.sources import write_lake  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    (out,) = stage_paths(argv, "out")
    params = stage_params("lake")
    cfg, extract = params.lake, params.extract
    with atomic_outputs(out) as (staged,):
        write_lake(cfg, staged, extract.frequency, params.market, final=out)


if __name__ == "__main__":
    run_stage("lake", main)
