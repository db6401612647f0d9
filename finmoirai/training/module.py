"""The Moirai network: a fresh module from params, or a saved one (this project's folder or a
hub id), its per-window scaler, and the window-size checks that run before training.

Models are written as Hugging Face folders (`save_module`: config.json and safetensors), not
Lightning checkpoints, which torch >= 2.6 refuses to unpickle by default. uni2ts's config has
no field for the scaler, and stock `MoiraiModule.from_pretrained` would load any folder with
PackedStdScaler. So config.json carries a `finmoirai` entry with the scaler's name, and a
folder whose scaler is not uni2ts's (`zero_mean`, the default) has its `distr_output` replaced
by a marker that stock uni2ts refuses to instantiate, with a message that says to load it
with `load_module`: such a folder loads right here, and fails loudly elsewhere, never silently
with the wrong scaler. A `std` folder is a stock Moirai folder (plus the ignored entry).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import safetensors.torch
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
from uni2ts.model.moirai.module import decode_distr_output
from uni2ts.module.packed_scaler import PackedStdScaler

from finmoirai.data.targets import num_variates
from finmoirai.errors import first_line
from finmoirai.params.base import ParamsError
from finmoirai.params.training import Knobs, ModelConfig, check_model_source, check_token_budget

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
STOCK_SCALER = "std"  # what stock uni2ts builds from a folder (scaling: true)
SCALER_FILE = "scaler.json"  # beside config.json in folders written before the `finmoirai` entry
CONFIG_ENTRY = "finmoirai"  # config.json: {"scaler": ..., "distr_output": the real one when stock would misload}
GUARD = ("finmoirai.{scaler}: this Moirai folder scales with finmoirai's {scaler} scaler, which stock uni2ts lacks "
         "(it would load it with PackedStdScaler, a different model); load it with "
         "finmoirai.training.module.load_module(folder)")


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


WEIGHTS_FILE = "model.safetensors"  # the only weights format loaded: safetensors holds tensors, never code
PICKLED_WEIGHTS = ("pytorch_model.bin", "model.bin", "model.pt", "model.ckpt")


def save_module(module: MoiraiModule, folder: Path) -> None:
    """config.json and model.safetensors (`save_pretrained`), config.json carrying the scaler
    and, when stock uni2ts would load the folder with another scaler, guarded (module docstring)."""
    folder = Path(folder)
    module.save_pretrained(str(folder))
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    scaler = scaler_name(module)
    entry: dict[str, Any] = {"scaler": scaler}
    if scaler != STOCK_SCALER:
        entry["distr_output"] = config["distr_output"]
        config["distr_output"] = {"_target_": GUARD.format(scaler=scaler)}
    config[CONFIG_ENTRY] = entry
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


def load_module(source: str, param: str = "finetune.init_from") -> MoiraiModule:
    """Load a saved module from a local folder (this project's, or a stock Moirai folder such
    as a downloaded Salesforce checkpoint), or from the hub when `source` is a hub id; weights
    only from safetensors (a pickled checkpoint can run code when it is loaded).

    uni2ts treats anything that is not an existing directory as a hub id, which means a
    network call: a path-like value that does not exist is therefore an error here, naming
    `param`.
    """
    if check_model_source(source, param):
        module = _load_folder(Path(source))
    else:
        logger.info("loading %s from the Hugging Face hub (needs network)", source)
        module = _load_folder(_hub_snapshot(source, param))
    return module.train()  # from_pretrained returns eval mode


def _load_folder(path: Path) -> MoiraiModule:
    """A model folder with config.json and safetensors weights, else one line saying what is wrong."""
    if not (path / "config.json").is_file():
        raise ParamsError(f"{path}: not a saved Moirai model (no config.json)")
    if not (path / WEIGHTS_FILE).is_file():
        pickled = [name for name in PICKLED_WEIGHTS if (path / name).is_file()]
        found = f"it has pickled weights ({pickled[0]}), which are never loaded" if pickled else "no weights found"
        raise ParamsError(f"{path}: no {WEIGHTS_FILE}: {found}; save the model with save_pretrained "
                          "(safetensors) and point to that folder")
    try:
        config = json.loads((path / "config.json").read_text())
        entry = config.pop(CONFIG_ENTRY, None)
        if entry is None:  # a stock folder (the hub's), or one written before the entry: its scaler.json
            module = MoiraiModule.from_pretrained(str(path))
            saved = path / SCALER_FILE
            if saved.is_file():
                module.scaler = SCALERS[json.loads(saved.read_text())["scaler"]]()
            return module
        if "distr_output" in entry:
            config["distr_output"] = entry["distr_output"]
        config["distr_output"] = decode_distr_output(config["distr_output"])
        module = MoiraiModule(**config)
        safetensors.torch.load_model(module, str(path / WEIGHTS_FILE), strict=True)
        module.scaler = SCALERS[entry["scaler"]]()
        return module.eval()
    except Exception as e:  # noqa: BLE001 - corrupt or mismatched weights: one line naming the folder
        raise ParamsError(f"{path}: cannot load the model ({type(e).__name__}: {first_line(e)})") from e


def _hub_snapshot(repo_id: str, param: str) -> Path:
    """config.json and the safetensors weights of a hub model, in the local hub cache; the
    folder that holds them. Pickled weights are never downloaded."""
    from huggingface_hub import hf_hub_download

    try:
        config = hf_hub_download(repo_id, "config.json")
        weights = hf_hub_download(repo_id, WEIGHTS_FILE)
    except Exception as e:  # noqa: BLE001 - offline, unknown id, no safetensors: all one line
        raise ParamsError(f"param {param}: cannot load {repo_id} from the Hugging Face hub "
                          f"({type(e).__name__}: {first_line(e)}); offline, download it once where there is network "
                          f"(`hf download {repo_id} config.json {WEIGHTS_FILE} --local-dir models/hub`) "
                          f"and set {param} to that local folder") from e
    if Path(config).parent != Path(weights).parent:
        raise ParamsError(f"param {param}: {repo_id}: config.json and {WEIGHTS_FILE} came from different "
                          "revisions; retry")
    return Path(weights).parent


def check_window_fits(module: MoiraiModule, knobs: Knobs, variates: int) -> None:
    """Fail before training when one window cannot fit into the model's sequence length."""
    if knobs.patch_size not in module.patch_sizes:
        raise ParamsError(f"param patch_size: {knobs.patch_size} is not a patch size of the model "
                          f"(it has {tuple(module.patch_sizes)})")
    check_token_budget(knobs, variates, module.max_seq_len)


def manifest_variates(manifest: dict[str, Any], calendar: bool) -> int:
    """The variates of one window of a dataset manifest's series."""
    return num_variates(len(manifest["covariates"]), calendar)
