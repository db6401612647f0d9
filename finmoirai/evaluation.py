"""Rolling-origin probabilistic evaluation in original price units, beside a random walk.

Forecast origins start at the first test bar and move by `stride` bars; each forecast sees
`context_length` bars before its origin (history, possibly from earlier splits) and predicts
`prediction_length` bars, all of which lie in the test split. Model samples are produced by
uni2ts's `MoiraiForecast` in z-score units and mapped back to prices with the scaler fitted
on the training period. Bars that were filled in preprocessing are not scored (NaN labels
are masked by gluonts). Metrics are gluonts's own: CRPS as `MeanWeightedSumQuantileLoss`
over quantiles 0.1..0.9, MSIS (alpha 0.05), MSE, MAE, MASE (seasonality 1, the random-walk
scale that finance uses).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from gluonts.ev.metrics import MAE, MASE, MSE, MSIS, MeanWeightedSumQuantileLoss
from gluonts.model.evaluation import evaluate_forecasts
from gluonts.model.forecast import SampleForecast
from tqdm import tqdm
from uni2ts.model.moirai import MoiraiForecast, MoiraiModule

from finmoirai.baselines import log_normal_paths
from finmoirai.params import require

logger = logging.getLogger(__name__)

QUANTILES = tuple(round(q, 1) for q in np.arange(0.1, 1.0, 0.1))
METRIC_NAMES = {
    "mean_weighted_sum_quantile_loss": "crps",
    "MSIS": "msis",
    "MSE[mean]": "mse",
    "MAE[0.5]": "mae",
    "MASE[0.5]": "mase",
}


BASELINES = ("random_walk", "rw_ewma", "garch_t", "seasonal_naive", "auto_ets")
HEADLINE_BASELINE = "rw_ewma"


@dataclass(frozen=True)
class EvaluateConfig:
    stride: int = 24
    num_samples: int = 100
    batch_size: int = 32
    plot_assets: int = 3
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    lookback: int = 500  # bars of history the statistical baselines fit on
    season_length: dict[str, int] = field(default_factory=lambda: {"crypto": 24, "fx": 24, "equity": 7})
    transaction_cost_bps: float = 5.0
    sizing: str = "sign"
    lake_path: str | None = None  # evaluate on another lake with the trained model
    symbols: list[str] = field(default_factory=list)
    asset_classes: list[str] = field(default_factory=list)

    def validate(self) -> None:
        require(self.stride >= 1, f"param evaluate.stride: must be >= 1, got {self.stride}")
        require(self.num_samples >= 10, f"param evaluate.num_samples: must be >= 10, got {self.num_samples}")
        require(self.batch_size >= 1, f"param evaluate.batch_size: must be >= 1, got {self.batch_size}")
        require(self.plot_assets >= 0, f"param evaluate.plot_assets: must be >= 0, got {self.plot_assets}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        require(not unknown, f"param evaluate.baselines: unknown {unknown}; known: {', '.join(BASELINES)}")
        require(HEADLINE_BASELINE in self.baselines, f"param evaluate.baselines: must include {HEADLINE_BASELINE} (the skill reference)")
        require(self.lookback >= 50, f"param evaluate.lookback: must be >= 50, got {self.lookback}")
        require(all(v >= 1 for v in self.season_length.values()), "param evaluate.season_length: lengths must be >= 1")
        require(self.transaction_cost_bps >= 0, f"param evaluate.transaction_cost_bps: must be >= 0, got {self.transaction_cost_bps}")
        require(self.sizing in ("sign", "confidence"), f"param evaluate.sizing: 'sign' or 'confidence', got {self.sizing!r}")
        require(self.lake_path is not None or not (self.symbols or self.asset_classes), "param evaluate.symbols/asset_classes: only used with evaluate.lake_path")


@dataclass
class AssetSeries:
    """One asset's full series: model inputs (z units) and truth (price units)."""

    symbol: str
    timestamps: pd.DatetimeIndex
    target_z: np.ndarray  # (T,), NaN where not observed
    covariates: np.ndarray  # (T, k)
    price: np.ndarray  # (T,), cleaned close in original units
    observed: np.ndarray  # (T,) bool
    test_start: int
    to_price: Callable[[np.ndarray], np.ndarray]
    asset_class: str = ""


@dataclass
class Windows:
    """Forecast windows of one asset: origins and, per model, sample paths in prices."""

    series: AssetSeries
    origins: np.ndarray
    samples: dict[str, np.ndarray]  # model -> (W, S, H)


def origins_for(test_start: int, length: int, context_length: int, prediction_length: int, stride: int) -> np.ndarray:
    """Origins o with o >= test_start, o >= context_length and o + horizon <= length."""
    first = max(test_start, context_length)
    last = length - prediction_length
    if last < first:
        return np.empty(0, dtype=int)
    return np.arange(first, last + 1, stride)


