"""The evaluate stage: rolling-origin forecasts of the test (or validation) period, the
fine-tuned and the zero-shot Moirai beside the baselines on the same windows, scored in
price units; writes the headline metrics, the details, the report and the plots.

By default it scores the pipeline's own assets (data/features). With `evaluate.lake_path`
set it runs extract -> preprocess -> features on that lake in a temporary directory, with
this repo's params and the evaluate selection (years, symbols, asset classes), fitting
scalers on the lake's bars before `evaluate.test_start`, and scores the trained models
there from that test start on, without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import typing
from pathlib import Path

import pandas as pd
import torch

from finmoirai import write_json
from finmoirai.atomic import scratch_dir
from finmoirai.data.lake import list_assets
from finmoirai.data.targets import TARGET_COLUMNS
from finmoirai.evaluation.forecasters import forecasters, run_windows
from finmoirai.evaluation.metrics import headline, score_assets, summarise
from finmoirai.evaluation.other_lake import check_not_in_sample, lake_features_for_scoring, other_lake_selection
from finmoirai.evaluation.plots import plot_all, plot_fan_chart, write_plot_data
from finmoirai.evaluation.report import headline_metrics, markdown_report
from finmoirai.evaluation.series import Windows, load_series
from finmoirai.params import (
    EvaluateConfig,
    ExtractConfig,
    FeaturesConfig,
    Knobs,
    LakeConfig,
    PreprocessConfig,
    SplitConfig,
    knobs,
    section,
)
from finmoirai.training.module import load_module

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Sections:
    """The params evaluate reads: its own section, the knobs and the split, and (for another
    lake) the data stages' sections it reruns there."""

    experiment: Knobs
    evaluate: EvaluateConfig
    split: SplitConfig
    lake: LakeConfig
    extract: ExtractConfig
    preprocess: PreprocessConfig
    features: FeaturesConfig

    @classmethod
    def from_params(cls, params: dict) -> Sections:
        hints = typing.get_type_hints(cls)
        return cls(knobs(params), *(section(params, hints[f.name], f.name) for f in dataclasses.fields(cls)[1:]))


def one_per_class_first(windows: list[Windows]) -> list[Windows]:
    """Fan charts should show every asset class before a second asset of any class."""
    seen: set[str] = set()
    first, rest = [], []
    for w in windows:
        (rest if w.series.asset_class in seen else first).append(w)
        seen.add(w.series.asset_class)
    return first + rest


def scored_data(params: Sections, features_dir: Path, preprocessed_dir: Path,
                work: Path) -> tuple[Path, Path, pd.Timestamp]:
    """(features dir, preprocessed dir, scored-period start): this repo's, or another lake's
    run through the data stages into `work` with a warm-up split ending at `evaluate.test_start`."""
    cfg, split, experiment = params.evaluate, params.split, params.experiment
    if cfg.lake_path is None:
        return features_dir, preprocessed_dir, split.train_end_ts if cfg.split == "val" else split.val_end_ts
    selection = other_lake_selection(params.extract, cfg)
    logger.info("evaluating on lake %s (%s)", cfg.lake_path, selection)
    lake = Path(cfg.lake_path)
    if lake.is_dir():  # a missing lake gets its own line from the lake reader
        trained = json.loads((features_dir / "manifest.json").read_text())["assets"]
        scored = sorted(symbol for _, symbol in list_assets(lake, selection, params.lake.strict))
        check_not_in_sample(lake, selection, scored, pd.Timestamp(cfg.test_start or split.val_end, tz="UTC"),
                            trained, split.train_end_ts)
    start = lake_features_for_scoring(Path(cfg.lake_path), selection, cfg.test_start or split.val_end,
                                      params.preprocess, params.features, experiment.context_length,
                                      experiment.prediction_length, work, strict=params.lake.strict,
                                      naive_timezone=params.lake.naive_timezone)
    return work / "features", work / "preprocessed", start


