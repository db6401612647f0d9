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

import functools
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from gluonts.ev.metrics import MAE, MASE, MSE, MSIS, MeanWeightedSumQuantileLoss
from gluonts.model.evaluation import evaluate_forecasts
from gluonts.model.forecast import SampleForecast
from tqdm import tqdm
from uni2ts.model.moirai import MoiraiForecast, MoiraiModule

from finmoirai.baselines import log_normal_paths
from finmoirai.params import HEADLINE_BASELINE, EvaluateConfig, ParamsError
from finmoirai.preprocessing import invert_scaler
from finmoirai.targets import TARGET_COLUMNS, calendar_features, returns_to_prices

if TYPE_CHECKING:
    from finmoirai.features import FeaturesConfig
    from finmoirai.lake import ExtractConfig
    from finmoirai.preprocessing import PreprocessConfig

logger = logging.getLogger(__name__)

QUANTILES = tuple(round(q, 1) for q in np.arange(0.1, 1.0, 0.1))
METRIC_NAMES = {
    "mean_weighted_sum_quantile_loss": "crps",
    "MSIS": "msis",
    "MSE[mean]": "mse",
    "MAE[0.5]": "mae",
    "MASE[0.5]": "mase",
}




@dataclass
class AssetSeries:
    """One asset's full series: model inputs (the model's units) and truth (price units).

    Forecasts are scored for origins in [test_start, end - horizon]: the scored period is the
    test split by default, the validation split with `evaluate.split: val`."""

    symbol: str
    timestamps: pd.DatetimeIndex
    target_z: np.ndarray  # (T,) the model's target variate (z-scored level or % log return), NaN unobserved
    covariates: np.ndarray  # (T, k) past-only covariates of that target representation
    price: np.ndarray  # (T,), cleaned close in original units
    observed: np.ndarray  # (T,) bool
    test_start: int
    to_price: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (samples (W, S, H), origins (W,)) -> prices
    asset_class: str = ""
    calendar: np.ndarray | None = None  # (T, 5) known-future calendar covariates
    end: int | None = None  # first bar after the scored period (None: the series' end)

    @property
    def scored_end(self) -> int:
        return len(self.price) if self.end is None else self.end


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
    calendar: bool = False,
) -> np.ndarray:
    """Sample paths (W, S, H) in price units from uni2ts's MoiraiForecast; with `calendar`, the
    calendar covariates of context and horizon go in as known-future `feat_dynamic_real`."""
    k = series.covariates.shape[1]
    known = series.calendar.shape[1] if calendar else 0
    forecaster = MoiraiForecast(
        prediction_length=prediction_length,
        target_dim=1,
        feat_dynamic_real_dim=known,
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
        inputs = {}
        if known:
            full = batch[:, None] + np.arange(-context_length, prediction_length)[None, :]
            future = series.calendar[full]
            inputs = {"feat_dynamic_real": torch.as_tensor(np.nan_to_num(future), dtype=torch.float32),
                      "observed_feat_dynamic_real": torch.as_tensor(np.isfinite(future))}
        with torch.no_grad():
            preds = forecaster(
                past_target=torch.as_tensor(np.nan_to_num(target), dtype=torch.float32),
                past_observed_target=torch.as_tensor(np.isfinite(target)),
                past_is_pad=torch.zeros(idx.shape, dtype=torch.bool),
                past_feat_dynamic_real=torch.as_tensor(np.nan_to_num(covs), dtype=torch.float32),
                past_observed_feat_dynamic_real=torch.as_tensor(np.isfinite(covs)),
                **inputs,
            )
        out.append(series.to_price(preds.numpy().astype(np.float64), batch))
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


def _prices_from_returns(returns: np.ndarray, origins: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Percent log-return paths (W, S, H) -> prices, from the close before each origin."""
    return returns_to_prices(price[origins - 1], returns)


def _prices_from_levels(z: np.ndarray, origins: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """z-scored level paths -> prices with the training-period scaler (origins unused)."""
    return invert_scaler(z, entry)


def load_series(features_dir: Path, scalers: dict[str, Any], scored_from: pd.Timestamp,
                covariates: Sequence[str] | None = None, target: str = "level",
                scored_until: pd.Timestamp | None = None) -> list[AssetSeries]:
    """Every asset of a features directory as model inputs and truth (prices), scored on bars
    in [scored_from, scored_until).

    `target` picks the representation the model was trained on (finmoirai.targets): its column
    and covariates, and how samples become prices (inverse scaler for `level`, cumulated from
    the last close for `log_return`). `covariates` is the variate list the model was trained
    with: a features directory built with different indicators cannot feed that model."""
    features_dir = Path(features_dir)
    manifest = json.loads((features_dir / "manifest.json").read_text())
    column, key = TARGET_COLUMNS[target]
    names = list(manifest[key])
    if covariates is not None and list(covariates) != names:
        raise ValueError(f"{features_dir}: covariates {names} differ from the model's training covariates {list(covariates)}")
    out = []
    for asset in manifest["assets"]:
        symbol = asset["symbol"]
        frame = pd.read_parquet(features_dir / f"{symbol}.parquet").sort_values("timestamp").reset_index(drop=True)
        if symbol not in scalers or "close" not in scalers[symbol]:
            raise ValueError(f"{symbol}: no close scaler in the preprocess scalers file")
        observed = frame["observed"].to_numpy(dtype=bool)
        values = frame[column].to_numpy(dtype=np.float64).copy()
        values[~observed] = np.nan
        price = frame["close_raw"].to_numpy(dtype=np.float64)
        timestamps = pd.DatetimeIndex(frame["timestamp"])
        if target == "log_return":
            to_price = functools.partial(_prices_from_returns, price=price)
        else:
            to_price = functools.partial(_prices_from_levels, entry=scalers[symbol]["close"])
        out.append(
            AssetSeries(
                symbol=symbol,
                timestamps=timestamps,
                target_z=values,
                covariates=frame[names].to_numpy(dtype=np.float64),
                price=price,
                observed=observed,
                test_start=int(timestamps.searchsorted(scored_from)),
                to_price=to_price,
                asset_class=asset.get("asset_class", ""),
                calendar=calendar_features(timestamps, asset.get("asset_class", "")),
                end=None if scored_until is None else int(timestamps.searchsorted(scored_until)),
            )
        )
    return out


# ----------------------------------------------------------------------------- the suite
SampleFn = Callable[[AssetSeries, np.ndarray, int], np.ndarray]


def forecasters(modules: dict[str, MoiraiModule], context_length: int, prediction_length: int, patch_size: int,
                cfg: EvaluateConfig, calendar: bool = False) -> dict[str, SampleFn]:
    """Every model under evaluation as (series, origins, seed) -> sample paths (W, S, H)."""
    from finmoirai import baselines

    ctx, h, n = context_length, prediction_length, cfg.num_samples
    fns: dict[str, SampleFn] = {
        name: (lambda s, o, seed, m=module: moirai_samples(m, s, o, ctx, h, patch_size, n, cfg.batch_size, calendar))
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
        origins = origins_for(s.test_start, s.scored_end, context_length, prediction_length, stride)
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
        logger.warning("no full window (context %d + horizon %d) in the scored period for %s: not evaluated",
                       context_length, prediction_length, ", ".join(skipped))
    if not windows:
        raise ValueError(f"no asset has a full window of context_length={context_length} + "
                         f"prediction_length={prediction_length} in the scored period: shorten them, or widen the "
                         "period (test: an earlier split.val_end; val: an earlier split.train_end)")
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
    result["significance"] = {model: significance_vs_reference(windows, truths, model, 0, prediction_length, cfg.stride)
                              for model in models if model != HEADLINE_BASELINE}
    return result


BOOTSTRAP_BLOCK_DAYS = 5  # losses cluster with volatility over days
BOOTSTRAP_REPLICATES = 2000
DM_MAX_LAG = 4  # Newey-West lags (days) of the Diebold-Mariano variance, for the same clustering


def significance_vs_reference(windows: Sequence[Windows], truths: Sequence[np.ndarray], model: str,
                              seed: int, prediction_length: int, stride: int) -> dict[str, float]:
    """95% block-bootstrap interval of `model`'s skill vs the reference (RW-EWMA) and the
    Diebold-Mariano test of its per-window CRPS against the reference's.

    Both work on the calendar date of the forecast origin, shared by every asset (equity bars
    sit at :30, crypto and FX at :00, so exact timestamps would never line up): the bootstrap
    resamples blocks of dates for all assets at once, and the DM test runs on the daily
    cross-sectional mean of the per-window CRPS (scale-free, so assets weigh alike). When
    windows overlap (stride < horizon), blocks and lags grow to cover the overlap."""
    from finmoirai import calibration, significance

    overlap = max(0, math.ceil(prediction_length / stride) - 1)
    per_asset = []
    for w, truth in zip(windows, truths):
        a, d = calibration.window_quantile_loss(w.samples[model], truth)
        b, _ = calibration.window_quantile_loss(w.samples[HEADLINE_BASELINE], truth)
        keep = d > 0  # a window whose bars were all filled has nothing to score
        days = w.series.timestamps[w.origins[keep]].tz_convert("UTC").floor("D").asi8
        per_asset.append((days, a[keep], b[keep], d[keep]))
    all_days = np.unique(np.concatenate([days for days, *_ in per_asset]))
    panel = np.zeros((3, len(per_asset), len(all_days)))
    for row, (days, a, b, d) in enumerate(per_asset):
        column = np.searchsorted(all_days, days)
        for k, values in enumerate((a, b, d)):
            np.add.at(panel[k, row], column, values)
    skill, lo, hi = significance.panel_skill_interval(*panel, block_length=max(BOOTSTRAP_BLOCK_DAYS, overlap + 1),
                                                      n_boot=BOOTSTRAP_REPLICATES, seed=seed)
    _, loss_model, loss_ref = significance.loss_differential_by_time(
        [days for days, *_ in per_asset], [a / d for _, a, _, d in per_asset], [b / d for _, _, b, d in per_asset])
    if len(loss_model) < 3:  # too few origin dates for a test: say so rather than guess
        dm = {"statistic": None, "p_value": None, "n": len(loss_model)}
    else:
        lags = min(max(DM_MAX_LAG, overlap), len(loss_model) - 2)
        dm = significance.diebold_mariano(loss_model, loss_ref, max_lag=lags)
    return {"skill": skill, "skill_lo": lo, "skill_hi": hi, "dm_stat": dm["statistic"], "dm_p": dm["p_value"],
            "dm_n": int(dm["n"])}


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


# ----------------------------------------------------------------------------- another lake
# `evaluate.lake_path`: score the trained models on a lake of any period without retraining.
# Warm-up rule: the lake's scalers (preprocess) and indicator z-scores / regime thresholds
# (features) are fitted on every selected bar before `evaluate.test_start`, nothing after, and
# `evaluate.years` bounds that warm-up. That is the rule training follows (every bar of the
# extract selection before split.train_end), needs no knob of its own, and longer is better:
# the volatility-regime threshold is a quantile, and Moirai re-standardises every context
# window itself, so the scalers only set the units. The floor is the training floor,
# `preprocess.min_train_rows` observed bars per asset.
WARMUP_HINT = "set evaluate.test_start later or evaluate.years to include earlier bars"
TEST_HINT = "set evaluate.test_start earlier or evaluate.years to include later bars"


def other_lake_selection(extract_cfg: ExtractConfig, cfg: EvaluateConfig) -> ExtractConfig:
    """extract's selection with evaluate's own years, symbols and asset classes where they are set."""
    import dataclasses

    return dataclasses.replace(
        extract_cfg,
        years=cfg.years or extract_cfg.years,
        symbols=cfg.symbols or extract_cfg.symbols,
        asset_classes=cfg.asset_classes or extract_cfg.asset_classes,
    )


def lake_years(lake: Path, selection: ExtractConfig) -> list[int]:
    """Years that have files for the selection's classes, frequency and symbols: a directory
    listing (no file is opened), so an empty year selection is named before any work."""
    years = set()
    for asset_class in selection.asset_classes:
        base = Path(lake) / f"asset_class={asset_class}" / f"frequency={selection.frequency}"
        for year_dir in base.glob("symbol=*/year=*"):
            symbol, year = year_dir.parent.name.removeprefix("symbol="), year_dir.name.removeprefix("year=")
            wanted = not selection.symbols or symbol in selection.symbols
            if wanted and year.isdigit() and next(year_dir.glob("*.parquet"), None) is not None:
                years.add(int(year))
    return sorted(years)


def lake_features_for_scoring(lake: Path, selection: ExtractConfig, test_start: str, preprocess_cfg: PreprocessConfig,
                              features_cfg: FeaturesConfig, context_length: int, prediction_length: int,
                              work: Path) -> pd.Timestamp:
    """extract -> preprocess -> features of a lake that is only scored, under `work` (the layout
    of `features_from_lake`), with the warm-up rule above; returns the test start (UTC).

    Each way this lake can be unfit for scoring is one line naming the lake, the asset, the
    numbers and the evaluate param to set; the main pipeline's own messages are unchanged."""
    from finmoirai.features import features_from_lake
    from finmoirai.lake import list_assets
    from finmoirai.params import SplitConfig
    from finmoirai.preprocessing import TooFewTrainingRows

    lake, work = Path(lake), Path(work)
    split = SplitConfig.warmup_then_test(test_start)
    start = split.val_end_ts
    if lake.is_dir():
        have = lake_years(lake, selection)
        if have and not set(have) & set(selection.years):
            raise ParamsError(f"evaluate.lake_path {lake}: empty selection, no bars of years {selection.years} "
                              f"(asset_classes={selection.asset_classes} symbols={selection.symbols or 'all'}); "
                              f"set evaluate.years to years the lake has: {have}")
    _check_other_lake_proxies(lake, sorted(list_assets(lake, selection)), features_cfg)
    logger.info("lake %s: warm-up every selected bar before %s, test from it (%s)", lake, start, selection)
    try:
        features_from_lake(lake, selection, split, preprocess_cfg, features_cfg, work)
    except TooFewTrainingRows as e:
        raise ParamsError(f"evaluate.lake_path {lake}: warm-up before evaluate.test_start too short: {e}; "
                          f"{WARMUP_HINT}") from None
    _check_test_windows(lake, work / "features", start, context_length, prediction_length)
    return start


def _check_other_lake_proxies(lake: Path, pairs: list[tuple[str, str]], features_cfg: FeaturesConfig) -> None:
    """Cross-asset features need each class's market proxy, from the same lake and selection;
    features.market_proxy is the trained model's, so the fix is in the evaluate selection."""
    symbols = sorted({symbol for _, symbol in pairs})
    for asset_class in sorted({c for c, _ in pairs}):
        proxy = features_cfg.market_proxy.get(asset_class)
        if proxy is None:
            raise ParamsError(f"evaluate.lake_path {lake}: asset class {asset_class} has no features.market_proxy "
                              f"(the model was trained with {features_cfg.market_proxy}); "
                              f"leave {asset_class} out of evaluate.asset_classes")
        if proxy not in symbols:
            raise ParamsError(f"evaluate.lake_path {lake}: market proxy {proxy} of asset class {asset_class} "
                              f"is not in the selection ({', '.join(symbols)}); add {proxy} to evaluate.symbols "
                              f"(the lake needs its bars for evaluate.years) or leave {asset_class} out of "
                              f"evaluate.asset_classes")


def _check_test_windows(lake: Path, features_dir: Path, start: pd.Timestamp, context_length: int,
                        prediction_length: int) -> None:
    """At least one asset needs a full window (context + horizon) from the test start on."""
    bars = {}
    for asset in json.loads((features_dir / "manifest.json").read_text())["assets"]:
        timestamps = pd.read_parquet(features_dir / f"{asset['symbol']}.parquet", columns=["timestamp"])["timestamp"]
        before = int(pd.DatetimeIndex(timestamps).searchsorted(start))
        if len(origins_for(before, len(timestamps), context_length, prediction_length, 1)):
            return
        bars[asset["symbol"]] = (before, len(timestamps) - before)
    counts = ", ".join(f"{symbol} {after} bars from it ({before} before)" for symbol, (before, after) in bars.items())
    raise ParamsError(f"evaluate.lake_path {lake}: no asset has a full test window from evaluate.test_start {start} "
                      f"(context_length={context_length} bars before, prediction_length={prediction_length} from "
                      f"it): {counts}; {TEST_HINT}")
