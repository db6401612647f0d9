"""The whole of params.yaml, checked at the start of every stage, and what a stage starts with.

Each stage reads the `Params` object (finmoirai/params) and uses its own sections, but the whole
file is validated first (about a second), so a typo in `evaluate.*` fails in the first stage
that runs, not after pre-training. `Params` carries the rules within and across sections; this
module adds the two that need the data model: one window's tokens count the covariates the
features stage writes for the indicator list, and the seasonal baselines' lookback counts a
trading day of bars on each asset class's calendar. This check changes no output, so it is not
a dependency of any stage (tests/test_dependencies.py).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import pandas as pd
import yaml

from finmoirai import setup_logging
from finmoirai.atomic import clear_stale, is_rank_zero
from finmoirai.data.calendars import DAY, bars_per_session
from finmoirai.data.features import covariate_sets
from finmoirai.data.targets import num_variates
from finmoirai.params import Params
from finmoirai.params.base import load_yaml, require
from finmoirai.params.training import check_token_budget

logger = logging.getLogger(__name__)


def validate_params(raw: dict) -> Params:
    """`raw` (params.yaml as loaded) as Params, checked whole: every section, the rules across
    them, and the rules against the data model. Raises ParamsError naming the key."""
    params = Params.parse(raw)
    check_frequency(params)
    covariates = covariate_sets(params.features)[params.target]
    check_token_budget(params.knobs, num_variates(len(covariates), params.calendar), params.model.max_seq_len)
    return params


# Moirai's patch sizes by bar frequency (Woo et al. 2024; uni2ts's DefaultPatchSizeConstraints,
# whose pandas-1 keys H/T no longer match pandas 2's h/min, so it cannot be called as is)
PATCH_RANGES = ((pd.Timedelta(hours=1), "minute-level", (32, 128)), (pd.Timedelta(days=1), "hourly", (32, 64)),
                (None, "daily", (16, 32)))


def recommended_patch_sizes(period: pd.Timedelta) -> tuple[str, tuple[int, int]]:
    """(frequency kind, (smallest, largest) patch size) Moirai's authors use for bars of `period`."""
    for below, kind, sizes in PATCH_RANGES:
        if below is None or period < below:
            return kind, sizes
    raise AssertionError(period)


def check_frequency(params: Params) -> list[str]:
    """What the window params mean at the bar frequency: every asset class has a calendar, the
    seasonal baselines' lookback holds two seasons (one trading day of bars each), and
    `patch_size` is within Moirai's sizes for the frequency. Returns the warnings it logged: a
    context shorter than one trading day, a patch size outside the recommended range."""
    experiment, extract, market, base = params.knobs, params.extract, params.market, params.baselines
    period, year, warnings = extract.period, max(extract.years), []
    classes = list(dict.fromkeys([*extract.asset_classes, *params.evaluate.asset_classes]))
    missing = [c for c in classes if c not in market.calendars]
    require(not missing, f"param market.calendars: no calendar for asset class(es) {', '.join(missing)} of "
                         f"extract.asset_classes / evaluate.asset_classes")
    calendars = [(c, market.calendars[c]) for c in classes]
    calendars += [(c, name) for c in classes for name in market.symbol_calendars.values()]
    for asset_class, calendar in dict.fromkeys(calendars):
        day = bars_per_session(calendar, period, year)
        season = base.season_length.get(asset_class, day)
        if {"seasonal_naive", "auto_ets"} & set(base.models):
            require(base.lookback >= 2 * season + experiment.prediction_length,
                    f"param baselines.lookback: {base.lookback} bars, but the seasonal baselines need two seasons of "
                    f"{season} {extract.frequency} bars ({asset_class} on {calendar}) and the horizon: set it >= "
                    f"{2 * season + experiment.prediction_length}, or drop seasonal_naive/auto_ets")
        if experiment.context_length < day and period < DAY:
            warnings.append(f"context_length {experiment.context_length}: the model sees less than one trading day "
                            f"of {extract.frequency} bars ({day} on {calendar}, {asset_class})")
    kind, (low, high) = recommended_patch_sizes(period)
    if not low <= experiment.patch_size <= high:
        warnings.append(f"patch_size {experiment.patch_size}: Moirai's authors use {low}..{high} for {kind} bars "
                        f"(extract.frequency {extract.frequency})")
    for warning in warnings:
        logger.warning("params: %s", warning)
    return warnings


def declared_params(stage: str, dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """The params `stage` declares in dvc.yaml (what a change of reruns it)."""
    stages = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    return [p if isinstance(p, str) else next(iter(p)) for p in stages[stage].get("params", [])]


def stage_command(stage: str, dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """`stage`'s command in dvc.yaml as an argv for this interpreter (benchmarks and tests run
    the stage scripts exactly as DVC does, with the paths written once, in dvc.yaml). The
    script's path is made absolute (dvc.yaml's folder is the repo root), so the command runs
    from any working directory; its data paths stay relative to that directory."""
    cmd = shlex.split(yaml.safe_load(Path(dvc_yaml).read_text())["stages"][stage]["cmd"])
    if cmd[0] != "python":
        return cmd
    return [sys.executable, str(Path(dvc_yaml).resolve().parent / cmd[1]), *cmd[2:]]


def declared_outputs(dvc_yaml: str | Path = "dvc.yaml") -> list[Path]:
    """Every path a stage of dvc.yaml writes: its outs, metrics and plots, and the paths on its
    command line (evaluate stages whole folders such as plots/ and dvclive/evaluate, whose DVC
    outputs are folders inside them; training writes dvclive/pretrain as it runs)."""
    stages = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    entries = [e for s in stages.values() for kind in ("outs", "metrics", "plots") for e in s.get(kind, [])]
    arguments = [a for s in stages.values() for a in shlex.split(s["cmd"])[2:]]
    paths = [e if isinstance(e, str) else next(iter(e)) for e in entries] + arguments
    return [Path(p) for p in dict.fromkeys(paths)]


def sweep_stale_outputs(dvc_yaml: str | Path = "dvc.yaml") -> None:
    """Remove the sibling staging copies (`.name.partial`, `.name.old`) that killed stages left
    beside any output of the pipeline. Stages stage inside one of their DVC outputs
    (finmoirai/atomic.py), which `dvc repro` removes before it reruns or restores a stage, so
    they leave no such sibling; this only cleans what an older version of the project left, or
    the fallback layout of an output on another filesystem than its stage's staging folder.
    Only global rank 0: the other ranks of a training run must not touch rank 0's staging."""
    if Path(dvc_yaml).is_file() and is_rank_zero():
        for path in declared_outputs(dvc_yaml):
            clear_stale(path)


def stage_params(stage: str, path: str | Path = "params.yaml") -> Params:
    """Start of a stage: logging, the whole params.yaml validated once, the stage's own params
    (as dvc.yaml declares them) logged as resolved. Returns the Params the stage runs with."""
    setup_logging()
    raw = load_yaml(path)
    params = validate_params(raw)  # a ParamsError: run_stage prints its one line
    sweep_stale_outputs()
    names = declared_params(stage) if Path("dvc.yaml").is_file() else sorted(raw)
    mine = {}
    for name in names:
        head, _, rest = name.partition(".")
        value = raw.get(head)
        for part in rest.split(".") if rest else []:
            value = value.get(part) if isinstance(value, dict) else None
        mine[name] = value
    logger.info("stage %s params: %s", stage, json.dumps(mine, default=str))
    return params
