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
from torch import nn
from uni2ts.common.torch_util import mask_fill, packed_attention_mask, safe_div
from uni2ts.distribution import (
    DistributionOutput,
    LaplaceOutput,
    LogNormalOutput,
    MixtureOutput,
    NegativeBinomialOutput,
    NormalFixedScaleOutput,
    NormalOutput,
    StudentTOutput,
)
from uni2ts.model.moirai import MoiraiModule
from uni2ts.model.moirai.module import decode_distr_output, encode_distr_output
from uni2ts.module.attention import GroupedQueryAttention
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
COVARIATE_SCALERS = ("same", "std")  # same: the target's scaler (uni2ts's way); std: each covariate centred


class PackedRecipeScaler(nn.Module):
    """Per-window scaling that tells the target from its covariates (uni2ts scales every variate
    alike): the target gets `target` (std or zero_mean), as a recency-weighted mean square when
    `halflife` (bars) is set; covariates get `covariates`: `same` (the target's scaler,
    unweighted) or `std` (centred on their context mean, divided by their std), so a log volume
    or a regime one-hot keeps its contrast within the window instead of being divided by about
    its own mean. The target is the variate with prediction-horizon tokens: uni2ts never
    predicts a covariate, in pre-training (masked tails of the target only), fine-tuning or
    forecasting. Needs the time and prediction masks, which FinancialMoiraiModule passes."""

    def __init__(self, target: str, covariates: str = "same", halflife: float | None = None,
                 minimum_scale: float = 1e-5) -> None:
        super().__init__()
        self.target, self.covariates, self.halflife = target, covariates, halflife
        self.minimum_scale = minimum_scale
        self.target_scaler = SCALERS[target]()
        self.covariate_scaler = SCALERS[target if covariates == "same" else covariates]()

    def forward(self, target, observed_mask, sample_id, variate_id, time_id, prediction_mask):
        x = target.double()
        loc, scale = self.target_scaler._get_loc_scale(x, observed_mask, sample_id, variate_id)
        if self.halflife is not None:
            loc, scale = self._recency_weighted(x, observed_mask, sample_id, variate_id, time_id)
        if self.covariates != "same" or self.halflife is not None:
            same_series = torch.eq(sample_id.unsqueeze(-1), sample_id.unsqueeze(-2)) & torch.eq(
                variate_id.unsqueeze(-1), variate_id.unsqueeze(-2))
            is_target = (same_series & prediction_mask.unsqueeze(-2)).any(-1, keepdim=True)
            cov_loc, cov_scale = self.covariate_scaler._get_loc_scale(x, observed_mask, sample_id, variate_id)
            loc, scale = torch.where(is_target, loc, cov_loc), torch.where(is_target, scale, cov_scale)
        return loc.float(), scale.float()

    def _recency_weighted(self, x, observed, sample_id, variate_id, time_id):
        """Each series' loc and scale with weight 0.5 ** (age / halflife), age in bars before its
        last observed context bar (a bar's time: its patch's time_id x patch width + its place)."""
        width = x.shape[-1]
        t = (time_id.unsqueeze(-1) * width + torch.arange(width, device=x.device)).double()
        same_series = (torch.eq(sample_id.unsqueeze(-1), sample_id.unsqueeze(-2))
                       & torch.eq(variate_id.unsqueeze(-1), variate_id.unsqueeze(-2)))
        last_in_token = torch.where(observed, t, -torch.inf).amax(-1)
        last = torch.where(same_series, last_in_token.unsqueeze(-2), -torch.inf).amax(-1, keepdim=True)
        weight = torch.where(observed, torch.exp2(-(last - t) / self.halflife), 0.0)
        weight = torch.nan_to_num(weight, nan=0.0)  # a series with no observed context bar

        def series_sum(values):  # (.., seq, width) -> each token's series total, (.., seq, 1)
            return same_series.double() @ values.sum(-1, keepdim=True)

        total = series_sum(weight)
        loc = safe_div(series_sum(weight * x), total)
        if self.target == "zero_mean":
            scale = torch.sqrt(safe_div(series_sum(weight * x**2), total) + self.minimum_scale)
            loc = torch.zeros_like(loc)
        else:
            scale = torch.sqrt(safe_div(series_sum(weight * (x - loc) ** 2), total) + self.minimum_scale)
        padding = (sample_id == 0).unsqueeze(-1)
        return torch.where(padding, 0.0, loc), torch.where(padding, 1.0, scale)


