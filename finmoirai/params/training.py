"""The model stages' sections: the top-level experiment knobs, the model, and pre-training and
fine-tuning with their Lightning hardware settings; and the rules about one window's tokens and
the scaler that both the params check and the training code apply."""

from __future__ import annotations

import math
from pathlib import Path

from finmoirai.params.base import ParamsError, Section, require

TARGETS = ("level", "log_return")  # what Moirai forecasts (finmoirai/data/targets.py)
MIXTURE_COMPONENT_NAMES = ("student_t", "normal", "normal_fixed_scale", "laplace", "log_normal", "negative_binomial")
# Lightning's names (tests/training/test_loops.py checks them against the installed Lightning),
# listed here so that validating params.yaml does not import torch.
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_find_unused_parameters_true", "fsdp", "deepspeed_stage_1",
              "deepspeed_stage_2", "deepspeed_stage_3", "single_device")
SINGLE_PROCESS_STRATEGIES = ("single_device",)
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")


def tokens_per_window(context_length: int, prediction_length: int, patch_size: int, num_variates: int) -> int:
    """Sequence length (in patches) of one window once every variate is patchified: uni2ts
    patches the context and the horizon separately."""
    return (math.ceil(context_length / patch_size) + math.ceil(prediction_length / patch_size)) * num_variates




def check_model_source(source: str, param: str) -> bool:
    """Whether `source` names a local folder (True) or a hub id such as
    Salesforce/moirai-1.1-R-small (False); a path-like value that is no folder is one line
    naming `param`, because uni2ts would take it for a hub id and go to the network."""
    if Path(source).is_dir():
        return True
    if source.startswith((".", "/", "models/", "data/")) or source.count("/") != 1:
        raise ParamsError(f"param {param}: {source} is neither an existing model folder nor a hub id like "
                          "Salesforce/moirai-1.1-R-small")
    return False


def check_target(target: str) -> None:
    require(target in TARGETS, f"param target: {target!r} is not one of {', '.join(TARGETS)}")


def check_token_budget(knobs: Knobs, variates: int, max_seq_len: int) -> None:
    """One window (every variate, context + horizon, in patches) must fit the model's sequence
    (params.yaml's model.max_seq_len before any stage runs; a loaded model's own when training)."""
    tokens = tokens_per_window(knobs.context_length, knobs.prediction_length, knobs.patch_size, variates)
    if tokens > max_seq_len:
        patches = tokens // variates
        raise ParamsError(
            f"params context_length={knobs.context_length}, prediction_length={knobs.prediction_length}, "
            f"patch_size={knobs.patch_size}: a window is {variates} variates x {patches} patches = {tokens} "
            f"tokens > model.max_seq_len {max_seq_len}; raise patch_size or model.max_seq_len, shorten the context, "
            f"or use fewer features.indicators")


def check_scaler_target(scaler: str, target: str) -> None:
    require(scaler == "std" or target == "log_return",
            f"param model.scaler: {scaler} needs target log_return (a price level scaled by its own root mean square "
            f"would hide every move); set model.scaler: std or target: log_return")


class Knobs(Section):
    """The top-level experiment knobs (settable with `dvc exp run -S patch_size=64`)."""

    seed: int
    patch_size: int
    context_length: int
    prediction_length: int
    target: str
    calendar: bool

    def rules(self) -> None:
        check_target(self.target)
        require(self.patch_size in (8, 16, 32, 64, 128),
                f"param patch_size: {self.patch_size} is not one of 8, 16, 32, 64, 128")
        require(self.context_length > 0, f"param context_length: must be positive, got {self.context_length}")
        require(self.prediction_length > 0,
                f"param prediction_length: must be positive, got {self.prediction_length}")



class ModelConfig(Section):
    d_model: int
    num_layers: int
    max_seq_len: int
    dropout: float
    mixture: list[str]
    scaler: str  # per-window scaler: std (uni2ts's) or zero_mean (no shift; see PackedZeroMeanScaler)
    covariate_scaler: str  # same (the target's scaler) or std (covariates centred; see PackedRecipeScaler)
    scale_halflife: float | None  # bars; the target's scale recency-weighted (None: the context's plain RMS)

    def rules(self) -> None:
        require(self.d_model >= 64 and self.d_model % 64 == 0,
                f"param model.d_model: must be a positive multiple of 64 (heads = d_model // 64), got {self.d_model}")
        require(self.num_layers >= 1, f"param model.num_layers: must be >= 1, got {self.num_layers}")
        require(self.max_seq_len >= 8, f"param model.max_seq_len: must be >= 8, got {self.max_seq_len}")
        require(0.0 <= self.dropout < 1.0, f"param model.dropout: must be in [0, 1), got {self.dropout}")
        unknown = [c for c in self.mixture if c not in MIXTURE_COMPONENT_NAMES]
        require(self.scaler in ("std", "zero_mean"), f"param model.scaler: 'std' or 'zero_mean', got {self.scaler!r}")
        require(self.covariate_scaler in ("same", "std"),
                f"param model.covariate_scaler: 'same' or 'std', got {self.covariate_scaler!r}")
        require(self.scale_halflife is None or self.scale_halflife > 0,
                f"param model.scale_halflife: null or a positive number of bars, got {self.scale_halflife!r}")
        require(len(self.mixture) > 0 and not unknown,
                f"param model.mixture: unknown component(s) {unknown}; known: {', '.join(MIXTURE_COMPONENT_NAMES)}")


