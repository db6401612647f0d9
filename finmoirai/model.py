"""Moirai pre-training and fine-tuning with uni2ts, driven by Lightning and logged by dvclive.

The heavy lifting is uni2ts's: `MoiraiPretrain` (masked-encoder pre-training with random
crops, mask ratios and variate subsampling) and `MoiraiFinetune` (fixed context/horizon
windows), their transformation maps, `PackCollate`/`PadCollate` and their NLL loss. This
module only adapts them to this project:

* patch size comes from params (`FixedPatchSizeConstraints`); uni2ts's default frequency
  table does not know pandas' `h` alias and would raise KeyError.
* pre-training validates on deterministic validation-split windows (the same windows as
  fine-tuning), so its validation NLL is comparable across experiments.
* models are written as Hugging Face folders (`save_pretrained`), not Lightning checkpoints,
  which torch >= 2.6 refuses to unpickle by default.
* scaling to more hardware is a params change: `accelerator`, `devices`, `num_nodes` go
  straight to the Lightning Trainer.
* with `calendar: true`, uni2ts's transform chains also carry `feat_dynamic_real`, the
  known-future calendar covariates: packed, patched and indexed like the other covariates (so
  their variate ids follow the target's, as in `MoiraiForecast`), never predicted, and, unlike
  `past_feat_dynamic_real`, not truncated at the forecast start (uni2ts issues #163, #176).
* the datasets of the `target` representation are used (`data/datasets/<target>/`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from dvclive.lightning import DVCLiveLogger
from uni2ts.data.loader import DataLoader, PackCollate, PadCollate
from uni2ts.distribution import (
    LaplaceOutput,
    LogNormalOutput,
    MixtureOutput,
    NegativeBinomialOutput,
    NormalFixedScaleOutput,
    NormalOutput,
    StudentTOutput,
)
from uni2ts.model.moirai import MoiraiFinetune, MoiraiModule, MoiraiPretrain
from uni2ts.module.packed_scaler import PackedStdScaler
from uni2ts.transform import Chain, FixedPatchSizeConstraints, GetPatchSize, PackFields

from finmoirai.builder import IterativeFinancialDatasetBuilder
from finmoirai.params import FinetuneConfig, Knobs, ModelConfig, ParamsError, PretrainConfig, TrainerConfig, require, tokens_per_window
from finmoirai.targets import CALENDAR_COLUMNS

logger = logging.getLogger(__name__)

MIXTURE_COMPONENTS = {
    "student_t": StudentTOutput,
    "normal": NormalOutput,
    "normal_fixed_scale": NormalFixedScaleOutput,
    "laplace": LaplaceOutput,
    "log_normal": LogNormalOutput,
    "negative_binomial": NegativeBinomialOutput,
}
NLL_KEY = "PackedNLLLoss"
# uni2ts logs with on_step=log_on_step and on_epoch=True; with per-step curves on, Lightning
# suffixes the epoch aggregate with `_epoch`, which is what early stopping must watch.
VAL_NLL = f"val/{NLL_KEY}_epoch"
NLL_METRICS = ("train_nll", "val_nll", "best_val_nll")


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
        raise ValueError(f"param finetune.init_from: {source} is neither an existing model folder nor a hub id like Salesforce/moirai-1.1-R-small")
    else:
        logger.info("loading %s from the Hugging Face hub (needs network)", source)
        module = MoiraiModule.from_pretrained(source)
    return module.train()  # from_pretrained returns eval mode


def check_window_fits(module: MoiraiModule, knobs: Knobs, variates: int) -> None:
    """Fail before training when one window cannot fit into the model's sequence length."""
    if knobs.patch_size not in module.patch_sizes:
        raise ParamsError(f"param patch_size: {knobs.patch_size} is not a patch size of the model (it has {tuple(module.patch_sizes)})")
    tokens = tokens_per_window(knobs.context_length, knobs.prediction_length, knobs.patch_size, variates)
    if tokens > module.max_seq_len:
        raise ParamsError(
            f"params context_length={knobs.context_length}, prediction_length={knobs.prediction_length}, patch_size={knobs.patch_size}: "
            f"a window of {variates} variates needs {tokens} tokens > model max_seq_len {module.max_seq_len}"
        )


