"""The markdown report and the headline metrics that `evaluate` writes, from
`metrics.summarise`'s result: the model-vs-baselines table, skill with its interval and test,
CRPS per asset and data quality per asset."""

from __future__ import annotations

from typing import Any

COLUMNS = [
    ("crps_asset_mean", "CRPS", "{:.4f}"),
    ("skill", "skill vs RW-EWMA", "{:+.3f}"),
    ("crps", "CRPS pooled", "{:.4f}"),
    ("msis", "MSIS", "{:.2f}"),
    ("mase", "MASE", "{:.2f}"),
    ("mae", "MAE", "{:.4g}"),
    ("mse", "MSE", "{:.4g}"),
    ("coverage_50", "cov 50%", "{:.2f}"),
    ("coverage_90", "cov 90%", "{:.2f}"),
    ("directional_accuracy", "dir. acc.", "{:.3f}"),
    ("sharpe", "Sharpe", "{:+.2f}"),
    ("max_drawdown", "max DD", "{:.2f}"),
]


def markdown_report(result: dict[str, Any], meta: dict[str, Any]) -> str:
    """Model-vs-baselines table plus the facts needed to read it, ready to paste in a PR."""
    models = result["models"]
    order = sorted(models, key=lambda m: models[m]["crps_asset_mean"])
    head = "| model | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = [
        f"| {m} | " + " | ".join(fmt.format(models[m][key]) for key, _, fmt in COLUMNS) + " |" for m in order
    ]
    period = meta.get("period", "test")
    lines = [
        "# Evaluation: model vs baselines",
        "",
        f"{period.capitalize()} period from {meta['val_end']}; {meta['windows']} rolling windows over "
        f"{len(meta['assets'])} assets "
        f"({', '.join(meta['assets'])}); context {meta['context_length']} bars, "
        f"horizon {meta['prediction_length']} bars, "
        f"origins every {meta['stride']} bars. Prices in original units.",
        "",
        head,
        rule,
        *rows,
        "",
        "CRPS is gluonts `MeanWeightedSumQuantileLoss` (quantiles 0.1..0.9) averaged over assets (each asset's is "
        "scale-free); *CRPS pooled* pools all windows, so high-priced assets dominate it. Skill = 1 - CRPS / CRPS of "
        "the EWMA random walk: above 0 beats it. Coverage is the share of realised prices inside the central interval "
        "(nominal 0.50 / 0.90). Trading: long/short on the sign of the median forecast return over the horizon, held "
        f"until the next origin, {meta['cost_bps']} bp cost per unit turnover; metrics averaged over assets.",
    ]
    for model, sig in result.get("significance", {}).items():
        test = ("too few origin dates for a Diebold-Mariano test" if sig["dm_p"] is None else
                f"Diebold-Mariano test of per-window CRPS vs RW-EWMA: statistic {sig['dm_stat']:+.2f}, "
                f"p = {sig['dm_p']:.3g} over {sig['dm_n']} origin dates (negative: lower loss than RW-EWMA)")
        lines += ["", f"**{model}**: skill {models[model]['skill']:+.3f}, 95% interval [{sig['skill_lo']:+.3f}, "
                      f"{sig['skill_hi']:+.3f}] (moving-block bootstrap over origin dates, blocks of 5 days, the "
                      f"same dates for every asset); {test}."]
    if meta.get("not_evaluated"):
        lines += ["", f"Not evaluated (no full test window): {', '.join(meta['not_evaluated'])}."]
    lines += per_asset_table(result["per_asset"], order)
    if meta.get("quality"):
        lines += quality_table(meta["quality"])
    return "\n".join(lines) + "\n"


HEADLINE_METRICS = (("crps", "crps_asset_mean"), ("msis", "msis"), ("mase", "mase"), ("coverage_80", "coverage_80"))


def headline_metrics(result: dict[str, Any], significance: dict[str, Any], split: str, windows: int) -> dict[str, Any]:
    """What `dvc exp show` carries: the scored period, Moirai's skill with its interval and
    test, and four numbers per model (`crps` is the per-asset mean that skill is based on).
    Everything else (MSE, MAE, trading, per asset, per step) is in the details and the report."""
    models = result["models"]
    head = {"split": split, "windows": windows, "skill": models["moirai"]["skill"],
            "skill_lo": significance["skill_lo"], "skill_hi": significance["skill_hi"], "dm_p": significance["dm_p"]}
    return head | {m: {key: values[src] for key, src in HEADLINE_METRICS} for m, values in models.items()}


def per_asset_table(per_asset: dict[str, dict[str, dict[str, float]]], models: list[str]) -> list[str]:
    """CRPS of every model on every asset (the numbers behind the averaged table)."""
    lines = ["", "## CRPS per asset", "", "| asset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for asset, scores in per_asset.items():
        lines.append(f"| {asset} | " + " | ".join(f"{scores[m]['crps']:.4f}" if m in scores else "-" for m in models)
                     + " |")
    return lines


QUALITY_COLUMNS = ("rows_in", "rows_out", "rows_dropped", "rows_inserted", "gaps_filled", "long_gaps",
                   "outliers_replaced", "inconsistent_high_low", "non_positive_price", "zero_volume",
                   "duplicate_timestamps", "unsorted", "off_calendar")


def quality_table(report: dict[str, Any]) -> list[str]:
    """The preprocess stage's counts per asset and kind (quality_report.json), as a table."""
    lines = ["", "## Data quality per asset", "", "What each kind means and what was done with it: "
             "`data/preprocessed/quality_report.json` (`actions`).", "",
             "| asset | " + " | ".join(QUALITY_COLUMNS) + " |", "|---|" + "---:|" * len(QUALITY_COLUMNS)]
    rows = {**report["assets"], "total": report["totals"]}
    for asset, q in rows.items():
        lines.append(f"| {asset} | " + " | ".join(str(q.get(k, "-")) for k in QUALITY_COLUMNS) + " |")
    return lines
