"""The Moirai network: a fresh module from params, or a saved one (this project's folder or a
hub id), its per-window scaler, and the window-size checks that run before training.

Models are written as Hugging Face folders (`save_pretrained`), not Lightning checkpoints,
which torch >= 2.6 refuses to unpickle by default; the scaler's name is saved beside
`config.json`, which has no field for it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from uni2ts.distribution import (
    LaplaceOutput,
    LogNormalOutput,
    MixtureOutput,
    NegativeBinomialOutput,
    NormalFixedScaleOutput,
    NormalOutput,
    StudentTOutput,
)
from uni2ts.model.moirai import MoiraiModule
from uni2ts.module.packed_scaler import PackedStdScaler

from finmoirai.data.targets import CALENDAR_COLUMNS
from finmoirai.params import Knobs, ModelConfig, ParamsError, tokens_per_window

logger = logging.getLogger(__name__)

MIXTURE_COMPONENTS = {
    "student_t": StudentTOutput,
    "normal": NormalOutput,
    "normal_fixed_scale": NormalFixedScaleOutput,
    "laplace": LaplaceOutput,
    "log_normal": LogNormalOutput,
    "negative_binomial": NegativeBinomialOutput,
}
class PackedZeroMeanScaler(PackedStdScaler):
    """uni2ts's per-window scaler without the shift: loc 0, scale the context's root mean square
    (std and mean combined). uni2ts's PackedStdScaler adds each window's context mean back to
    every forecast step; on returns that mean is mostly noise, and adding it back extrapolates
    a week's average hourly return over the whole horizon. With this scaler a zero output is a
    zero return, and any drift has to be learnt."""

    def _get_loc_scale(self, target, observed_mask, sample_id, variate_id):
        loc, scale = super()._get_loc_scale(target, observed_mask, sample_id, variate_id)
        return torch.zeros_like(loc), torch.sqrt(scale**2 + loc**2)  # padding keeps loc 0, scale 1


SCALERS = {"std": PackedStdScaler, "zero_mean": PackedZeroMeanScaler}
SCALER_FILE = "scaler.json"  # beside config.json: uni2ts's config has no field for the scaler


def new_module(cfg: ModelConfig, patch_size: int) -> MoiraiModule:
    """A fresh Moirai encoder: one patch size (the experiment knob), a mixture output and the
    per-window scaler of `model.scaler`."""
    module = MoiraiModule(
        distr_output=MixtureOutput([MIXTURE_COMPONENTS[c]() for c in cfg.mixture]),
        d_model=cfg.d_model,
        num_layers=cfg.num_layers,
        patch_sizes=(patch_size,),
        max_seq_len=cfg.max_seq_len,
        attn_dropout_p=cfg.dropout,
        dropout_p=cfg.dropout,
        scaling=True,
    )
    module.scaler = SCALERS[cfg.scaler]()
    return module


def scaler_name(module: MoiraiModule) -> str:
    return next(name for name, cls in SCALERS.items() if type(module.scaler) is cls)


def load_module(source: str) -> MoiraiModule:
    """Load a saved module from a local folder, or from the hub when `source` is a hub id.

    uni2ts treats anything that is not an existing directory as a hub id, which means a
    network call: a path-like value that does not exist is therefore an error here.
    """
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path}: not a saved Moirai model (no config.json)")
        module = MoiraiModule.from_pretrained(str(path))
        saved = path / SCALER_FILE
        if saved.is_file():  # a folder this project wrote; hub and older folders use uni2ts's scaler
            module.scaler = SCALERS[json.loads(saved.read_text())["scaler"]]()
    elif source.startswith((".", "/")) or source.startswith(("models/", "data/")) or source.count("/") != 1:
        raise ValueError(f"param finetune.init_from: {source} is neither an existing model folder nor a hub id "
                         "like Salesforce/moirai-1.1-R-small")
    else:
        logger.info("loading %s from the Hugging Face hub (needs network)", source)
        module = MoiraiModule.from_pretrained(source)
    return module.train()  # from_pretrained returns eval mode


def check_window_fits(module: MoiraiModule, knobs: Knobs, variates: int) -> None:
    """Fail before training when one window cannot fit into the model's sequence length."""
    if knobs.patch_size not in module.patch_sizes:
        raise ParamsError(f"param patch_size: {knobs.patch_size} is not a patch size of the model "
                          f"(it has {tuple(module.patch_sizes)})")
    tokens = tokens_per_window(knobs.context_length, knobs.prediction_length, knobs.patch_size, variates)
    if tokens > module.max_seq_len:
        raise ParamsError(
            f"params context_length={knobs.context_length}, prediction_length={knobs.prediction_length}, "
            f"patch_size={knobs.patch_size}: "
            f"a window of {variates} variates needs {tokens} tokens > model max_seq_len {module.max_seq_len}"
        )


def num_variates(manifest: dict[str, Any], calendar: bool) -> int:
    """Target + past covariates (+ calendar covariates) of a dataset manifest."""
    return 1 + len(manifest["covariates"]) + (len(CALENDAR_COLUMNS) if calendar else 0)