class FinancialMoiraiModule(MoiraiModule, coders={DistributionOutput: (encode_distr_output, decode_distr_output)}):
    """MoiraiModule with two changes: its scaler may see the time ids and the prediction mask
    (PackedRecipeScaler; with uni2ts's scalers the forward pass is MoiraiModule's, step for
    step), and attention dropout is off in eval mode. uni2ts hands `attn_dropout_p` to
    scaled_dot_product_attention whatever the mode, so a model trained with dropout drops
    attention weights at random when it forecasts and validates: noise in every forecast, and
    a different network each draw (the Salesforce checkpoints train without it, so they never
    show it)."""

    def train(self, mode: bool = True) -> FinancialMoiraiModule:
        super().train(mode)
        for layer in self.modules():
            if isinstance(layer, GroupedQueryAttention):
                if not hasattr(layer, "training_dropout_p"):
                    layer.training_dropout_p = layer.attn_dropout_p
                layer.attn_dropout_p = layer.training_dropout_p if mode else 0.0
        return self

    def forward(self, target, observed_mask, sample_id, time_id, variate_id, prediction_mask, patch_size):
        if not isinstance(self.scaler, PackedRecipeScaler):
            return super().forward(target, observed_mask, sample_id, time_id, variate_id, prediction_mask, patch_size)
        loc, scale = self.scaler(target, observed_mask * ~prediction_mask.unsqueeze(-1), sample_id, variate_id,
                                 time_id, prediction_mask)
        reprs = self.in_proj((target - loc) / scale, patch_size)
        reprs = self.encoder(mask_fill(reprs, prediction_mask, self.mask_encoding.weight),
                             packed_attention_mask(sample_id), time_id=time_id, var_id=variate_id)
        return self.distr_output.distribution(self.param_proj(reprs, patch_size), loc=loc, scale=scale)


def make_scaler(scaler: str, covariate_scaler: str = "same", halflife: float | None = None) -> nn.Module:
    """uni2ts-style scaler for the plain recipe (every variate alike, unweighted), else PackedRecipeScaler."""
    if covariate_scaler == "same" and halflife is None:
        return SCALERS[scaler]()
    return PackedRecipeScaler(scaler, covariate_scaler, halflife)


def scaler_spec(module: MoiraiModule) -> dict[str, Any]:
    """The scaler as saved in config.json's entry: its name, plus the recipe options when set."""
    scaler = module.scaler
    if isinstance(scaler, PackedRecipeScaler):
        return {"scaler": scaler.target, "covariate_scaler": scaler.covariates, "scale_halflife": scaler.halflife}
    return {"scaler": scaler_name(module)}
STOCK_SCALER = "std"  # what stock uni2ts builds from a folder (scaling: true)
SCALER_FILE = "scaler.json"  # beside config.json in folders written before the `finmoirai` entry
CONFIG_ENTRY = "finmoirai"  # config.json: {"scaler": ..., "distr_output": the real one when stock would misload}
GUARD = ("finmoirai.{scaler}: this Moirai folder scales with finmoirai's {scaler} scaler, which stock uni2ts lacks "
         "(it would load it with PackedStdScaler, a different model); load it with "
         "finmoirai.training.module.load_module(folder)")


def new_module(cfg: ModelConfig, patch_size: int) -> MoiraiModule:
    """A fresh Moirai encoder: one patch size (the experiment knob), a mixture output and the
    per-window scaler of `model.scaler`."""
    module = FinancialMoiraiModule(
        distr_output=MixtureOutput([MIXTURE_COMPONENTS[c]() for c in cfg.mixture]),
        d_model=cfg.d_model,
        num_layers=cfg.num_layers,
        patch_sizes=(patch_size,),
        max_seq_len=cfg.max_seq_len,
        attn_dropout_p=cfg.dropout,
        dropout_p=cfg.dropout,
        scaling=True,
    )
    module.scaler = make_scaler(cfg.scaler, cfg.covariate_scaler, cfg.scale_halflife)
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
    entry = scaler_spec(module)
    scaler = entry["scaler"] if len(entry) == 1 else ",".join(f"{k}={v}" for k, v in entry.items())
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
            module = FinancialMoiraiModule.from_pretrained(str(path))
            saved = path / SCALER_FILE
            if saved.is_file():
                module.scaler = SCALERS[json.loads(saved.read_text())["scaler"]]()
            return module
        if "distr_output" in entry:
            config["distr_output"] = entry["distr_output"]
        config["distr_output"] = decode_distr_output(config["distr_output"])
        module = FinancialMoiraiModule(**config)
        safetensors.torch.load_model(module, str(path / WEIGHTS_FILE), strict=True)
        module.scaler = make_scaler(entry["scaler"], entry.get("covariate_scaler", "same"),
                                    entry.get("scale_halflife"))
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
