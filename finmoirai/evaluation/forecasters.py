"""Every model under evaluation as one kind of function, (series, origins, seed) -> sample
paths (W, S, H) in prices, and the loop that runs them all on the same windows.

Moirai's samples come from uni2ts's `MoiraiForecast` in the model's units and are mapped
back to prices (finmoirai.evaluation.series); the baselines are finmoirai.evaluation.baselines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm
from uni2ts.model.moirai import MoiraiForecast, MoiraiModule

from finmoirai.evaluation import baselines
from finmoirai.evaluation.series import AssetSeries, Windows, origins_for
from finmoirai.params import EvaluateConfig

logger = logging.getLogger(__name__)


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


SampleFn = Callable[[AssetSeries, np.ndarray, int], np.ndarray]


def forecasters(modules: dict[str, MoiraiModule], context_length: int, prediction_length: int, patch_size: int,
                cfg: EvaluateConfig, calendar: bool = False) -> dict[str, SampleFn]:
    """Every model under evaluation as (series, origins, seed) -> sample paths (W, S, H)."""
    ctx, h, n = context_length, prediction_length, cfg.num_samples
    lam = baselines.lambda_from_halflife(cfg.ewma_halflife)
    fns: dict[str, SampleFn] = {
        name: (lambda s, o, seed, m=module: moirai_samples(m, s, o, ctx, h, patch_size, n, cfg.batch_size, calendar))
        for name, module in modules.items()
    }
    available: dict[str, SampleFn] = {
        "random_walk": lambda s, o, seed: baselines.random_walk_samples(s, o, ctx, h, n, seed),
        "rw_ewma": lambda s, o, seed: baselines.ewma_random_walk_samples(s, o, ctx, h, n, seed, lam=lam,
                                                                         lookback=cfg.lookback),
        "garch_t": lambda s, o, seed: baselines.garch_t_samples(s, o, ctx, h, n, seed, lookback=cfg.lookback, lam=lam),
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
