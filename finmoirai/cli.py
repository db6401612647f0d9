"""The `finmoirai` command line (`[project.scripts]`).

`finmoirai check` validates params.yaml and the lake paths it names, in about a second and
without running a stage, and checks that params.yaml is the composition of conf/ (which
`dvc exp run` would write); `finmoirai check model=small trainer=gpu` validates what
`dvc exp run -S model=small -S trainer=gpu` would run, without writing anything. `make repro`
runs it before `dvc repro`: DVC reads params.yaml and checks a stage's dependencies before the
stage's own code runs, so an unquoted date or a `lake.path` that does not exist would
otherwise reach the user as DVC's line, not as the one line naming the key.
`finmoirai compose [override ...]` writes params.yaml from conf/ (`make params`),
`finmoirai schema` prints params.yaml's JSON Schema (params.schema.json), and
`finmoirai forecast --model models/finetuned --lake PATH [--asof T]` forecasts the bars after
`T` from a lake with a packaged model folder alone (finmoirai/forecasting/forecast.py).
"""

from __future__ import annotations

import sys

from finmoirai.runtime import pin_cpu_kernels, run_stage

if sys.argv[1:2] == ["forecast"]:  # before numpy loads: the data stages' kernels, so its inputs are evaluate's
    pin_cpu_kernels()

import argparse
import json
import logging
from pathlib import Path

import yaml

from finmoirai import setup_logging
from finmoirai.composition import check_composed, compose, write_params
from finmoirai.config import validate_params
from finmoirai.data.lake import check_lake_path
from finmoirai.params import Params
from finmoirai.params.base import ParamsError, load_yaml
from finmoirai.params.data import DEMO_LAKE
from finmoirai.params.training import check_model_source

PRETRAIN_OUTPUT = "models/checkpoints/pretrained"  # dvc.yaml's pretrain output, finetune.init_from's default

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
    sources = {f"evaluate.reference_models.{name}": source for name, source in evaluate.reference_models.items()}
    if parsed.finetune.init_from != PRETRAIN_OUTPUT:  # the pretrain stage writes that one
        sources["finetune.init_from"] = parsed.finetune.init_from
    for param, source in sources.items():
        kind = "a local model folder" if check_model_source(source, param) else "a hub id (downloaded once: network)"
        done.append(f"{param}: {source}, {kind}")
    return done


def params_schema() -> str:
    """The JSON Schema of params.yaml (every key, its type, no unknown keys), as committed in
    params.schema.json for editors (README "Configuration")."""
    return json.dumps(Params.model_json_schema(), indent=2) + "\n"


def run_forecast(args: argparse.Namespace) -> None:
    """`finmoirai forecast`: deferred imports, so `check` stays fast (no torch)."""
    from finmoirai.evaluation.forecast_table import quantile_column
    from finmoirai.forecasting.forecast import DEFAULT_QUANTILES, forecast

    setup_logging()
    quantiles = args.quantiles or DEFAULT_QUANTILES
    if not all(0 < q < 1 for q in quantiles) or list(quantiles) != sorted(set(quantiles)):
        raise ParamsError(f"--quantiles: increasing levels strictly between 0 and 1, got {quantiles}")
    table = forecast(args.model, args.lake, args.out, symbols=args.symbols, asof=args.asof, quantiles=quantiles,
                     sample_paths=args.sample_paths, num_samples=args.num_samples, seed=args.seed,
                     plots=not args.no_plots, device=args.device)
    median = quantile_column("price", 0.5) if 0.5 in quantiles else None
    for symbol, rows in table.groupby("symbol", sort=False):
        last = rows.iloc[-1]
        where = f", median {last[median]:.6g}" if median else ""
        print(f"{symbol}: {len(rows)} bars from {rows['origin'].iloc[0]} (last close {last['last_close']:.6g}; "
              f"step {int(last['step'])}{where})")
    print(f"{Path(args.out) / 'forecast.parquet'}: {len(table)} rows")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="finmoirai", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    checker = commands.add_parser("check", help="validate params.yaml (or conf/ with overrides) and its lake paths")
    checker.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    checker.add_argument("overrides", nargs="*", help="Hydra overrides as dvc exp run -S takes them (model=small)")
    commands.add_parser("schema", help="print the JSON Schema of params.yaml (params.schema.json)")
    composer = commands.add_parser("compose", help="write params.yaml from conf/, as dvc exp run does")
    composer.add_argument("overrides", nargs="*", help="Hydra overrides as dvc exp run -S takes them (data=daily)")
    forecaster = commands.add_parser("forecast", help="forecast the next bars of a lake's assets with a model folder")
    forecaster.add_argument("--model", required=True, help="a packaged model folder (models/finetuned)")
    forecaster.add_argument("--lake", required=True, help="a hive-partitioned Parquet lake (the layout of data/lake)")
    forecaster.add_argument("--symbols", nargs="*", default=None, help="assets to forecast (default: every asset "
                            "the model was trained on)")
    forecaster.add_argument("--asof", default=None, help="forecast the bars after this time (UTC unless it has a "
                            "zone), from the bars up to it (default: each asset's last bar)")
    forecaster.add_argument("--out", default="forecast", help="output folder (default: ./forecast)")
    forecaster.add_argument("--quantiles", nargs="*", type=float, default=None,
                            help="quantile levels (default: 0.05 0.1 0.25 0.5 0.75 0.9 0.95)")
    forecaster.add_argument("--sample-paths", action="store_true", help="also write every sample path")
    forecaster.add_argument("--num-samples", type=int, default=None, help="paths per asset (default: the number "
                            "evaluate scored with, from the model folder)")
    forecaster.add_argument("--seed", type=int, default=None, help="default: the run's seed, from the model folder "
                            "(the draws evaluate scored)")
    forecaster.add_argument("--device", default="cpu", help="torch device (cpu, cuda, mps)")
    forecaster.add_argument("--no-plots", action="store_true", help="skip the fan charts")
    args = parser.parse_args(argv)
    if args.command == "check":
        run_stage("check", lambda: print("\n".join(check(args.params, args.overrides))))
    if args.command == "schema":
        run_stage("schema", lambda: sys.stdout.write(params_schema()))
    if args.command == "forecast":
        run_stage("forecast", lambda: run_forecast(args))
    if args.command == "compose":
        run_stage("compose", lambda: print(f"{write_params(Path.cwd(), args.overrides)}: composed from conf/"))


if __name__ == "__main__":
    main()
