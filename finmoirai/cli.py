"""The `finmoirai` command line (`[project.scripts]`).

`finmoirai check` validates params.yaml and the lake paths it names, in about a second and
without running a stage, and checks that params.yaml is the composition of conf/ (which
`dvc exp run` would write); `finmoirai check model=small trainer=gpu` validates what
`dvc exp run -S model=small -S trainer=gpu` would run, without writing anything. `make repro`
runs it before `dvc repro`: DVC reads params.yaml and checks a stage's dependencies before the
stage's own code runs, so an unquoted date or a `lake.path` that does not exist would
otherwise reach the user as DVC's line, not as the one line naming the key.
`finmoirai compose [override ...]` writes params.yaml from conf/ (`make params`), and
`finmoirai schema` prints params.yaml's JSON Schema (params.schema.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from finmoirai.composition import check_composed, compose, write_params
from finmoirai.config import validate_params
from finmoirai.data.lake import check_lake_path
from finmoirai.params import Params
from finmoirai.params.base import load_yaml
from finmoirai.params.data import DEMO_LAKE
from finmoirai.runtime import run_stage

logger = logging.getLogger(__name__)


def check(params_path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = (),
          root: Path | None = None) -> list[str]:
    """Validate every section of `params_path` and the lakes it points at, and that it is the
    composition of `root`/conf/; with `overrides`, validate their composition instead. Returns
    what was checked, one line each. The demo folder is not checked: the lake stage writes it.
    `root` is the repository (default: the working directory, as for `dvc`)."""
    root = Path.cwd() if root is None else root
    if overrides:
        params = yaml.safe_load(compose(root, overrides))  # OmegaConf's dump: a mapping, dates quoted
        source = f"conf/ with {' '.join(overrides)}"
    else:
        params = load_yaml(params_path)
        source = str(params_path)
    parsed = validate_params(params)
    done = [f"{source}: {len(params)} top-level keys valid"]
    if not overrides and Path(params_path).resolve() == (root / "params.yaml").resolve():
        check_composed(root, Path(params_path))
        done.append("params.yaml: the composition of conf/ (what dvc exp run writes)")
    lake, evaluate = parsed.lake, parsed.evaluate
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


def params_schema() -> str:
    """The JSON Schema of params.yaml (every key, its type, no unknown keys), as committed in
    params.schema.json for editors (README "Configuration")."""
    return json.dumps(Params.model_json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="finmoirai", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    checker = commands.add_parser("check", help="validate params.yaml (or conf/ with overrides) and its lake paths")
    checker.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    checker.add_argument("overrides", nargs="*", help="Hydra overrides as dvc exp run -S takes them (model=small)")
    commands.add_parser("schema", help="print the JSON Schema of params.yaml (params.schema.json)")
    composer = commands.add_parser("compose", help="write params.yaml from conf/, as dvc exp run does")
    composer.add_argument("overrides", nargs="*", help="Hydra overrides as dvc exp run -S takes them (data=daily)")
    args = parser.parse_args(argv)
    if args.command == "check":
        run_stage("check", lambda: print("\n".join(check(args.params, args.overrides))))
    if args.command == "schema":
        run_stage("schema", lambda: sys.stdout.write(params_schema()))
    if args.command == "compose":
        run_stage("compose", lambda: print(f"{write_params(Path.cwd(), args.overrides)}: composed from conf/"))


if __name__ == "__main__":
    main()
