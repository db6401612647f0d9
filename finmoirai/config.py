"""The whole of params.yaml, checked at the start of every stage.

Each stage parses only its own sections to run, but validates all of them first (a fraction
of a second), so a typo in `evaluate.*` fails in the first stage that runs, not after
pre-training, and so do the rules that tie sections together: the context/horizon ratio,
the token budget of one window, the scaler/target pairing and the market proxies.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from finmoirai import setup_logging
from finmoirai.atomic import clear_stale, is_rank_zero
from finmoirai.data.calendars import DAY, bars_per_session
from finmoirai.data.features import covariate_sets
from finmoirai.data.targets import CALENDAR_COLUMNS
from finmoirai.params import (
    DEMO_LAKE,
    BaselinesConfig,
    BuildConfig,
    EvaluateConfig,
    ExtractConfig,
    FeaturesConfig,
    FinetuneConfig,
    Knobs,
    LakeConfig,
    MarketConfig,
    ModelConfig,
    ParamsError,
    PreprocessConfig,
    PretrainConfig,
    SplitConfig,
    knobs,
    load_params,
    require,
    section,
    tokens_per_window,
)

logger = logging.getLogger(__name__)

SECTIONS = {"lake": LakeConfig, "market": MarketConfig, "extract": ExtractConfig, "split": SplitConfig,
            "preprocess": PreprocessConfig, "features": FeaturesConfig, "build": BuildConfig, "model": ModelConfig,
            "pretrain": PretrainConfig, "finetune": FinetuneConfig, "baselines": BaselinesConfig,
            "evaluate": EvaluateConfig}
TOP_LEVEL = ("seed", "patch_size", "context_length", "prediction_length", "target", "calendar", "min_context_ratio")


def check_context_ratio(experiment: Knobs, min_ratio: float) -> None:
    """The design rule: the model sees at least `min_ratio` horizons of history."""
    ratio = experiment.context_length / experiment.prediction_length
    if ratio < min_ratio:
        need = math.ceil(min_ratio * experiment.prediction_length)
        raise ParamsError(
            f"params context_length={experiment.context_length}, prediction_length={experiment.prediction_length}: "
            f"the context is {ratio:.1f}x the horizon, the rule is >= {min_ratio:g}x (min_context_ratio); set "
            f"context_length >= {need}, or prediction_length <= {int(experiment.context_length // min_ratio)}, or "
            f"lower min_context_ratio to accept it")


def check_token_budget(experiment: Knobs, variates: int, max_seq_len: int) -> None:
    """One window (every variate, context + horizon, in patches) must fit the model's sequence."""
    tokens = tokens_per_window(experiment.context_length, experiment.prediction_length, experiment.patch_size, variates)
    if tokens > max_seq_len:
        patches = tokens // variates
        raise ParamsError(
            f"params context_length={experiment.context_length}, prediction_length={experiment.prediction_length}, "
            f"patch_size={experiment.patch_size}: a window is {variates} variates x {patches} patches = {tokens} "
            f"tokens > model.max_seq_len {max_seq_len}; raise patch_size or model.max_seq_len, shorten the context, "
            f"or use fewer features.indicators")


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parse every section and check the cross-section rules; returns the parsed sections
    (and `knobs` for the top-level knobs). Raises ParamsError naming the parameter on the first problem."""
    unknown = sorted(set(params) - set(SECTIONS) - set(TOP_LEVEL))
    require(not unknown, f"params.yaml: unknown top-level key(s) {', '.join(unknown)}; "
                         f"known: {', '.join([*TOP_LEVEL, *SECTIONS])}")
    parsed: dict[str, Any] = {"knobs": knobs(params)}
    parsed |= {name: section(params, cls, name) for name, cls in SECTIONS.items()}
    experiment, model = parsed["knobs"], parsed["model"]
    min_ratio = params.get("min_context_ratio")
    require(isinstance(min_ratio, (int, float)) and not isinstance(min_ratio, bool) and min_ratio > 0,
            f"param min_context_ratio: must be a positive number, got {min_ratio!r}")
    check_context_ratio(experiment, float(min_ratio))
    require(model.scaler == "std" or experiment.target == "log_return",
            f"param model.scaler: {model.scaler} needs target log_return (a price level scaled by its own root "
            f"mean square would hide every move); set model.scaler: std or target: log_return")
    proxies = parsed["features"].market_proxy
    missing = [c for c in parsed["extract"].asset_classes if c not in proxies]
    require(not missing, f"param features.market_proxy: no proxy for asset class(es) {', '.join(missing)} "
                         f"of extract.asset_classes")
    share = parsed["pretrain"].synthetic_share
    require(not share or parsed["build"].synthetic_assets > 0,
            f"param pretrain.synthetic_share: {share} draws from a synthetic corpus, but build.synthetic_assets is 0; "
            f"set build.synthetic_assets > 0, or synthetic_share: null")
    check_evaluation(parsed)
    check_frequency(parsed)
    covariates = covariate_sets(parsed["features"])[experiment.target]
    variates = 1 + len(covariates) + (len(CALENDAR_COLUMNS) if experiment.calendar else 0)
    check_token_budget(experiment, variates, model.max_seq_len)
    return parsed


def check_evaluation(parsed: dict[str, Any]) -> None:
    """The rules that tie evaluate to the baselines, the lake and the asset classes."""
    cfg, base, lake, classes = parsed["evaluate"], parsed["baselines"], parsed["lake"], parsed["extract"].asset_classes
    require(cfg.reference in base.models,
            f"param evaluate.reference: {cfg.reference!r} must be one of baselines.models {base.models}")
    missing = [c for c in [*classes, *cfg.asset_classes] if c not in cfg.transaction_cost_bps]
    require(not missing, f"param evaluate.transaction_cost_bps: no cost for asset class(es) {', '.join(missing)}")
    require(cfg.lake_path != DEMO_LAKE or lake.path == DEMO_LAKE,
            f"param evaluate.lake_path: {DEMO_LAKE} is the demo lake's folder, but lake.path is {lake.path}; to score "
            f"the pipeline's own data set evaluate.lake_path: {lake.path}")
    require(not cfg.market_proxy or cfg.scores_other_lake(lake),
            f"param evaluate.market_proxy: {cfg.market_proxy} names the proxies of another lake, but evaluate scores "
            f"the pipeline's own data (evaluate.lake_path is lake.path, no selection), whose proxies are "
            f"features.market_proxy; leave it {{}}")
    require(cfg.split == "test" or not cfg.scores_other_lake(lake),
            "param evaluate.split: 'val' scores this repo's validation period; with another evaluate.lake_path, or "
            "evaluate.symbols/asset_classes/years/test_start, use test")


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


def check_frequency(parsed: dict[str, Any]) -> list[str]:
    """What the window params mean at the bar frequency: every asset class has a calendar, the
    seasonal baselines' lookback holds two seasons (one trading day of bars each), and
    `patch_size` is within Moirai's sizes for the frequency. Returns the warnings it logged: a
    context shorter than one trading day, a patch size outside the recommended range."""
    experiment, extract, market, base = parsed["knobs"], parsed["extract"], parsed["market"], parsed["baselines"]
    period, year, warnings = extract.period, max(extract.years), []
    classes = list(dict.fromkeys([*extract.asset_classes, *parsed["evaluate"].asset_classes]))
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
    command line (a stage stages whole folders such as dvclive/pretrain, whose DVC output is
    only the plots/ inside)."""
    stages = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    entries = [e for s in stages.values() for kind in ("outs", "metrics", "plots") for e in s.get(kind, [])]
    arguments = [a for s in stages.values() for a in shlex.split(s["cmd"])[2:]]
    paths = [e if isinstance(e, str) else next(iter(e)) for e in entries] + arguments
    return [Path(p) for p in dict.fromkeys(paths)]


def sweep_stale_outputs(dvc_yaml: str | Path = "dvc.yaml") -> None:
    """Remove the staging copies that killed stages left beside any output of the pipeline.
    A stage's own run removes its leftovers, but after a kill `dvc repro` may restore that
    stage from its cache without running it; so every stage (and `make repro`) sweeps them all.
    Only global rank 0: the other ranks of a training run must not touch rank 0's staging."""
    if Path(dvc_yaml).is_file() and is_rank_zero():
        for path in declared_outputs(dvc_yaml):
            clear_stale(path)


def stage_params(stage: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """Start of a stage: logging, the whole params.yaml validated, the stage's own params
    logged as resolved. Returns the raw params for the stage to parse its sections."""
    setup_logging()
    params = load_params(path)
    validate_params(params)  # a ParamsError: run_stage prints its one line
    sweep_stale_outputs()
    names = declared_params(stage) if Path("dvc.yaml").is_file() else sorted(params)
    mine = {}
    for name in names:
        head, _, rest = name.partition(".")
        value = params.get(head)
        for part in rest.split(".") if rest else []:
            value = value.get(part) if isinstance(value, dict) else None
        mine[name] = value
    logger.info("stage %s params: %s", stage, json.dumps(mine, default=str))
    return params
