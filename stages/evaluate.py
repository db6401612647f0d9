"""DVC stage `evaluate`: rolling-origin forecasts of the test split, model vs random walk."""

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai import setup_logging  # noqa: E402
from finmoirai.builder import IterativeFinancialDatasetBuilder  # noqa: E402
from finmoirai.evaluation import EvaluateConfig, load_series, plot_fan_chart, run_windows, summarise, write_json  # noqa: E402
from finmoirai.model import load_module  # noqa: E402
from finmoirai.params import knobs, load_params, section  # noqa: E402

logger = logging.getLogger("evaluate")
MODELS = ("moirai", "random_walk")


def main() -> None:
    setup_logging()
    params = load_params()
    top = knobs(params)
    cfg = section(params, EvaluateConfig, "evaluate")
    module = load_module("models/finetuned").eval()
    builder = IterativeFinancialDatasetBuilder(Path("data/datasets"))
    scalers = json.loads(Path("data/preprocessed/scalers.json").read_text())
    series = load_series(builder, Path("data/features"), scalers)
    windows, skipped = run_windows(series, module, top.context_length, top.prediction_length, top.patch_size, cfg, top.seed)
    result = summarise(windows, MODELS, top.context_length, top.prediction_length)
    moirai, walk = result["models"]["moirai"], result["models"]["random_walk"]
    headline = dict(moirai)
    headline["crps_skill_vs_random_walk"] = 1.0 - moirai["crps_asset_mean"] / walk["crps_asset_mean"]
    headline["windows"] = int(sum(len(w.origins) for w in windows))
    write_json(Path("metrics/evaluate.json"), {"moirai": headline, "random_walk": walk, "not_evaluated": skipped})
    write_json(Path("metrics/evaluate_per_asset.json"), result["per_asset"])
    for w in windows[: cfg.plot_assets]:
        plot_fan_chart(w, "moirai", Path("plots/forecasts") / f"{w.series.symbol}.png")
    logger.info("moirai %s", headline)
    logger.info("random walk %s", walk)


if __name__ == "__main__":
    main()
