"""The `finmoirai` command line (`[project.scripts]`).

`finmoirai check` validates params.yaml and the lake paths it names, in about a second and
without running a stage. `make repro` runs it before `dvc repro`: DVC checks a stage's
dependencies before the stage's own code runs, so a `lake.path` that does not exist would
otherwise reach the user as DVC's errno line, not as the one line naming `lake.path`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from finmoirai.config import validate_params
from finmoirai.data.lake import check_lake_path
from finmoirai.params import DEMO_LAKE, load_params
from finmoirai.runtime import run_stage

logger = logging.getLogger(__name__)


def check(params_path: str | Path = "params.yaml") -> list[str]:
    """Validate every section of `params_path` and the lakes it points at; returns what was
    checked, one line each. The demo folder is not checked: the lake stage writes it."""
    params = load_params(params_path)
    parsed = validate_params(params)
    lake, evaluate = parsed["lake"], parsed["evaluate"]
    done = [f"{params_path}: {len(params)} top-level keys valid"]
    lakes = {"lake.path": lake.path, "evaluate.lake_path": evaluate.lake_path}
    for param, path in lakes.items():
        if param == "evaluate.lake_path" and Path(path).resolve() == Path(lake.path).resolve():
            continue  # the pipeline's own data, checked as lake.path
        if Path(path).resolve() == Path(DEMO_LAKE).resolve():
            done.append(f"{param}: {path}, written by the lake stage (lake.source: {lake.source})")
            continue
        check_lake_path(path, param)
        done.append(f"{param}: {path}, a partitioned lake")
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="finmoirai", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    checker = commands.add_parser("check", help="validate params.yaml and its lake paths, run nothing")
    checker.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    args = parser.parse_args(argv)
    if args.command == "check":
        run_stage("check", lambda: print("\n".join(check(args.params))))


if __name__ == "__main__":
    main()
