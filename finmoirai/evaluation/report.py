"""The markdown report and the headline metrics that `evaluate` writes, from
`metrics.summarise`'s result: the model-vs-baselines table, skill vs the reference with its
interval and test, skill vs every baseline, the model confidence set, CRPS per asset and data
quality per asset."""

from __future__ import annotations

from typing import Any

COLUMNS = [
    ("crps", "CRPS", "{:.4f}"),
    ("skill", "skill", "{:+.4f}"),
    ("qloss", "qloss", "{:.4f}"),
    ("msis", "MSIS", "{:.2f}"),
    ("qlike", "QLIKE", "{:.3f}"),
    ("mase", "MASE", "{:.3f}"),
    ("abs_error", "MAE", "{:.4f}"),
    ("coverage_50", "cov 50%", "{:.3f}"),
    ("coverage_80", "cov 80%", "{:.3f}"),
    ("coverage_95", "cov 95%", "{:.3f}"),
]
TRADING_COLUMNS = [
    ("sharpe", "Sharpe", "{:+.2f}"),
    ("sharpe_se", "± SE", "{:.2f}"),
    ("directional_accuracy", "dir. acc.", "{:.3f}"),
    ("exposure", "in market", "{:.2f}"),
    ("turnover", "turnover", "{:.2f}"),
    ("max_drawdown", "max DD", "{:.2f}"),
]


def _fmt(fmt: str, value: Any) -> str:
    return "-" if value is None or value != value else fmt.format(value)


def significance_line(model: str, reference: str, sig: dict[str, Any]) -> str:
    interval = ("no interval (too few origin dates)" if sig["skill_lo"] is None else
                f"95% interval [{sig['skill_lo']:+.4f}, {sig['skill_hi']:+.4f}]")
    test = ("too few origin dates for a Diebold-Mariano test" if sig["dm_p"] is None else
            f"Diebold-Mariano statistic {sig['dm_stat']:+.2f}, p = {sig['dm_p']:.3g} over {sig['dm_n']} origin dates "
            f"(negative: lower CRPS than {reference})")
    return (f"- **{model}** vs {reference}: skill {sig['skill']:+.4f}, {interval} (circular block bootstrap of "
            f"origin dates, the same dates for every asset, blocks of {sig['block_days']} chosen from the data); "
            f"{test}.")


def markdown_report(result: dict[str, Any], meta: dict[str, Any]) -> str:
    """Model-vs-baselines table plus the facts needed to read it, ready to paste in a PR."""
    models, reference = result["models"], result["reference"]
    order = sorted(models, key=lambda m: models[m]["crps"])
    head = "| model | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = [f"| {m} | " + " | ".join(_fmt(fmt, models[m][key]) for key, _, fmt in COLUMNS) + " |" for m in order]
    period = meta.get("period", "test")
    lines = [
        "# Evaluation: model vs baselines",
        "",
        f"{period.capitalize()} period from {meta['val_end']}; {meta['windows']} rolling windows over "
        f"{len(meta['assets'])} assets ({', '.join(meta['assets'])}); context {meta['context_length']} bars, "
        f"horizon {meta['prediction_length']} bars, origins every {meta['stride']} bars.",
        "",
        head,
        rule,
        *rows,
        "",
        "Every score is of the cumulative log return over the horizon, in percent (from the last close before the "
        "origin to the horizon's last bar): one scale-free quantity for every asset. *CRPS*: the exact sample CRPS "
        "(scoringrules `crps_ensemble`, fair estimator), the mean over assets of each asset's mean. *skill*: 1 - the "
        f"geometric mean over assets of the per-asset CRPS ratio to **{reference}** (the reference); above 0 beats "
        "it, and every asset counts once. *qloss*: twice the pinball loss averaged over quantiles 0.1..0.9. *MSIS*: "
        "the 95% interval score over the context's mean absolute horizon return. *QLIKE*: of the forecast variance "
        "of the horizon return against the realised variance (sum of squared bar returns); 0 is perfect. *MASE*, "
        "*MAE*: of the median forecast. *cov*: the share of realised returns inside the central interval. Quantiles "
        "are numpy's linear rule everywhere. Baselines draw "
        f"{meta.get('baseline_samples', '-')} paths per window with a seed of their own (baselines.seed), the trained "
        f"models {meta.get('model_samples', '-')}; the fair CRPS estimator is unbiased at any number of paths.",
        "",
        *trading_table(result, meta),
        "",
        "## Skill and significance vs the reference",
        "",
    ]
    lines += [significance_line(m, reference, sig) for m, sig in result.get("significance", {}).items()]
    lines += skill_vs_table(result["skill_vs"])
    lines += mcs_lines(result.get("mcs", {}))
    if meta.get("not_evaluated"):
        lines += ["", f"Not evaluated (no full window): {', '.join(meta['not_evaluated'])}."]
    lines += per_asset_table(result["per_asset"], order)
    if meta.get("quality"):
        lines += quality_table(meta["quality"])
    return "\n".join(lines) + "\n"


