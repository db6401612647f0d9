"""The model card (README.md of a packaged model folder), written from the run's own numbers:
the data it saw, its params, its scores beside the baselines on the same windows, what it is
for and what it is not, and how to load it and forecast with it."""

from __future__ import annotations

from typing import Any

from finmoirai.params import Params

WHAT_IT_IS_NOT = """\
- Not a trading system. The trading lines of the report are a diagnostic of the forecasts'
  sign and spread under a fixed, simple sizing, net of the costs in `evaluate.transaction_cost_bps`.
- Not a foundation model of markets: it was pre-trained from scratch on the assets and the
  period above only. On other assets, other frequencies or another period its numbers are
  unknown until `evaluate.lake_path` scores it there.
- Not better than GARCH-t until the skill above says so with its interval above zero: the
  headline is reported whatever it is, beside the strongest baseline."""


def _fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _headline_rows(evaluation: dict[str, Any], model: str) -> list[str]:
    """Validation and test skill vs the reference, for the fine-tuned model (the headline)."""
    if model != "moirai":
        return ["The headline skill (with its interval and Diebold-Mariano p) is the fine-tuned model's; this "
                "model's scores are its row in the table below."]
    rows = [f"| period | windows | skill vs {evaluation['reference']} | 95% interval | DM p |",
            "|---|---:|---:|---|---:|"]
    for period in ("val", "test"):
        p = evaluation.get(period)
        if p:
            rows.append(f"| {'validation' if period == 'val' else 'test'} | {p['windows']} | {_fmt(p['skill'])} | "
                        f"[{_fmt(p.get('skill_lo'))}, {_fmt(p.get('skill_hi'))}] | {_fmt(p.get('dm_p'), 3)} |")
    return ["Skill is 1 - CRPS(model) / CRPS(reference) on the same windows (positive: better than the reference), "
            "with a block-bootstrap interval and the Diebold-Mariano test.", "", *rows]


def _scores_table(details: dict[str, Any], model: str, period: str) -> list[str]:
    """Every model's CRPS, QLIKE, MSIS and 80% coverage on the scored period, this one marked."""
    rows = [f"| model ({period}) | CRPS | QLIKE | MSIS | coverage 80% |", "|---|---:|---:|---:|---:|"]
    for name, m in sorted(details["models"].items(), key=lambda kv: kv[1]["crps"]):
        label = f"**{name}** (this model)" if name == model else name
        rows.append(f"| {label} | {_fmt(m['crps'])} | {_fmt(m['qlike'])} | {_fmt(m['msis'], 3)} | "
                    f"{_fmt(m['coverage_80'], 3)} |")
    return rows