def moirai_samples(
    module: MoiraiModule,
    series: AssetSeries,
    origins: np.ndarray,
    context_length: int,
    prediction_length: int,
    patch_size: int,
    num_samples: int,
    batch_size: int,
) -> np.ndarray:
    """Sample paths (W, S, H) in price units from uni2ts's MoiraiForecast."""
    k = series.covariates.shape[1]
    forecaster = MoiraiForecast(
        prediction_length=prediction_length,
        target_dim=1,
        feat_dynamic_real_dim=0,
        past_feat_dynamic_real_dim=k,
        context_length=context_length,
        module=module,
        patch_size=patch_size,
        num_samples=num_samples,
    ).eval()
    out = []
    for i in range(0, len(origins), batch_size):
        batch = origins[i : i + batch_size]
        idx = batch[:, None] + np.arange(-context_length, 0)[None, :]
        target = series.target_z[idx][..., None]
        covs = series.covariates[idx]
        with torch.no_grad():
            preds = forecaster(
                past_target=torch.as_tensor(np.nan_to_num(target), dtype=torch.float32),
                past_observed_target=torch.as_tensor(np.isfinite(target)),
                past_is_pad=torch.zeros(idx.shape, dtype=torch.bool),
                past_feat_dynamic_real=torch.as_tensor(np.nan_to_num(covs), dtype=torch.float32),
                past_observed_feat_dynamic_real=torch.as_tensor(np.isfinite(covs)),
            )
        out.append(series.to_price(preds.numpy().astype(np.float64)))
    return np.concatenate(out, axis=0)


def random_walk_samples(
    series: AssetSeries, origins: np.ndarray, context_length: int, prediction_length: int, num_samples: int, seed: int
) -> np.ndarray:
    """Driftless log-normal random walk from the last observed price, with the volatility of
    the context's log returns: the baseline any market forecast has to beat."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(origins), num_samples, prediction_length))
    for w, origin in enumerate(origins):
        context = series.price[origin - context_length : origin]
        seen = series.observed[origin - context_length : origin]
        prices = context[seen]
        returns = np.diff(np.log(prices))
        sigma = float(np.std(returns, ddof=1)) if len(returns) > 2 else 0.0
        last = prices[-1] if len(prices) else context[-1]
        out[w] = log_normal_paths(last, sigma, prediction_length, num_samples, rng)
    return out


class _TestData:
    """The two iterables gluonts's evaluate_forecasts reads from a TestData."""

    def __init__(self, inputs: list[dict[str, Any]], labels: list[dict[str, Any]]) -> None:
        self.input = inputs
        self.label = labels


def gluonts_metrics(windows: Sequence[Windows], model: str, context_length: int, prediction_length: int) -> dict[str, float]:
    """gluonts metrics of `model` over all windows of the given assets (pooled)."""
    inputs, labels, forecasts = [], [], []
    for w in windows:
        s = w.series
        contexts = observed_prices(w, -context_length, 0)
        truths = observed_prices(w, 0, prediction_length)
        for origin, paths, context, truth in zip(w.origins, w.samples[model], contexts, truths):
            start = pd.Period(s.timestamps[origin].tz_convert(None), freq="h")
            inputs.append({"target": context, "start": start - context_length, "item_id": s.symbol})
            labels.append({"target": truth, "start": start, "item_id": s.symbol})
            forecasts.append(SampleForecast(samples=paths, start_date=start, item_id=s.symbol))
    metrics = [MSE(), MAE(), MASE(), MSIS(alpha=0.05), MeanWeightedSumQuantileLoss(quantile_levels=QUANTILES)]
    frame = evaluate_forecasts(forecasts, test_data=_TestData(inputs, labels), metrics=metrics, seasonality=1)
    row = frame.iloc[0]
    return {METRIC_NAMES[name]: float(row[name]) for name in METRIC_NAMES}


