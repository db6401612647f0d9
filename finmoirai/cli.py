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

import yaml

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


def overrides(path: str | Path) -> list[str]:
    """A partial params file (such as conf/data/daily.yaml) as `dvc exp run` arguments: one
    `-S key=value` per leaf, values in YAML flow style without spaces, strings quoted (so that a
    date stays a string), for a shell to split on spaces."""
    def leaves(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
        out = []
        for key, value in tree.items():
            name = f"{prefix}{key}"
            out += leaves(value, f"{name}.") if isinstance(value, dict) else [(name, value)]
        return out

    args = []
    for name, value in leaves(yaml.safe_load(Path(path).read_text()) or {}):
        text = yaml.safe_dump(value, default_flow_style=True, default_style="'" if isinstance(value, str) else None,
                              width=10**6).strip().removesuffix("...").strip().replace(", ", ",")
        if " " in text:
            raise ValueError(f"{path}: {name}: {text} has a space; a shell would split it")
        args += ["-S", f"{name}={text}"]
    return args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="finmoirai", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    checker = commands.add_parser("check", help="validate params.yaml and its lake paths, run nothing")
    checker.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    lister = commands.add_parser("overrides", help="a partial params file as `dvc exp run -S` arguments")
    lister.add_argument("file", help="e.g. conf/data/daily.yaml")
    args = parser.parse_args(argv)
    if args.command == "check":
        run_stage("check", lambda: print("\n".join(check(args.params))))
    if args.command == "overrides":
        run_stage("overrides", lambda: print(" ".join(overrides(args.file))))


if __name__ == "__main__":
    main()