class TrainerConfig(Section):
    """What every training stage shares: Lightning hardware settings and torch's thread count."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: str  # Lightning's distributed strategy: auto, ddp, fsdp, ... (devices x num_nodes processes)
    precision: str  # 32-true, bf16-mixed (GPU or CPU), 16-mixed (GPU), ...
    accumulate_grad_batches: int  # optimiser step every this many batches (a bigger effective batch)
    num_workers: int  # DataLoader worker processes per training process; 0 = in the training process
    threads: int  # torch intra-op threads: fixed, because the result depends on it

    def validate_trainer(self, section: str) -> None:
        require(self.accelerator in ACCELERATORS,
                f"param {section}.accelerator: {self.accelerator!r} is not one of {', '.join(ACCELERATORS)}")
        require(self.devices >= 1, f"param {section}.devices: must be >= 1, got {self.devices}")
        require(self.num_nodes >= 1, f"param {section}.num_nodes: must be >= 1, got {self.num_nodes}")
        require(self.strategy in STRATEGIES,
                f"param {section}.strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        require(self.precision in PRECISIONS,
                f"param {section}.precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        require(not (self.precision.startswith("16") and self.accelerator == "cpu"),
                f"param {section}.precision: {self.precision} needs a GPU; on CPU use bf16-mixed or 32-true")
        require(self.devices * self.num_nodes == 1 or self.strategy not in SINGLE_PROCESS_STRATEGIES,
                f"param {section}.strategy: {self.strategy} runs one process, but devices x num_nodes = "
                f"{self.devices * self.num_nodes}; use auto or ddp")
        require(self.accumulate_grad_batches >= 1,
                f"param {section}.accumulate_grad_batches: must be >= 1, got {self.accumulate_grad_batches}")
        require(self.num_workers >= 0, f"param {section}.num_workers: must be >= 0, got {self.num_workers}")
        require(self.threads >= 1, f"param {section}.threads: must be >= 1, got {self.threads}")


class PretrainConfig(TrainerConfig):
    max_steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    min_patches: int
    min_mask_ratio: float
    max_mask_ratio: float
    max_dim: int
    val_check_interval: int
    synthetic_share: float | None  # share of draws from the synthetic corpus (None: one pool with the real assets)
    symbols: list[str]  # the real assets pre-trained on (empty: all); the others are still fine-tuned and scored

    def rules(self) -> None:
        self.validate_trainer("pretrain")
        require(self.synthetic_share is None or 0 <= self.synthetic_share <= 1,
                f"param pretrain.synthetic_share: null or a number in [0, 1], got {self.synthetic_share!r}")
        require(len(set(self.symbols)) == len(self.symbols),
                f"param pretrain.symbols: repeated symbols in {self.symbols}")
        require(self.max_steps >= 1, f"param pretrain.max_steps: must be >= 1, got {self.max_steps}")
        require(0 <= self.warmup_steps <= self.max_steps,
                f"param pretrain.warmup_steps: must be in [0, max_steps={self.max_steps}], got {self.warmup_steps}")
        require(self.batch_size >= 1, f"param pretrain.batch_size: must be >= 1, got {self.batch_size}")
        require(self.lr > 0, f"param pretrain.lr: must be > 0, got {self.lr}")
        require(0 < self.min_mask_ratio <= self.max_mask_ratio < 1,
                "param pretrain.min_mask_ratio/max_mask_ratio: need 0 < min <= max < 1")
        require(self.min_patches >= 2, f"param pretrain.min_patches: must be >= 2, got {self.min_patches}")
        require(self.val_check_interval >= 1,
                f"param pretrain.val_check_interval: must be >= 1, got {self.val_check_interval}")


class FinetuneConfig(TrainerConfig):
    init_from: str
    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    train_distance: int
    patience: int

    def rules(self) -> None:
        self.validate_trainer("finetune")
        require(self.max_epochs >= 1, f"param finetune.max_epochs: must be >= 1, got {self.max_epochs}")
        require(self.batch_size >= 1, f"param finetune.batch_size: must be >= 1, got {self.batch_size}")
        require(self.lr > 0, f"param finetune.lr: must be > 0, got {self.lr}")
        require(self.train_distance >= 1, f"param finetune.train_distance: must be >= 1, got {self.train_distance}")
        require(self.patience >= 1, f"param finetune.patience: must be >= 1, got {self.patience}")
        require(bool(self.init_from), "param finetune.init_from: must name a local model folder or a hub id")


