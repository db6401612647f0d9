"""The evaluation's second step: every model under evaluation as one kind of function,
(series, origins, seed) -> sample paths (W, S, H) in prices.

Moirai's samples come from uni2ts's `MoiraiForecast` in the model's units and are mapped
back to prices (finmoirai.evaluation.series); the baselines are finmoirai.evaluation.baselines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from uni2ts.model.moirai import MoiraiForecast, MoiraiModule

from finmoirai.data.calendars import bars_per_session
from finmoirai.evaluation import baselines
from finmoirai.evaluation.series import AssetSeries
from finmoirai.params.evaluation import BaselinesConfig, EvaluateConfig


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


def moirai_forecasters(modules: dict[str, MoiraiModule], context_length: int, prediction_length: int,
                       patch_size: int, cfg: EvaluateConfig, calendar: bool = False) -> dict[str, SampleFn]:
    """Each trained module as (series, origins, seed) -> sample paths (W, S, H). The draws are
    torch's, seeded with `seed` on a forked generator for each call: an asset's paths are the
    same whichever models or periods are scored before it (the validation headline of a test
    run and a full `evaluate.split: val` run draw the same paths)."""
    ctx, h, n = context_length, prediction_length, cfg.num_samples

    def sampler(module: MoiraiModule) -> SampleFn:
        def draw(series: AssetSeries, origins: np.ndarray, seed: int) -> np.ndarray:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return moirai_samples(module, series, origins, ctx, h, patch_size, n, cfg.batch_size, calendar)
        return draw

    return {name: sampler(module) for name, module in modules.items()}


def baseline_forecasters(cfg: BaselinesConfig, context_length: int, prediction_length: int) -> dict[str, SampleFn]:
    """`baselines.models` as (series, origins, seed) -> sample paths (W, S, H), in that order."""
    ctx, h, n, lookback = context_length, prediction_length, cfg.num_samples, cfg.lookback
    lam = baselines.lambda_from_halflife(cfg.ewma_halflife)
    available: dict[str, SampleFn] = {
        "random_walk": lambda s, o, seed: baselines.random_walk_samples(s, o, ctx, h, n, seed),
        "rw_ewma": lambda s, o, seed: baselines.ewma_random_walk_samples(s, o, ctx, h, n, seed, lam=lam,
                                                                         lookback=lookback),
        "garch_t": lambda s, o, seed: baselines.garch_t_samples(s, o, ctx, h, n, seed, lookback=lookback, lam=lam),
        "seasonal_naive": lambda s, o, seed: baselines.seasonal_naive_samples(
            s, o, ctx, h, n, seed, season_length=season_for(s, cfg), lookback=lookback
        ),
        "auto_ets": lambda s, o, seed: baselines.auto_ets_samples(
            s, o, ctx, h, n, seed, season_length=season_for(s, cfg), lookback=lookback
        ),
    }
    return {name: available[name] for name in cfg.models}


def season_for(series: AssetSeries, cfg: BaselinesConfig) -> int:
    """The asset class's `baselines.season_length`, else one trading day of bars on the asset's
    calendar (a week of sessions for daily bars)."""
    if series.asset_class in cfg.season_length:
        return cfg.season_length[series.asset_class]
    if series.bars is None:
        raise ValueError(f"{series.symbol}: no baselines.season_length for asset class {series.asset_class!r} "
                         "and no trading calendar to take it from")
    return bars_per_session(series.bars.name, series.bars.period, series.timestamps[-1].year)