def trading_table(result: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The trading rule per model beside buy-and-hold, Sharpe with its standard error."""
    rows = {**result["models"], "buy_and_hold": result.get("buy_and_hold", {})}
    costs = ", ".join(f"{k} {v:g}" for k, v in meta["cost_bps"].items())
    return ["## Trading", "",
            "Long/short on the sign of the median forecast return over the holding period (min(stride, horizon) "
            "bars, until the next origin), flat where that median is within its Monte-Carlo standard error; "
            f"cost per unit turnover in bp: {costs}. Buy-and-hold is long over the same bars. Metrics are means over "
            "assets; the Sharpe ratio is annualised, its standard error from a circular block bootstrap of the bar "
            "returns.", "",
            "| strategy | " + " | ".join(label for _, label, _ in TRADING_COLUMNS) + " |",
            "|---|" + "---:|" * len(TRADING_COLUMNS),
            *(f"| {m} | " + " | ".join(_fmt(fmt, v.get(key)) for key, _, fmt in TRADING_COLUMNS) + " |"
              for m, v in rows.items() if v)]


def skill_vs_table(skill_vs: dict[str, dict[str, float]]) -> list[str]:
    """Geometric CRPS skill of every model (rows) against every baseline (columns)."""
    baselines = sorted({b for row in skill_vs.values() for b in row})
    lines = ["", "## Skill vs every baseline", "", "1 - geometric mean over assets of the CRPS ratio (row / column).",
             "", "| model | " + " | ".join(baselines) + " |", "|---|" + "---:|" * len(baselines)]
    for model, row in skill_vs.items():
        lines.append(f"| {model} | " + " | ".join(_fmt("{:+.4f}", row.get(b)) for b in baselines) + " |")
    return lines


def mcs_lines(mcs: dict[str, dict[str, Any]]) -> list[str]:
    """The model confidence set: which models cannot be told apart from the best."""
    if not mcs or all(v["p_value"] is None for v in mcs.values()):
        return ["", "Model confidence set: too few origin dates."]
    inside = sorted((m for m, v in mcs.items() if v["in_set"]), key=lambda m: -mcs[m]["p_value"])
    pvalues = ", ".join(f"{m} {v['p_value']:.3f}" for m, v in sorted(mcs.items(), key=lambda kv: -kv[1]["p_value"]))
    return ["", "## Model confidence set", "",
            f"At the 10% level (Hansen-Lunde-Nason, range statistic, circular block bootstrap on the per-date CRPS in "
            f"units of the reference's): {{{', '.join(inside)}}}. MCS p-values: {pvalues}."]


HEADLINE_MODEL_METRICS = ("crps", "qlike", "msis", "coverage_80")
HEADLINE_PERIOD_KEYS = ("windows", "skill", "skill_lo", "skill_hi", "dm_p", "qlike")


def headline_metrics(result: dict[str, Any], periods: dict[str, dict[str, Any] | None], scored: str) -> dict[str, Any]:
    """What `dvc exp show` carries: for the validation and the test period (None where not
    scored), Moirai's skill vs the reference with its interval and test; the reference; and
    four numbers per model of the fully scored period `scored`. Everything else (MAE, trading,
    skill vs every baseline, per asset, per step, MCS) is in the details and the report."""
    head: dict[str, Any] = {"reference": result["reference"], "scored": scored}
    for period in ("val", "test"):
        values = periods.get(period)
        head[period] = {k: (None if values is None else values[k]) for k in HEADLINE_PERIOD_KEYS}
    return head | {m: {key: values[key] for key in HEADLINE_MODEL_METRICS} for m, values in result["models"].items()}


def per_asset_table(per_asset: dict[str, dict[str, dict[str, float]]], models: list[str]) -> list[str]:
    """CRPS of every model on every asset (the numbers behind the averaged table)."""
    lines = ["", "## CRPS per asset", "", "| asset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for asset, scores in per_asset.items():
        lines.append(f"| {asset} | " + " | ".join(_fmt("{:.4f}", scores[m]["crps"]) if m in scores else "-"
                                                   for m in models) + " |")
    return lines


QUALITY_COLUMNS = ("rows_in", "rows_out", "rows_dropped", "rows_inserted", "gaps_filled", "long_gaps",
                   "outliers", "inconsistent_high_low", "non_positive_price", "zero_volume",
                   "duplicate_timestamps", "unsorted", "off_grid", "off_calendar", "wrong_year")


def quality_table(report: dict[str, Any]) -> list[str]:
    """The preprocess stage's counts per asset and kind (quality_report.json), as a table."""
    lines = ["", "## Data quality per asset", "", "What each kind means and what was done with it: "
             "`data/preprocessed/quality_report.json` (`actions`).", "",
             "| asset | " + " | ".join(QUALITY_COLUMNS) + " |", "|---|" + "---:|" * len(QUALITY_COLUMNS)]
    rows = {**report["assets"], "total": report["totals"]}
    for asset, q in rows.items():
        lines.append(f"| {asset} | " + " | ".join(str(q.get(k, "-")) for k in QUALITY_COLUMNS) + " |")
    return lines
