"""The pictures `evaluate` writes: fan charts, calibration, CRPS per horizon step, PIT
histograms, cumulative strategy returns; and their data as CSV, so `dvc plots diff` can
overlay experiments (the PNGs are what a person looks at first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmoirai.evaluation.series import Windows


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fan_chart(w: Windows, samples: np.ndarray, model: str, path: Path, max_windows: int = 10,
                   title: str | None = None) -> None:
    """History, truth, median and 50%/90% bands of the last `max_windows` forecasts
    (`samples`: the model's price paths (W, S, H) on `w`'s windows)."""
    plt = _plt()
    s = w.series
    chosen = list(range(max(0, len(w.origins) - max_windows), len(w.origins)))
    first = w.origins[chosen[0]]
    last = w.origins[chosen[-1]] + samples.shape[-1]
    span = slice(max(0, first - 2 * (last - first) // max(1, len(chosen))), last)
    fig, ax = plt.subplots(figsize=(11, 4))
    truth = np.where(s.observed[span], s.price[span], np.nan)
    ax.plot(s.timestamps[span], truth, color="black", lw=1.0, label="truth")
    for n, i in enumerate(chosen):
        o = w.origins[i]
        paths = samples[i]
        t = s.timestamps[o : o + paths.shape[-1]]
        q05, q25, q50, q75, q95 = np.quantile(paths, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(t, q05, q95, color="tab:blue", alpha=0.18, lw=0, label="90% interval" if n == 0 else None)
        ax.fill_between(t, q25, q75, color="tab:blue", alpha=0.35, lw=0, label="50% interval" if n == 0 else None)
        ax.plot(t, q50, color="tab:blue", lw=1.0, label="median" if n == 0 else None)
        ax.axvline(t[0], color="grey", lw=0.4, alpha=0.5)
    ax.set_title(title or f"{s.symbol}: {model} rolling forecasts (test period, price units)")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


PLOT_DATA = ("crps_by_horizon", "calibration", "pit", "cumulative_returns")


def write_plot_data(result: dict[str, Any], out: Path, baselines: list[str]) -> None:
    """CSV files for DVC's plots, two per plot: `<plot>.csv` with the trained models (and
    buy-and-hold) and `<plot>_baselines.csv` with `baselines.models`, which dvc.yaml's plot
    definitions name through `${baselines.models}`, so a subset of baselines draws."""
    out.mkdir(parents=True, exist_ok=True)
    models = [m for m in result["models"] if m not in baselines]
    steps = np.arange(1, len(next(iter(result["per_step"].values()))) + 1)
    levels = sorted(next(iter(result["coverage"].values())))
    bins = len(next(iter(result["pit"].values())))
    equity = pd.DataFrame({m: (1.0 + r).cumprod() for m, r in result["equity"].items()}).ffill().fillna(1.0)
    days = (equity.index - equity.index[0]) / pd.Timedelta(days=1)
    frames = {
        "crps_by_horizon": ("step", steps, lambda m: result["per_step"][m]),
        "calibration": ("nominal", levels, lambda m: [result["coverage"][m][level] for level in levels]),
        "pit": ("pit", (np.arange(bins) + 0.5) / bins,
                lambda m: np.asarray(result["pit"][m], dtype=float) / max(1, sum(result["pit"][m])) * bins),
        "cumulative_returns": ("days", np.round(days.to_numpy(), 6), lambda m: equity[m].to_numpy()),
    }
    for name, (x, values, column) in frames.items():
        extra = ["buy_and_hold"] if name == "cumulative_returns" else []
        for suffix, names in (("", models + extra), ("_baselines", baselines)):
            frame = pd.DataFrame({x: values} | {m: column(m) for m in names})
            frame.to_csv(out / f"{name}{suffix}.csv", index=False)


def plot_all(result: dict[str, Any], out: Path) -> None:
    """Calibration, CRPS per horizon step, PIT histograms and cumulative strategy returns."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    models = list(result["models"])

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect")
    for m in models:
        levels = sorted(result["coverage"][m])
        ax.plot(levels, [result["coverage"][m][lv] for lv in levels], marker="o", label=m)
    ax.set(xlabel="nominal coverage", ylabel="empirical coverage", title="Calibration of central intervals",
           xlim=(0.4, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for m in models:
        ax.plot(np.arange(1, len(result["per_step"][m]) + 1), result["per_step"][m], label=m)
    ax.set(xlabel="horizon step (bars)", ylabel="CRPS of the cumulative % return (mean over assets)",
           title="CRPS per horizon step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "crps_by_horizon.png", dpi=90)
    plt.close(fig)

    cols = min(4, len(models))
    rows = int(np.ceil(len(models) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    for ax, m in zip(axes.flat, models):
        counts = np.asarray(result["pit"][m], dtype=float)
        ax.bar(np.arange(len(counts)) / len(counts), counts / counts.sum() * len(counts), width=1 / len(counts),
               align="edge")
        ax.axhline(1.0, color="grey", ls="--", lw=1)
        ax.set_title(m, fontsize=9)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle("PIT histograms (flat = calibrated)")
    fig.tight_layout()
    fig.savefig(out / "pit.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    for m in result["equity"]:
        equity = (1.0 + result["equity"][m]).cumprod()
        ax.plot(equity.index, equity.to_numpy(), label=m, lw=1, color="black" if m == "buy_and_hold" else None)
    ax.set(ylabel="growth of 1 (net of costs)", title="Cumulative strategy returns, equal-weight over assets")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "cumulative_returns.png", dpi=90)
    plt.close(fig)