def validation_headline(params: Sections, features_dir: Path, preprocessed_dir: Path, covariates: list[str],
                        fns: dict) -> dict:
    """Moirai's skill vs the reference on the validation period (the same windows rule), so
    that `dvc exp show` puts the period recipes are chosen on beside the test period."""
    experiment, split = params.experiment, params.split
    scalers = json.loads((preprocessed_dir / "scalers.json").read_text())
    series = load_series(features_dir, scalers, split.train_end_ts, covariates=covariates, target=experiment.target,
                         scored_until=split.val_end_ts)
    windows, _, _ = run_windows(series, fns, experiment.context_length, experiment.prediction_length,
                                params.evaluate.stride, experiment.seed)
    assets = score_assets(windows, list(fns), experiment.context_length, experiment.prediction_length)
    return headline(assets, "moirai", params.evaluate.reference, experiment.prediction_length, params.evaluate.stride)


def evaluate(params: Sections, features_dir: Path, preprocessed_dir: Path, models: dict[str, Path],
             metrics_dir: Path, plots_dir: Path) -> dict:
    """Forecast, score and write everything; returns the headline metrics."""
    experiment, cfg, split = params.experiment, params.evaluate, params.split
    torch.set_num_threads(cfg.threads)
    modules = {name: load_module(str(path)).eval() for name, path in models.items()}
    trained_covariates = json.loads((features_dir / "manifest.json").read_text())[TARGET_COLUMNS[experiment.target][1]]
    scored_until = split.val_end_ts if cfg.split == "val" else None
    with scratch_dir(features_dir.parent / ".evaluate-scratch") as tmp:  # a killed run's is removed first
        scored_features, scored_preprocessed, start = scored_data(params, features_dir, preprocessed_dir, tmp)
        scalers = json.loads((scored_preprocessed / "scalers.json").read_text())
        quality = json.loads((scored_preprocessed / "quality_report.json").read_text())
        series = load_series(scored_features, scalers, start, covariates=trained_covariates, target=experiment.target,
                             scored_until=scored_until)
    context, horizon = experiment.context_length, experiment.prediction_length
    fns = forecasters(modules, context, horizon, experiment.patch_size, cfg, experiment.calendar)
    windows, skipped, seconds = run_windows(series, fns, context, horizon, cfg.stride, experiment.seed)
    logger.info("forecast seconds per model: %s", {k: round(v, 1) for k, v in seconds.items()})
    result = summarise(windows, list(fns), experiment.context_length, experiment.prediction_length, cfg)

    n_windows = int(sum(len(w.origins) for w in windows))
    periods = {cfg.split: {"windows": n_windows} | result["significance"]["moirai"]}
    if cfg.lake_path is None and cfg.split == "test":  # the period recipes are chosen on, beside it
        periods["val"] = validation_headline(params, features_dir, preprocessed_dir, trained_covariates,
                                             {name: fns[name] for name in ("moirai", cfg.reference)})
    headline = headline_metrics(result, periods, cfg.split)
    write_json(metrics_dir / "evaluate.json", headline)  # DVC metrics: one `dvc exp show` column each
    write_json(metrics_dir / "evaluate_per_asset.json", result["per_asset"])
    write_json(metrics_dir / "evaluate_details.json",
               {k: result[k] for k in ("reference", "models", "skill_vs", "significance", "mcs", "per_step",
                                       "coverage", "pit")}
               | {"periods": periods, "not_evaluated": skipped})
    meta = {
        "period": "validation" if cfg.split == "val" else "test",
        "val_end": str(start) if cfg.lake_path is not None or cfg.split == "val" else split.val_end,
        "windows": n_windows,
        "assets": [w.series.symbol for w in windows],
        "context_length": experiment.context_length,
        "prediction_length": experiment.prediction_length,
        "stride": cfg.stride,
        "cost_bps": cfg.transaction_cost_bps,
        "not_evaluated": skipped,
        "quality": quality,
    }
    report = markdown_report(result, meta)
    (metrics_dir / "report.md").write_text(report)
    write_plot_data(result, plots_dir / "data")
    plot_all(result, plots_dir / "images")
    for w in one_per_class_first(windows)[: cfg.plot_assets]:
        plot_fan_chart(w, "moirai", plots_dir / "forecasts" / f"{w.series.symbol}.png")
    logger.info("model vs baselines:\n%s", report)
    return headline
