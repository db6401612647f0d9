"""The baselines stage, and the steps it shares with evaluate: windows of a period of the
pipeline's own data, and the baselines' rows of the score table (finmoirai.evaluation.run
tells the whole pipeline)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from finmoirai import write_parquet
from finmoirai.errors import DataError
from finmoirai.evaluation.forecasters import baseline_forecasters
from finmoirai.evaluation.scores import score_windows
from finmoirai.evaluation.series import Windows, load_series, plan_windows
from finmoirai.params.data import SplitConfig
from finmoirai.params.evaluation import BaselinesConfig
from finmoirai.params.training import Knobs

logger = logging.getLogger(__name__)


PERIODS = ("val", "test")


def period_bounds(split: SplitConfig, period: str) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """[start, end) of the validation or the test period (the test runs to the data's end)."""
    return (split.train_end_ts, split.val_end_ts) if period == "val" else (split.val_end_ts, None)


PRICES_ONLY = "log_return"  # the baselines read prices, which every target representation carries alike


def period_windows(features_dir: Path, preprocessed_dir: Path, split: SplitConfig, period: str, experiment: Knobs,
                   stride: int, covariates: list[str] | None = None,
                   target: str | None = None) -> tuple[list[Windows], list[str]]:
    """The forecast windows of one period of the pipeline's own data (step one), with the
    model's inputs of `target` (default: the experiment's)."""
    start, end = period_bounds(split, period)
    return windows_between(features_dir, preprocessed_dir, start, end, experiment, stride, covariates, target)


def windows_between(features_dir: Path, preprocessed_dir: Path, start: pd.Timestamp, end: pd.Timestamp | None,
                    experiment: Knobs, stride: int, covariates: list[str] | None = None,
                    target: str | None = None) -> tuple[list[Windows], list[str]]:
    """The forecast windows with origins in [start, end) (end None: to the data's end) of a
    features folder and its preprocess scalers: any period of any lake run through the data stages."""
    scalers = json.loads((preprocessed_dir / "scalers.json").read_text())
    series = load_series(features_dir, scalers, start, target=target or experiment.target, covariates=covariates,
                         scored_until=end)
    return plan_windows(series, experiment.context_length, experiment.prediction_length, stride)


def score_baselines(windows: list[Windows], cfg: BaselinesConfig, experiment: Knobs, stride: int) -> pd.DataFrame:
    """The baselines' rows of the score table, with their own seed."""
    fns = baseline_forecasters(cfg, experiment.context_length, experiment.prediction_length)
    table, _, seconds = score_windows(windows, fns, cfg.seed, experiment.context_length,
                                      experiment.prediction_length, stride)
    logger.info("baseline forecast seconds: %s", {k: round(v, 1) for k, v in seconds.items()})
    return table


def baselines(experiment: Knobs, cfg: BaselinesConfig, stride: int, split: SplitConfig, features_dir: Path,
              preprocessed_dir: Path, out: Path) -> None:
    """The baselines stage: score tables of `baselines.models` on the validation and the test
    windows (`<period>.parquet`), for evaluate to join."""
    out.mkdir(parents=True, exist_ok=True)
    for period in PERIODS:
        windows, _ = period_windows(features_dir, preprocessed_dir, split, period, experiment, stride,
                                    target=PRICES_ONLY)  # `target` is a model knob: it must not rerun this stage
        write_parquet(score_baselines(windows, cfg, experiment, stride), out / f"{period}.parquet")


def stored_baselines(baselines_dir: Path, period: str, cfg: BaselinesConfig) -> pd.DataFrame:
    """The baselines stage's score table of `period`; one line if it is not there."""
    path = baselines_dir / f"{period}.parquet"
    if not path.is_file():
        raise DataError(f"{path}: no baseline scores of the {period} period; run `dvc repro baselines`")
    table = pd.read_parquet(path)
    missing = [m for m in cfg.models if m not in set(table["model"])]
    if missing:
        raise DataError(f"{path}: no scores of {missing} (baselines.models); run `dvc repro baselines`")
    return table