def model_card(name: str, model: str, params: Params, recipe: dict[str, Any], quality: dict[str, Any],
               training: dict[str, Any], evaluation: dict[str, Any], details: dict[str, Any]) -> str:
    """README.md of the packaged folder `name` (models/<name>), evaluate's model `model`."""
    knobs, cfg = params.knobs, params.model
    assets = recipe["assets"]
    classes = sorted({a["asset_class"] for a in assets})
    symbols = ", ".join(f"{a['symbol']} ({a['asset_class']}, {a['calendar']})" for a in assets)
    period = "test" if evaluation["scored"] == "test" else "validation"
    scope = f"the {period} period"
    if params.evaluate.scores_other_lake(params.lake):
        scope = (f"the lake {params.evaluate.lake_path} from {params.evaluate.test_start or params.split.val_end} "
                 "(evaluate.lake_path and its selection, not the pipeline's own test period)")
    stage = "pre-trained from scratch" if name == "pretrained" else f"fine-tuned from {params.finetune.init_from}"
    result = training.get("result", {})
    lines = [
        "---",
        "library_name: uni2ts",
        "pipeline_tag: time-series-forecasting",
        "tags: [moirai, finmoirai, finance, ohlcv, probabilistic-forecasting]",
        "---",
        f"# finmoirai {name}: Moirai on {', '.join(classes)} {params.extract.frequency} bars",
        "",
        f"A Moirai encoder ({cfg.num_layers} layers, d_model {cfg.d_model}, patch size {knobs.patch_size}, "
        f"mixture of {', '.join(cfg.mixture)}, {scaler_text(cfg)}), {stage}, that forecasts the "
        f"next {knobs.prediction_length} bars of an asset's `{knobs.target}` from its last {knobs.context_length} "
        f"bars and {len(recipe['covariates'])} covariates; sample paths become prices from the last close. "
        "Written by the `package` stage of this repository's DVC pipeline: every number below is this run's.",
        "",
        "## Data",
        f"- Assets ({len(assets)}): {symbols}.",
        f"- Bars: {params.extract.frequency}, years {', '.join(map(str, params.extract.years))}; "
        f"training before {params.split.train_end}, validation to {params.split.val_end}, test after.",
        f"- Quality: {quality.get('rows_out')} bars after cleaning, {quality.get('bad_bars')} bad bars, "
        f"{quality.get('outliers')} outliers, {quality.get('gaps_filled')} gaps filled, "
        f"{quality.get('skipped_assets')} assets and {quality.get('skipped_partitions')} partitions skipped.",
        f"- Covariates: {', '.join(recipe['covariates'])}"
        + ("; calendar covariates as known future" if knobs.calendar else "") + ".",
        "",
        "## Training",
        f"- Seed {knobs.seed}; {params.pretrain.max_steps} pre-training steps (lr {params.pretrain.lr:g})"
        + ("" if name == "pretrained" else f", then up to {params.finetune.max_epochs} fine-tuning epochs "
           f"(lr {params.finetune.lr:g}, early stopping on validation NLL)") + ".",
        f"- NLL: train {_fmt(result.get('train_nll'))}, validation {_fmt(result.get('val_nll'))}, "
        f"best validation {_fmt(result.get('best_val_nll'))} at step {result.get('best_step')}.",
        "- The full params are in `training.json` (how it was trained) and `forecast.json` (what a forecast "
        "replays: the data recipe and every statistic fitted on the training period).",
        "",
        "## Scores",
        *_headline_rows(evaluation, model),
        "",
        f"On {scope} ({evaluation[evaluation['scored']]['windows']} windows, origins every "
        f"{params.evaluate.stride} bars), in percent log-return units, beside the baselines on the same windows:",
        "",
        *_scores_table(details, model, period),
        "",
        "## Intended use",
        "Research: probabilistic forecasts (quantiles, sample paths) of the next "
        f"{knobs.prediction_length} bars of the assets above, to compare with the baselines and to study "
        "what pre-training on market data buys.",
        "",
        "## What it is not",
        WHAT_IT_IS_NOT,
        "",
        "## Load it and forecast",
        "```bash",
        f"finmoirai forecast --model models/{name} --lake /path/to/lake --symbols {assets[0]['symbol']}",
        "```",
        "reads the lake (hive partitions `" + recipe["lake_schema"]["layout"] + "`, columns "
        + ", ".join(recipe["lake_schema"]["columns"]) + ") up to its last bar (or `--asof T`), runs the same extract, "
        "preprocess "
        "and features code with the statistics of `forecast.json` (never refitted), and writes the quantiles of "
        "price and return per step to a Parquet file, with a fan chart per asset.",
        "",
        "```python",
        "from finmoirai.training.module import load_module",
        f"module = load_module(\"models/{name}\")  # the weights and the `{cfg.scaler}` scaler",
        "```",
        "Stock uni2ts (`MoiraiModule.from_pretrained`) "
        + ("loads this folder with the right scaler (`std`)." if cfg.scaler == "std" else
           f"refuses this folder with a message naming `load_module`: its `{cfg.scaler}` scaler is not uni2ts's, "
           "and loading it with PackedStdScaler would be a different model."),
        "",
    ]
    return "\n".join(lines)


def scaler_text(cfg) -> str:
    """The per-window scaling in words: the target's scaler, then the recipe options when set."""
    text = f"`{cfg.scaler}` scaler"
    if cfg.scale_halflife is not None:
        text += f" with a {cfg.scale_halflife:g}-bar half-life"
    if cfg.covariate_scaler != "same":
        text += f", covariates `{cfg.covariate_scaler}`"
    return text
