"""Moirai's sample paths are a function of (module, window, seed): the same whichever models or
periods are scored before them, so the validation headline of a test run and a full
`evaluate.split: val` run score the same draws."""

from __future__ import annotations

import numpy as np
import torch

from finmoirai.evaluation.forecasters import moirai_forecasters
from finmoirai.params.evaluation import EvaluateConfig
from finmoirai.params.training import ModelConfig
from finmoirai.training.module import new_module
from tests.helpers import price_series

CONTEXT, HORIZON, PATCH = 32, 8, 8


def forecasters():
    torch.manual_seed(0)
    cfg = ModelConfig.shipped("model", d_model=64, num_layers=1)
    modules = {"a": new_module(cfg, PATCH).eval(), "b": new_module(cfg, PATCH).eval()}
    evaluate = EvaluateConfig.shipped("evaluate", num_samples=20, batch_size=2)
    return moirai_forecasters(modules, CONTEXT, HORIZON, PATCH, evaluate)


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
    assert not np.array_equal(alone, fns["a"](series, origins, 8))
    state = torch.get_rng_state()
    fns["a"](series, origins, 7)
    assert torch.equal(state, torch.get_rng_state())  # the caller's generator is left as it was