KNOWN_FUTURE = "feat_dynamic_real"
PAST_ONLY = "past_feat_dynamic_real"


def num_variates(manifest: dict[str, Any], calendar: bool) -> int:
    """Target + past covariates (+ calendar covariates) of a dataset manifest."""
    return 1 + len(manifest["covariates"]) + (len(CALENDAR_COLUMNS) if calendar else 0)


def with_known_future(chain: Chain) -> Chain:
    """uni2ts's chain with `feat_dynamic_real` beside `past_feat_dynamic_real` in every step
    that handles covariates, placed just before it (MoiraiForecast's variate order: target,
    known-future, past-only). Truncation at the forecast start (`optional_truncate_fields`)
    is left to the past-only covariates: the calendar stays visible over the horizon."""
    steps = []
    for step in chain.transformations:
        if isinstance(step, PackFields) and step.output_field == PAST_ONLY:
            steps.append(dataclasses.replace(step, output_field=KNOWN_FUTURE, optional_fields=(KNOWN_FUTURE,)))
        elif PAST_ONLY in getattr(step, "optional_fields", ()):
            fields = list(step.optional_fields)
            fields.insert(fields.index(PAST_ONLY), KNOWN_FUTURE)
            step = dataclasses.replace(step, optional_fields=tuple(fields))
        steps.append(step)
    return Chain(steps)


def _maybe_known_future(base: Any, known_future: bool) -> dict[Any, Any]:
    """A transform map whose chains carry the calendar covariates when `known_future`."""
    if not known_future:
        return base
    return defaultdict(lambda: lambda *args, **kwargs: with_known_future(base["train"](*args, **kwargs)))