def plot_fan_chart(w: Windows, model: str, path: Path, max_windows: int = 10) -> None:
    """History, truth, median and 50%/90% bands of the last `max_windows` forecasts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = w.series
    chosen = list(range(max(0, len(w.origins) - max_windows), len(w.origins)))
    first = w.origins[chosen[0]]
    last = w.origins[chosen[-1]] + w.samples[model].shape[-1]
    span = slice(max(0, first - 2 * (last - first) // max(1, len(chosen))), last)
    fig, ax = plt.subplots(figsize=(11, 4))
    truth = np.where(s.observed[span], s.price[span], np.nan)
    ax.plot(s.timestamps[span], truth, color="black", lw=1.0, label="truth")
    for n, i in enumerate(chosen):
        o = w.origins[i]
        paths = w.samples[model][i]
        t = s.timestamps[o : o + paths.shape[-1]]
        q05, q25, q50, q75, q95 = np.quantile(paths, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(t, q05, q95, color="tab:blue", alpha=0.18, lw=0, label="90% interval" if n == 0 else None)
        ax.fill_between(t, q25, q75, color="tab:blue", alpha=0.35, lw=0, label="50% interval" if n == 0 else None)
        ax.plot(t, q50, color="tab:blue", lw=1.0, label="median" if n == 0 else None)
        ax.axvline(t[0], color="grey", lw=0.4, alpha=0.5)
    ax.set_title(f"{s.symbol}: {model} rolling forecasts (test period, price units)")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def load_series(features_dir: Path, scalers: dict[str, Any], val_end: pd.Timestamp, covariates: Sequence[str] | None = None) -> list[AssetSeries]:
    """Every asset of a features directory as model inputs (z units) and truth (prices).

    `covariates` is the variate list the model was trained with: a features directory built
    with different indicators cannot be fed to that model, and that is an error here.
    """
    from finmoirai.preprocessing import invert_scaler

    features_dir = Path(features_dir)
    manifest = json.loads((features_dir / "manifest.json").read_text())
    names = list(manifest["covariates"])
    if covariates is not None and list(covariates) != names:
        raise ValueError(f"{features_dir}: covariates {names} differ from the model's training covariates {list(covariates)}")
    out = []
    for asset in manifest["assets"]:
        symbol = asset["symbol"]
        frame = pd.read_parquet(features_dir / f"{symbol}.parquet").sort_values("timestamp").reset_index(drop=True)
        if symbol not in scalers or "close" not in scalers[symbol]:
            raise ValueError(f"{symbol}: no close scaler in the preprocess scalers file")
        observed = frame["observed"].to_numpy(dtype=bool)
        target = frame["target"].to_numpy(dtype=np.float64).copy()
        target[~observed] = np.nan
        out.append(
            AssetSeries(
                symbol=symbol,
                timestamps=pd.DatetimeIndex(frame["timestamp"]),
                target_z=target,
                covariates=frame[names].to_numpy(dtype=np.float64),
                price=frame["close_raw"].to_numpy(dtype=np.float64),
                observed=observed,
                test_start=int(pd.DatetimeIndex(frame["timestamp"]).searchsorted(val_end)),
                to_price=lambda z, e=scalers[symbol]["close"]: invert_scaler(z, e),
                asset_class=asset.get("asset_class", ""),
            )
        )
    return out


# ----------------------------------------------------------------------------- the suite
SampleFn = Callable[[AssetSeries, np.ndarray, int], np.ndarray]


def forecasters(modules: dict[str, MoiraiModule], context_length: int, prediction_length: int, patch_size: int, cfg: EvaluateConfig) -> dict[str, SampleFn]:
    """Every model under evaluation as (series, origins, seed) -> sample paths (W, S, H)."""
    from finmoirai import baselines

    ctx, h, n = context_length, prediction_length, cfg.num_samples
    fns: dict[str, SampleFn] = {
        name: (lambda s, o, seed, m=module: moirai_samples(m, s, o, ctx, h, patch_size, n, cfg.batch_size))
        for name, module in modules.items()
    }
    available: dict[str, SampleFn] = {
        "random_walk": lambda s, o, seed: random_walk_samples(s, o, ctx, h, n, seed),
        "rw_ewma": lambda s, o, seed: baselines.ewma_random_walk_samples(s, o, ctx, h, n, seed, lookback=cfg.lookback),
        "garch_t": lambda s, o, seed: baselines.garch_t_samples(s, o, ctx, h, n, seed, lookback=cfg.lookback),
        "seasonal_naive": lambda s, o, seed: baselines.seasonal_naive_samples(
            s, o, ctx, h, n, seed, season_length=season_for(s, cfg), lookback=cfg.lookback
        ),
        "auto_ets": lambda s, o, seed: baselines.auto_ets_samples(
            s, o, ctx, h, n, seed, season_length=season_for(s, cfg), lookback=cfg.lookback
        ),
    }
    return fns | {name: available[name] for name in cfg.baselines}


def season_for(series: AssetSeries, cfg: EvaluateConfig) -> int:
    if series.asset_class not in cfg.season_length:
        raise ValueError(f"{series.symbol}: no evaluate.season_length for asset class {series.asset_class!r}")
    return cfg.season_length[series.asset_class]


def run_windows(
    series_list: Sequence[AssetSeries],
    fns: dict[str, SampleFn],
    context_length: int,
    prediction_length: int,
    stride: int,
    seed: int,
) -> tuple[list[Windows], list[str], dict[str, float]]:
    """Forecast every test window of every asset with every model; seconds spent per model."""
    import time

    torch.manual_seed(seed)
    windows, skipped = [], []
    seconds = dict.fromkeys(fns, 0.0)
    for n, s in enumerate(tqdm(series_list, desc="evaluate assets", unit="asset")):
        origins = origins_for(s.test_start, len(s.price), context_length, prediction_length, stride)
        if len(origins) == 0:
            skipped.append(s.symbol)
            continue
        samples = {}
        for name, fn in fns.items():
            started = time.monotonic()
            samples[name] = fn(s, origins, seed + n)
            seconds[name] += time.monotonic() - started
        windows.append(Windows(series=s, origins=origins, samples=samples))
    if skipped:
        logger.warning("no full test window (context %d + horizon %d) for %s: not evaluated", context_length, prediction_length, ", ".join(skipped))
    if not windows:
        raise ValueError("no asset has a full test window: shorten context_length/prediction_length or move split.val_end earlier")
    return windows, skipped, seconds


def observed_prices(w: Windows, start: int, stop: int) -> np.ndarray:
    """(W, stop - start) prices at bars origin+start .. origin+stop-1 of every window, NaN on
    filled bars: they are neither scored as truth nor counted in a baseline's scale."""
    idx = w.origins[:, None] + np.arange(start, stop)[None, :]
    return np.where(w.series.observed[idx], w.series.price[idx], np.nan)


