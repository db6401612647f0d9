"""DVC stage `evaluate`: rolling-origin forecasts of the test (or validation) period, models vs baselines.

By default it scores the pipeline's own assets (data/features). With `evaluate.lake_path`
set it runs extract -> preprocess -> features on that lake in a temporary directory, with
this repo's params and the evaluate selection (years, symbols, asset classes), fitting
scalers on the lake's bars before `evaluate.test_start`, and scores the trained models
there from that test start on, without retraining.
"""

import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai.runtime import start_stage  # noqa: E402

if __name__ == "__main__":
    start_stage(deterministic=False)

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from finmoirai import write_json  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.evaluation import (  # noqa: E402
    forecasters,
    lake_features_for_scoring,
    load_series,
    other_lake_selection,
    plot_fan_chart,
    run_windows,
    summarise,
)
from finmoirai.features import FeaturesConfig  # noqa: E402
from finmoirai.lake import ExtractConfig  # noqa: E402
from finmoirai.model import load_module  # noqa: E402
from finmoirai.params import EvaluateConfig, SplitConfig, knobs, section  # noqa: E402
from finmoirai.preprocessing import PreprocessConfig  # noqa: E402
from finmoirai.report import headline_metrics, markdown_report, plot_all, write_plot_data  # noqa: E402
from finmoirai.targets import TARGET_COLUMNS  # noqa: E402

logger = logging.getLogger("evaluate")
FEATURES = Path("data/features")
SCALERS = Path("data/preprocessed/scalers.json")
MODELS = {"moirai": "models/finetuned", "zero_shot": "models/pretrained"}


def other_lake_features(params: dict, cfg: EvaluateConfig, split: SplitConfig,
                        work: Path) -> tuple[Path, Path, pd.Timestamp]:
    """The data stages on `evaluate.lake_path`, into `work`, with the evaluate selection and a
    warm-up split ending at `evaluate.test_start` (default split.val_end): (features dir,
    scalers file, test start)."""
    top = knobs(params)
    selection = other_lake_selection(section(params, ExtractConfig, "extract"), cfg)
    logger.info("evaluating on lake %s (%s)", cfg.lake_path, selection)
    test_start = lake_features_for_scoring(Path(cfg.lake_path), selection, cfg.test_start or split.val_end,
                                           section(params, PreprocessConfig, "preprocess"),
                                           section(params, FeaturesConfig, "features"),
                                           top.context_length, top.prediction_length, work)
    return work / "features", work / "preprocessed" / "scalers.json", test_start


def one_per_class_first(windows: list) -> list:
    """Fan charts should show every asset class before a second asset of any class."""
    seen: set[str] = set()
    first, rest = [], []
    for w in windows:
        (rest if w.series.asset_class in seen else first).append(w)
        seen.add(w.series.asset_class)
    return first + rest


def main() -> None:
    params = stage_params("evaluate")
    top = knobs(params)
    cfg = section(params, EvaluateConfig, "evaluate")
    split = section(params, SplitConfig, "split")
    torch.set_num_threads(cfg.threads)
    modules = {name: load_module(path).eval() for name, path in MODELS.items()}
    trained_covariates = json.loads((FEATURES / "manifest.json").read_text())[TARGET_COLUMNS[top.target][1]]
    scored_until = split.val_end_ts if cfg.split == "val" else None
    with tempfile.TemporaryDirectory(prefix="evaluate-", dir="data") as tmp:
        if cfg.lake_path is not None:
            features_dir, scalers_file, test_start = other_lake_features(params, cfg, split, Path(tmp))
        else:
            features_dir, scalers_file = FEATURES, SCALERS
            test_start = split.train_end_ts if cfg.split == "val" else split.val_end_ts
        scalers = json.loads(scalers_file.read_text())
        quality = json.loads((scalers_file.parent / "quality_report.json").read_text())
        series = load_series(features_dir, scalers, test_start, covariates=trained_covariates, target=top.target,
                             scored_until=scored_until)
    fns = forecasters(modules, top.context_length, top.prediction_length, top.patch_size, cfg, top.calendar)
    windows, skipped, seconds = run_windows(series, fns, top.context_length, top.prediction_length, cfg.stride, top.seed)
    logger.info("forecast seconds per model: %s", {k: round(v, 1) for k, v in seconds.items()})
    result = summarise(windows, list(fns), top.context_length, top.prediction_length, cfg)

    n_windows = int(sum(len(w.origins) for w in windows))
    # DVC metrics (git-tracked, one `dvc exp show` column each): the headline only
    write_json(Path("metrics/evaluate.json"), headline_metrics(result, result["significance"]["moirai"], cfg.split,
                                                               n_windows))
    write_json(Path("metrics/evaluate_per_asset.json"), result["per_asset"])
    write_json(
        Path("metrics/evaluate_details.json"),
        {k: result[k] for k in ("models", "per_step", "coverage", "pit", "significance")} | {"not_evaluated": skipped},
    )
    meta = {
        "period": "validation" if cfg.split == "val" else "test",
        "val_end": str(test_start) if cfg.lake_path is not None or cfg.split == "val" else split.val_end,
        "windows": n_windows,
        "assets": [w.series.symbol for w in windows],
        "context_length": top.context_length,
        "prediction_length": top.prediction_length,
        "stride": cfg.stride,
        "cost_bps": cfg.transaction_cost_bps,
        "not_evaluated": skipped,
        "quality": quality,
    }
    report = markdown_report(result, meta)
    Path("metrics/report.md").write_text(report)
    write_plot_data(result, Path("plots/data"))
    plot_all(result, Path("plots/images"))
    for w in one_per_class_first(windows)[: cfg.plot_assets]:
        plot_fan_chart(w, "moirai", Path("plots/forecasts") / f"{w.series.symbol}.png")
    logger.info("model vs baselines:\n%s", report)


if __name__ == "__main__":
    main()