class FinancialMoiraiPretrain(MoiraiPretrain):
    """MoiraiPretrain with a fixed patch size, deterministic validation windows and, optionally,
    the known-future calendar covariates."""

    def __init__(self, *args: Any, fixed_patch_size: int, known_future: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_patch_size = fixed_patch_size
        self.known_future = known_future

    @property
    def train_transform_map(self):
        base = super().train_transform_map

        def transform():
            chain = base["train"]()
            for step in chain.transformations:
                if isinstance(step, GetPatchSize):
                    step.patch_size_constraints = FixedPatchSizeConstraints(self.fixed_patch_size)
            return with_known_future(chain) if self.known_future else chain

        return {"train": transform}

    # uni2ts builds validation windows only in MoiraiFinetune; the property only needs
    # hparams.max_dim, module.patch_sizes and seq_fields, which MoiraiPretrain has too.
    @property
    def val_transform_map(self):
        return _maybe_known_future(MoiraiFinetune.val_transform_map.fget(self), self.known_future)


class FinancialMoiraiFinetune(MoiraiFinetune):
    """MoiraiFinetune whose windows optionally carry the known-future calendar covariates."""

    def __init__(self, *args: Any, known_future: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_future = known_future

    @property
    def train_transform_map(self):
        return _maybe_known_future(super().train_transform_map, self.known_future)

    @property
    def val_transform_map(self):
        return _maybe_known_future(super().val_transform_map, self.known_future)


class BestWeights(L.Callback):
    """Track the lowest validation NLL and, with `restore`, keep those weights in memory (no
    pickled checkpoints) so fine-tuning can end on them when early stopping fires after a few
    worse epochs."""

    def __init__(self, monitor: str, restore: bool = True) -> None:
        self.monitor = monitor
        self.restore = restore
        self.best: float = math.inf
        self.state: dict[str, torch.Tensor] | None = None
        self.step: int = -1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and float(value) < self.best:
            self.best = float(value)
            self.step = trainer.global_step
            if self.restore:  # pre-training only reports the best step, so copies nothing
                self.state = copy.deepcopy(pl_module.module.state_dict())


class RankSeed(L.Callback):
    """Seed data sampling per process: uni2ts's DataLoader is not a torch DataLoader, so
    Lightning adds no DistributedSampler, and equally seeded ranks would draw the same
    windows. Weights are created (and DDP-synchronised) before this runs."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        L.seed_everything(self.seed + trainer.global_rank, workers=True, verbose=False)


def _seq_collate(model: L.LightningModule, max_len: int, pack: bool):
    cls = PackCollate if pack else PadCollate
    return cls(max_length=max_len, seq_fields=model.seq_fields, pad_func_map=model.pad_func_map)


def _trainer(cfg: TrainerConfig, live_dir: Path, seed: int, callbacks: list[L.Callback], **kwargs: Any) -> L.Trainer:
    live_logger = DVCLiveLogger(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    return L.Trainer(
        callbacks=[RankSeed(seed), *callbacks],
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        logger=live_logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        deterministic=False,
        **kwargs,
    )


def _final_metrics(trainer: L.Trainer) -> dict[str, float]:
    metrics = trainer.callback_metrics
    out = {}
    for split in ("train", "val"):
        value = metrics.get(f"{split}/{NLL_KEY}_epoch")
        if value is not None:
            out[f"{split}_nll"] = float(value)
    return out


def pretrain(
    builder: IterativeFinancialDatasetBuilder,
    knobs: Knobs,
    model_cfg: ModelConfig,
    cfg: PretrainConfig,
    out_dir: Path,
    live_dir: Path,
) -> dict[str, Any] | None:
    """Pre-train a fresh Moirai on the training split; write `out_dir` as a HF model folder."""
    require(model_cfg.scaler == "std" or knobs.target == "log_return",
            f"param model.scaler: {model_cfg.scaler} needs target log_return (a price level scaled by its "
            f"own root mean square would hide every move); set model.scaler: std or target: log_return")
    torch.set_num_threads(cfg.threads)
    L.seed_everything(knobs.seed, workers=True)
    module = new_module(model_cfg, knobs.patch_size)
    check_window_fits(module, knobs, num_variates(builder.manifest(), knobs.calendar))
    model = FinancialMoiraiPretrain(
        min_patches=cfg.min_patches,
        min_mask_ratio=cfg.min_mask_ratio,
        max_mask_ratio=cfg.max_mask_ratio,
        max_dim=cfg.max_dim,
        num_training_steps=cfg.max_steps,
        num_warmup_steps=cfg.warmup_steps,
        module=module,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        log_on_step=True,
        fixed_patch_size=knobs.patch_size,
        known_future=knobs.calendar,
    )
    train_data = builder.load_dataset(model.train_transform_map)
    train_loader = DataLoader(
        train_data,
        batch_size=cfg.batch_size,
        shuffle=True,
        cycle=True,
        num_batches_per_epoch=cfg.val_check_interval,
        collate_fn=_seq_collate(model, model_cfg.max_seq_len, pack=True),
        drop_last=False,
    )
    val_loader = _window_loader(builder, "val", model, knobs, knobs.prediction_length, cfg.batch_size)
    # Pre-training keeps its final weights (validation NLL is monitored and reported, not
    # used to pick a checkpoint: an early, barely trained minimum is not a better start).
    best = BestWeights(VAL_NLL, restore=False)
    trainer = _trainer(cfg, live_dir, knobs.seed, [best], max_steps=cfg.max_steps, log_every_n_steps=1, num_sanity_val_steps=0)
    started = time.monotonic()
    trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=val_loader)
    return _save(model, best, trainer, out_dir, started, {"knobs": asdict(knobs), "model": asdict(model_cfg), "pretrain": asdict(cfg)})


def _window_loader(builder, split, model, knobs: Knobs, distance: int, batch_size: int, shuffle: bool = False):
    """`batch_size` windows per step. Every window has the same token count, so padding
    to exactly that count wastes nothing (packing would merge a whole epoch into one step)."""
    variates = num_variates(builder.manifest(), knobs.calendar)
    max_len = tokens_per_window(knobs.context_length, knobs.prediction_length, knobs.patch_size, variates)
    dataset = builder.load_window_dataset(
        split,
        model.val_transform_map if split != "train" else model.train_transform_map,
        context_length=knobs.context_length,
        prediction_length=knobs.prediction_length,
        patch_size=knobs.patch_size,
        distance=distance,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=_seq_collate(model, max_len, pack=False),
        drop_last=False,
    )


def finetune(
    builder: IterativeFinancialDatasetBuilder,
    knobs: Knobs,
    cfg: FinetuneConfig,
    out_dir: Path,
    live_dir: Path,
) -> dict[str, Any] | None:
    """Fine-tune on fixed windows of the training split; early-stop on validation NLL."""
    torch.set_num_threads(cfg.threads)
    L.seed_everything(knobs.seed, workers=True)
    module = load_module(cfg.init_from)
    variates = num_variates(builder.manifest(), knobs.calendar)
    check_window_fits(module, knobs, variates)
    model = FinancialMoiraiFinetune(
        min_patches=2,
        min_mask_ratio=0.1,  # unused by fixed-window fine-tuning, required by the signature
        max_mask_ratio=0.5,
        max_dim=max(64, variates),
        num_training_steps=None,
        num_warmup_steps=0,
        module=module,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        log_on_step=True,
        context_length=knobs.context_length,
        prediction_length=knobs.prediction_length,
        patch_size=knobs.patch_size,
        known_future=knobs.calendar,
    )
    train_loader = _window_loader(builder, "train", model, knobs, cfg.train_distance, cfg.batch_size, shuffle=True)
    val_loader = _window_loader(builder, "val", model, knobs, knobs.prediction_length, cfg.batch_size)
    best = BestWeights(VAL_NLL)
    stopper = L.pytorch.callbacks.EarlyStopping(monitor=VAL_NLL, patience=cfg.patience, mode="min")
    trainer = _trainer(cfg, live_dir, knobs.seed, [best, stopper], max_epochs=cfg.max_epochs, log_every_n_steps=1, num_sanity_val_steps=0)
    started = time.monotonic()
    trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=val_loader)
    return _save(model, best, trainer, out_dir, started, {"knobs": asdict(knobs), "finetune": asdict(cfg)})


def _save(model, best: BestWeights, trainer: L.Trainer, out_dir: Path, started: float, config: dict[str, Any]) -> dict[str, Any] | None:
    final = _final_metrics(trainer)
    if best.state is not None:
        model.module.load_state_dict(best.state)
    summary = {
        "train_nll": final.get("train_nll", float("nan")),
        "val_nll": final.get("val_nll", float("nan")),
        "best_val_nll": best.best,
        "best_step": best.step,
        "steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
    }
    seconds = round(time.monotonic() - started, 1)
    if not math.isfinite(summary["best_val_nll"]):
        raise RuntimeError(f"training produced no finite validation NLL (last metrics: {final})")
    if not trainer.is_global_zero:
        return None  # with several devices, only rank 0 writes the model and the metrics
    out_dir.mkdir(parents=True, exist_ok=True)
    model.module.save_pretrained(str(out_dir))
    (out_dir / "training.json").write_text(json.dumps(config | {"result": summary}, indent=2, default=str))
    (out_dir / SCALER_FILE).write_text(json.dumps({"scaler": scaler_name(model.module)}))
    logger.info("saved %s after %.1f s: %s", out_dir, seconds, summary)
    return {k: summary[k] for k in NLL_METRICS}  # the `dvc exp show` columns; steps and epochs: training.json
