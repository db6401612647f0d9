"""Moirai's sample paths are a function of (module, window, seed): the same whichever models,
periods or other windows are scored with them, so the validation headline of a test run and a
full `evaluate.split: val` run score the same draws, and `finmoirai forecast` as of the bar
before an origin draws what evaluate scored there."""

from __future__ import annotations

import numpy as np
import torch

from finmoirai.evaluation.forecasters import moirai_forecasters, moirai_samples, window_seed
from finmoirai.params.training import Knobs, ModelConfig
from finmoirai.training.module import new_module
from tests.helpers import price_series

CONTEXT, HORIZON, PATCH = 32, 8, 8


def forecasters():
    torch.manual_seed(0)
    cfg = ModelConfig.shipped("model", d_model=64, num_layers=1)
    modules = {"a": new_module(cfg, PATCH).eval(), "b": new_module(cfg, PATCH).eval()}
    return moirai_forecasters(modules, knobs(7), num_samples=20)


def knobs(seed: int) -> Knobs:
    return Knobs(seed=seed, patch_size=PATCH, context_length=CONTEXT, prediction_length=HORIZON, target="log_return",
                 calendar=False)


def test_an_assets_paths_depend_on_its_seed_only() -> None:
    rng = np.random.default_rng(1)
    series = price_series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))))
    series.target_z[:] = rng.normal(size=200)
    origins = np.array([40, 64, 100])
    fns = forecasters()
    alone = fns["a"](series, origins, 7)
    torch.manual_seed(123)  # another period or model drawn in between moves torch's global generator
    fns["b"](series, origins, 7)
    torch.rand(1000)
    again = fns["a"](series, origins, 7)
    assert alone.shape == (3, 20, HORIZON) and np.isfinite(alone).all()
    np.testing.assert_array_equal(alone, again)
    np.testing.assert_array_equal(alone[1:2], fns["a"](series, origins[1:2], 7))  # a window alone: the same draw
    cfg = ModelConfig.shipped("model", d_model=64, num_layers=1)
    torch.manual_seed(0)
    module = new_module(cfg, PATCH).eval()
    reseeded = moirai_samples(module, series, origins, CONTEXT, HORIZON, PATCH, 20, seed=8)
    assert not np.array_equal(alone, reseeded)
    state = torch.get_rng_state()
    fns["a"](series, origins, 7)
    assert torch.equal(state, torch.get_rng_state())  # the caller's generator is left as it was


def test_window_seeds_differ_by_seed_symbol_and_origin() -> None:
    import pandas as pd

    t = pd.Timestamp("2019-05-01T00:00Z")
    seeds = {window_seed(42, "BTC", t), window_seed(43, "BTC", t), window_seed(42, "ETH", t),
             window_seed(42, "BTC", t + pd.Timedelta(hours=1))}
    assert len(seeds) == 4 and window_seed(42, "BTC", t) == window_seed(42, "BTC", t)


def test_a_close_only_reference_reads_no_covariates() -> None:
    """`covariates=False` (a close-only reference): the covariates do not reach the model, so
    changing them changes nothing; with them, they do."""
    rng = np.random.default_rng(2)
    series = price_series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))))
    series.target_z[:] = rng.normal(size=200)
    torch.manual_seed(0)
    module = new_module(ModelConfig.shipped("model", d_model=64, num_layers=1), PATCH).eval()
    origins = np.array([64])

    def draw(covariates: bool) -> np.ndarray:
        return moirai_samples(module, series, origins, CONTEXT, HORIZON, PATCH, 20, seed=1, covariates=covariates)

    before_close, before_all = draw(False), draw(True)
    series.covariates[:] = rng.normal(size=series.covariates.shape) * 5
    np.testing.assert_array_equal(before_close, draw(False))
    assert not np.array_equal(before_all, draw(True))