def summarise(windows: Sequence[Windows], models: Sequence[str], context_length: int, prediction_length: int, cfg: EvaluateConfig) -> dict[str, Any]:
    """Every number the report shows, per model: pooled, per asset, per step, calibration, trading."""
    from finmoirai import calibration

    result: dict[str, Any] = {"models": {}, "per_asset": {}, "per_step": {}, "coverage": {}, "pit": {}, "equity": {}}
    truths = [observed_prices(w, 0, prediction_length) for w in windows]
    truth = np.concatenate(truths)
    for model in models:
        pooled = gluonts_metrics(windows, model, context_length, prediction_length)
        per_asset = {w.series.symbol: gluonts_metrics([w], model, context_length, prediction_length) for w in windows}
        pooled["crps_asset_mean"] = float(np.mean([m["crps"] for m in per_asset.values()]))
        samples = np.concatenate([w.samples[model] for w in windows])
        coverage = calibration.interval_coverage(samples, truth)
        pooled |= {f"coverage_{int(round(level * 100))}": float(v) for level, v in coverage.items()}
        result["coverage"][model] = {float(k): float(v) for k, v in coverage.items()}
        result["pit"][model] = [int(c) for c in calibration.pit_histogram(calibration.pit_values(samples, truth, seed=0))]
        result["per_step"][model] = np.mean(
            [calibration.quantile_crps_per_step(w.samples[model], t) for w, t in zip(windows, truths)], axis=0
        ).tolist()
        trades = {w.series.symbol: asset_trading(w, model, cfg) for w in windows}
        for symbol, (metrics, _) in trades.items():
            per_asset[symbol] |= metrics
        pooled |= {f"{k}": float(np.nanmean([m[k] for m, _ in trades.values()])) for k in TRADING_KEYS}
        result["equity"][model] = portfolio_returns([r for _, r in trades.values()])
        result["models"][model] = pooled
        for symbol, values in per_asset.items():
            result["per_asset"].setdefault(symbol, {})[model] = values
    reference = result["models"][HEADLINE_BASELINE]["crps_asset_mean"]
    for model, values in result["models"].items():
        values["skill"] = 1.0 - values["crps_asset_mean"] / reference
    return result


TRADING_KEYS = ("directional_accuracy", "sharpe", "max_drawdown", "turnover")


def asset_trading(w: Windows, model: str, cfg: EvaluateConfig) -> tuple[dict[str, float], pd.Series]:
    """Trading metrics of the documented rule on one asset (see finmoirai.trading)."""
    from finmoirai import trading

    returns, positions, info = trading.strategy_returns(
        w.series, w.origins, w.samples[model], stride=cfg.stride, cost_bps=cfg.transaction_cost_bps, sizing=cfg.sizing
    )
    metrics = trading.trading_metrics(returns, positions, trading.periods_per_year(w.series.asset_class), info)
    return {k: float(metrics[k]) for k in TRADING_KEYS}, returns


def portfolio_returns(returns: Sequence[pd.Series]) -> pd.Series:
    """Equal-weight portfolio of the per-asset strategies (an asset earns 0 off its calendar)."""
    frame = pd.concat(list(returns), axis=1).fillna(0.0)
    return frame.mean(axis=1).sort_index()
