"""The baselines and evaluate stages, as one small pipeline that reads in one direction:

windows (series.plan_windows) -> sample paths per model (forecasters) -> per-window scores
(scores.score_windows) -> aggregation and tests (metrics.summarise) -> report and plots.

`baselines` runs the first three steps for `baselines.models` on the validation and the test
windows of the pipeline's own data, with `baselines.seed`, and writes the score tables: a model
knob never reruns them. `evaluate` runs them for the fine-tuned Moirai (`moirai`), the
pre-trained one before fine-tuning (`pretrained`) and any `evaluate.reference_models` (Moirai
checkpoints from elsewhere, zero-shot) on the scored period's windows, joins the baselines'
rows (the same windows, checked), and writes the headline metrics, the details, the report,
the plots and the forecasts themselves (data/evaluate/forecasts.parquet, the schema of
finmoirai.forecasting.forecast).

With `evaluate.lake_path` another lake than lake.path (or a selection of its own), evaluate
runs extract -> preprocess -> features on it in a scratch directory, with this repo's params
and the evaluate selection (years, symbols, asset classes), fitting scalers on the lake's bars
before `evaluate.test_start`, and scores the trained models and the baselines there from that
test start on, without retraining.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dvclive import Live
from finmoirai import write_json, write_parquet
from finmoirai.atomic import scratch_dir
from finmoirai.data.lake import list_assets
from finmoirai.data.targets import TARGET_COLUMNS
from finmoirai.evaluation.forecast_table import forecast_frame, last_close
from finmoirai.evaluation.forecasters import moirai_forecasters
from finmoirai.evaluation.metrics import check_same_windows, headline, summarise
from finmoirai.evaluation.other_lake import (
    check_not_in_sample,
    lake_features_for_scoring,
    other_lake_features,
    other_lake_selection,
)
from finmoirai.evaluation.plots import plot_all, plot_fan_chart, write_plot_data
from finmoirai.evaluation.report import headline_metrics, markdown_report
from finmoirai.evaluation.scores import score_windows
from finmoirai.evaluation.scoring import (
    period_bounds,
    period_windows,
    score_baselines,
    stored_baselines,
    windows_between,
)
from finmoirai.evaluation.series import Windows
from finmoirai.params import Params
from finmoirai.params.base import require
from finmoirai.training.module import load_module

logger = logging.getLogger(__name__)


def score_moirai(windows: list[Windows], modules: dict, params: Params, keep: tuple[str, ...] = (),
                 device: torch.device | str = "cpu") -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """The Moirai models' rows of the score table (each window drawn under its `window_seed`);
    the reference models see the target alone unless `evaluate.reference_covariates`."""
    experiment, cfg = params.knobs, params.evaluate
    close_only = () if cfg.reference_covariates else tuple(cfg.reference_models)
    fns = moirai_forecasters(modules, experiment, cfg.num_samples, close_only=close_only, device=device)
    table, kept, seconds = score_windows(windows, fns, experiment.seed, experiment.context_length,
                                         experiment.prediction_length, params.evaluate.stride, keep=keep)
    logger.info("model forecast seconds: %s", {k: round(v, 1) for k, v in seconds.items()})
    return table, kept


def one_per_class_first(windows: list[Windows]) -> list[Windows]:
    """Fan charts should show every asset class before a second asset of any class."""
    seen: set[str] = set()
    first, rest = [], []
    for w in windows:
        (rest if w.series.asset_class in seen else first).append(w)
        seen.add(w.series.asset_class)
    return first + rest


def scored_data(params: Params, features_dir: Path, work: Path) -> tuple[Path, Path, pd.Timestamp]:
    """(features dir, preprocessed dir, scored-period start) of another lake run through the
    data stages into `work`, with a warm-up split ending at `evaluate.test_start`."""
    cfg, split, experiment = params.evaluate, params.split, params.knobs
    selection = other_lake_selection(params.extract, cfg)
    logger.info("evaluating on lake %s (%s)", cfg.lake_path, selection)
    lake = Path(cfg.lake_path)
    trained = json.loads((features_dir / "manifest.json").read_text())["assets"]
    # list_assets checks the path first: a missing lake, a file or no partitions is one line naming the param
    scored = sorted(symbol for _, symbol in list_assets(lake, selection, params.lake.strict, "evaluate.lake_path"))
    check_not_in_sample(lake, selection, scored, pd.Timestamp(cfg.test_start or split.val_end, tz="UTC"),
                        trained, split.train_end_ts)
    start = lake_features_for_scoring(lake, selection, cfg.test_start or split.val_end, params.preprocess,
                                      other_lake_features(params.features, cfg), experiment.context_length,
                                      experiment.prediction_length, work, market=params.market,
                                      strict=params.lake.strict,
                                      naive_timezone=params.lake.naive_timezone)
    return work / "features", work / "preprocessed", start


def other_lake_windows(params: Params, features_dir: Path, covariates: list[str],
                       work: Path) -> tuple[list[Windows], list[str], dict, pd.Timestamp]:
    """Windows, skipped assets, data quality and test start of another lake."""
    scored_features, scored_preprocessed, start = scored_data(params, features_dir, work)
    quality = json.loads((scored_preprocessed / "quality_report.json").read_text())
    windows, skipped = windows_between(scored_features, scored_preprocessed, start, None, params.knobs,
                                       params.evaluate.stride, covariates)
    return windows, skipped, quality, start


def validation_headline(params: Params, features_dir: Path, preprocessed_dir: Path, baselines_dir: Path,
                        covariates: list[str], modules: dict) -> dict:
    """Moirai's skill vs the reference on the validation period (the same windows rule), so
    that `dvc exp show` puts the period recipes are chosen on beside the test period."""
    cfg, experiment = params.evaluate, params.knobs
    windows, _ = period_windows(features_dir, preprocessed_dir, params.split, "val", experiment, cfg.stride,
                                covariates)
    moirai, _ = score_moirai(windows, {"moirai": modules["moirai"]}, params, device=next(
        modules["moirai"].parameters()).device)
    reference = stored_baselines(baselines_dir, "val", params.baselines)
    table = pd.concat([moirai, reference[reference["model"] == cfg.reference]], ignore_index=True)
    check_same_windows(table, f"{baselines_dir / 'val.parquet'}")
    return headline(table, "moirai", cfg.reference, experiment.prediction_length, cfg.stride)


def scaling_point(pretrained: Path, periods: dict[str, dict]) -> dict[str, float | None]:
    """This experiment's point of the scaling study: the pre-training run's tokens and
    parameters (its training.json) beside the skill of each scored period (`dvc plots diff`
    draws one point per experiment)."""
    trained = json.loads((Path(pretrained) / "training.json").read_text())["result"]
    return {"pretrain_tokens": trained.get("tokens"), "parameters": trained.get("parameters")} | {
        f"{period}_skill": periods[period]["skill"] if period in periods else None for period in ("val", "test")}


def log_to_dvclive(head: dict, result: dict, live_dir: Path) -> None:
    """The headline and the per-step CRPS, calibration and PIT through dvclive, as training
    logs its NLL curves (the git-tracked metrics/evaluate.json stays what `dvc exp show` reads)."""
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for period in ("val", "test"):
            for key, value in head[period].items():
                if value is not None:
                    live.log_metric(f"{period}/{key}", value, plot=False)
        for model, values in result["models"].items():
            for key in ("crps", "msis", "qlike"):
                live.log_metric(f"{model}/{key}", values[key], plot=False)
        models = list(result["models"])
        steps = [{"step": h + 1} | {m: result["per_step"][m][h] for m in models}
                 for h in range(len(result["per_step"][models[0]]))]
        live.log_plot("crps_by_horizon", steps, x="step", y=models, title="CRPS per horizon step")
        levels = sorted(result["coverage"][models[0]])
        coverage = [{"nominal": lv} | {m: result["coverage"][m][lv] for m in models} for lv in levels]
        live.log_plot("calibration", coverage, x="nominal", y=models, title="Calibration of central intervals")
        bins = len(result["pit"][models[0]])
        pit = [{"pit": (b + 0.5) / bins} | {m: result["pit"][m][b] for m in models} for b in range(bins)]
        live.log_plot("pit", pit, x="pit", y=models, title="PIT histogram (counts)")


def evaluation_device(accelerator: str) -> torch.device:
    """evaluate.accelerator as a torch device, or one line when this machine has none of it."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if accelerator == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if accelerator in ("gpu", "cuda"):
        require(cuda, f"param evaluate.accelerator: {accelerator}, but torch sees no CUDA device here; set cpu")
        return torch.device("cuda")
    if accelerator == "mps":
        require(mps, "param evaluate.accelerator: mps, but torch sees no Apple GPU here; set cpu")
        return torch.device("mps")
    return torch.device("cpu")


def check_reference(module, name: str, patch_size: int) -> None:
    """A reference checkpoint must have the experiment's patch size among its own."""
    require(patch_size in module.patch_sizes,
            f"param evaluate.reference_models.{name}: the checkpoint's patch sizes are {tuple(module.patch_sizes)}, "
            f"not patch_size={patch_size}; score it in an experiment with one of them")


def scored_forecasts(windows: list[Windows], kept: dict[str, dict[str, np.ndarray]],
                     quantiles: list[float]) -> pd.DataFrame:
    """Every Moirai model's forecast of every scored window, in the forecast command's schema
    (finmoirai.forecasting.forecast), with the realised close beside it."""
    frames = []
    for name, by_symbol in kept.items():
        for w in windows:
            s, samples = w.series, by_symbol[w.series.symbol]
            h = samples.shape[-1]
            steps = [s.timestamps[o:o + h] for o in w.origins]
            frame = forecast_frame(s.symbol, s.asset_class, name, s.timestamps[w.origins], s.timestamps[w.origins - 1],
                                   steps, last_close(s, w.origins), samples, quantiles)
            actual = w.origins[:, None] + np.arange(h)[None, :]
            frame["actual_price"] = np.where(s.observed[actual], s.price[actual], np.nan).reshape(-1)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def evaluate(params: Params, features_dir: Path, preprocessed_dir: Path, baselines_dir: Path,
             models: dict[str, Path], metrics_dir: Path, plots_dir: Path, live_dir: Path,
             forecasts_path: Path) -> dict:
    """Forecast, score and write everything; returns the headline metrics."""
    experiment, cfg, split = params.knobs, params.evaluate, params.split
    torch.set_num_threads(cfg.threads)
    device = evaluation_device(cfg.accelerator)
    modules = {name: load_module(str(path)).eval().to(device) for name, path in models.items()}
    for name, source in cfg.reference_models.items():
        modules[name] = load_module(source, f"evaluate.reference_models.{name}").eval().to(device)
        check_reference(modules[name], name, experiment.patch_size)
    covariates = json.loads((features_dir / "manifest.json").read_text())[TARGET_COLUMNS[experiment.target][1]]
    other = cfg.scores_other_lake(params.lake)
    if other:
        with scratch_dir(plots_dir.parent / ".evaluate-scratch") as tmp:  # beside the staged plots: inside an output
            windows, skipped, quality, start = other_lake_windows(params, features_dir, covariates, tmp)
        stored = score_baselines(windows, params.baselines, experiment, cfg.stride)
    else:
        windows, skipped = period_windows(features_dir, preprocessed_dir, split, cfg.split, experiment, cfg.stride,
                                          covariates)
        quality = json.loads((preprocessed_dir / "quality_report.json").read_text())
        start = period_bounds(split, cfg.split)[0]
        stored = stored_baselines(baselines_dir, cfg.split, params.baselines)
    fans = one_per_class_first(windows)[: cfg.plot_assets]
    moirai, kept = score_moirai(windows, modules, params, keep=tuple(modules), device=device)
    table = pd.concat([moirai, stored[stored["model"].isin(params.baselines.models)]], ignore_index=True)
    check_same_windows(table, "evaluate" if other else f"{baselines_dir / (cfg.split + '.parquet')}")
    result = summarise(table, windows, cfg, experiment.prediction_length)

    n_windows = int(sum(len(w.origins) for w in windows))
    periods = {cfg.split: {"windows": n_windows} | result["significance"]["moirai"]
               | {"qlike": result["models"]["moirai"]["qlike"]}}
    if not other and cfg.split == "test":  # the period recipes are chosen on, beside it
        periods["val"] = validation_headline(params, features_dir, preprocessed_dir, baselines_dir, covariates, modules)
    head = headline_metrics(result, periods, cfg.split)
    write_json(metrics_dir / "evaluate.json", head)  # DVC metrics: one `dvc exp show` column each
    write_json(metrics_dir / "evaluate_per_asset.json", result["per_asset"])
    write_json(metrics_dir / "evaluate_details.json",
               {k: result[k] for k in ("reference", "models", "skill_vs", "significance", "mcs", "per_step",
                                       "coverage", "pit", "buy_and_hold")}
               | {"periods": periods, "not_evaluated": skipped})
    meta = {
        "period": "validation" if cfg.split == "val" else "test",
        "val_end": str(start),
        "windows": n_windows,
        "assets": [w.series.symbol for w in windows],
        "context_length": experiment.context_length,
        "prediction_length": experiment.prediction_length,
        "stride": cfg.stride,
        "cost_bps": cfg.transaction_cost_bps,
        "baseline_samples": params.baselines.num_samples,
        "model_samples": cfg.num_samples,
        "not_evaluated": skipped,
        "quality": quality,
    }
    report = markdown_report(result, meta)
    (metrics_dir / "report.md").write_text(report)
    write_plot_data(result, plots_dir / "data", baselines=params.baselines.models)
    write_json(plots_dir / "data" / "scaling.json", [scaling_point(models["pretrained"], periods)])
    plot_all(result, plots_dir / "images")
    for w in fans:
        plot_fan_chart(w, kept["moirai"][w.series.symbol], "moirai", plots_dir / "forecasts" / f"{w.series.symbol}.png")
    write_parquet(scored_forecasts(windows, kept, params.forecast.quantiles), forecasts_path)
    log_to_dvclive(head, result, live_dir)
    logger.info("model vs baselines:\n%s", report)
    return head
