"""Pre-training and fine-tuning loops: uni2ts's tasks on this project's datasets, driven by
Lightning and logged by dvclive and TensorBoard.

The heavy lifting is uni2ts's: `MoiraiPretrain` (masked-encoder pre-training with random
crops, mask ratios and variate subsampling) and `MoiraiFinetune` (fixed context/horizon
windows), their transformation maps, `PackCollate`/`PadCollate` and their NLL loss. Scaling
to more hardware is a params change: `accelerator`, `devices`, `num_nodes` go straight to the
Lightning Trainer. The datasets of the `target` representation are used
(`data/datasets/<target>/`).

Monitoring: both loggers write while training runs, straight into the stage's live folder (not
staged: only the model and the metrics file are, finmoirai/atomic.py). dvclive writes
`<live>/plots/metrics/{train,val}/*.tsv` (the DVC output `dvclive/pretrain/plots`, drawn by
`dvc plots show`) after every logged step; TensorBoard writes event files into
`<live>/tensorboard/` (git-ignored, not a DVC output: `tensorboard --logdir dvclive`), flushed
after every logged step. Loggers only read the logged values: they draw no random numbers, so
the weights and metrics are the same bytes with or without them, and neither opens a network
connection (dvclive's Studio upload needs a token this project never sets).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from dvclive.lightning import DVCLiveLogger
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from uni2ts.data.loader import DataLoader, PackCollate, PadCollate

from finmoirai.atomic import is_rank_zero, remove
from finmoirai.data.builder import IterativeFinancialDatasetBuilder
from finmoirai.params.training import (
    FinetuneConfig,
    Knobs,
    ModelConfig,
    PretrainConfig,
    TrainerConfig,
    check_scaler_target,
    tokens_per_window,
)
from finmoirai.training.module import (
    check_window_fits,
    load_module,
    manifest_variates,
    new_module,
    save_module,
)
from finmoirai.training.tasks import FinancialMoiraiFinetune, FinancialMoiraiPretrain

logger = logging.getLogger(__name__)

# MoiraiFinetune's arguments that change nothing in fixed-window fine-tuning: its training windows
# mask exactly the horizon (EvalMaskedPrediction), not a random ratio; patch sizes are fixed
# (FixedPatchSizeConstraints), and its scheduler is constant. Not params, because no value of
# them changes anything.
SIGNATURE_ONLY = {"min_patches": 2, "min_mask_ratio": 0.1, "max_mask_ratio": 0.5, "num_training_steps": None,
                  "num_warmup_steps": 0}
NLL_KEY = "PackedNLLLoss"
# uni2ts logs with on_step=log_on_step and on_epoch=True; with per-step curves on, Lightning
# suffixes the epoch aggregate with `_epoch`, which is what early stopping must watch.
VAL_NLL = f"val/{NLL_KEY}_epoch"
NLL_METRICS = ("train_nll", "val_nll", "best_val_nll")
TENSORBOARD = "tensorboard"  # in the live folder, beside dvclive's plots/ (the DVC output)


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


class TokenCounter(L.Callback):
    """Tokens (patches, padding excluded) of every training batch, over all processes: the
    data a pre-training run consumed, the x axis of the scaling study."""

    def __init__(self) -> None:
        self.tokens = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.tokens += int((batch["sample_id"] > 0).sum())

    def total(self, trainer: L.Trainer) -> int:
        return int(trainer.strategy.reduce(torch.tensor(float(self.tokens)), reduce_op="sum"))


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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


def training_loggers(live_dir: Path) -> list[Logger]:
    """dvclive's logger (first, so it is trainer.logger) and TensorBoard's, both writing into
    `live_dir` as training runs. Each run starts both afresh: dvclive removes its previous plots
    itself, and global rank 0 removes the previous run's TensorBoard events here (the other
    ranks log nothing)."""
    board = live_dir / TENSORBOARD
    if is_rank_zero():
        remove(board)
    return [DVCLiveLogger(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None),
            TensorBoardLogger(save_dir=str(board), name="", version="", default_hp_metric=False)]


def _trainer(cfg: TrainerConfig, live_dir: Path, seed: int, callbacks: list[L.Callback], **kwargs: Any) -> L.Trainer:
    return L.Trainer(
        callbacks=[RankSeed(seed), *callbacks],
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        logger=training_loggers(live_dir),
        enable_checkpointing=False,
        enable_model_summary=False,
        deterministic=False,
        **kwargs,
    )


def _fit(trainer: L.Trainer, model: L.LightningModule, train_loader: Any, val_loader: Any) -> None:
    """trainer.fit, with Ctrl-C reported as the interrupt it is: Lightning catches the
    KeyboardInterrupt, shuts down and calls sys.exit(1), which would read as a plain failure."""
    try:
        trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=val_loader)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise


def _final_metrics(trainer: L.Trainer) -> dict[str, float]:
    metrics = trainer.callback_metrics
    out = {}
    for split in ("train", "val"):
        value = metrics.get(f"{split}/{NLL_KEY}_epoch")
        if value is not None:
            out[f"{split}_nll"] = float(value)
    return out


def pretrain_task(builder: IterativeFinancialDatasetBuilder, knobs: Knobs, model_cfg: ModelConfig,
                  cfg: PretrainConfig) -> FinancialMoiraiPretrain:
    """A fresh module in uni2ts's pre-training task (masking, mixture NLL, AdamW + warmup/cosine)."""
    module = new_module(model_cfg, knobs.patch_size)
    check_window_fits(module, knobs, manifest_variates(builder.manifest(), knobs.calendar))
    return FinancialMoiraiPretrain(
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


def pretrain_loader(builder: IterativeFinancialDatasetBuilder, model: FinancialMoiraiPretrain, model_cfg: ModelConfig,
                    cfg: PretrainConfig, dataset: Any = None) -> DataLoader:
    """The pre-training batches: uni2ts's transform chain per series (drawn with
    `cfg.synthetic_share` from the synthetic corpus), packed `model.max_seq_len` tokens per row,
    `cfg.batch_size` rows, cycling. `dataset` replaces the training split's
    dataset (the throughput benchmark wraps it with timers)."""
    return DataLoader(
        dataset if dataset is not None else builder.load_dataset(model.train_transform_map, cfg.synthetic_share,
                                                                 cfg.symbols),
        batch_size=cfg.batch_size,
        shuffle=True,
        cycle=True,
        num_batches_per_epoch=cfg.val_check_interval,
        collate_fn=_seq_collate(model, model_cfg.max_seq_len, pack=True),
        drop_last=False,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )


def pretrain(
    builder: IterativeFinancialDatasetBuilder,
    knobs: Knobs,
    model_cfg: ModelConfig,
    cfg: PretrainConfig,
    out_dir: Path,
    live_dir: Path,
) -> dict[str, Any] | None:
    """Pre-train a fresh Moirai on the training split; write `out_dir` as a HF model folder."""
    check_scaler_target(model_cfg.scaler, knobs.target)
    torch.set_num_threads(cfg.threads)
    L.seed_everything(knobs.seed, workers=True)
    model = pretrain_task(builder, knobs, model_cfg, cfg)
    train_loader = pretrain_loader(builder, model, model_cfg, cfg)
    val_loader = _window_loader(builder, "val", model, knobs, knobs.prediction_length, cfg.batch_size,
                                num_workers=cfg.num_workers)
    # Pre-training keeps its final weights (validation NLL is monitored and reported, not
    # used to pick a checkpoint: an early, barely trained minimum is not a better start).
    best, tokens = BestWeights(VAL_NLL, restore=False), TokenCounter()
    trainer = _trainer(cfg, live_dir, knobs.seed, [best, tokens], max_steps=cfg.max_steps, log_every_n_steps=1,
                       num_sanity_val_steps=0)
    started = time.monotonic()
    _fit(trainer, model, train_loader, val_loader)
    config = {"knobs": knobs.model_dump(), "model": model_cfg.model_dump(), "pretrain": cfg.model_dump()}
    scale = {"tokens": tokens.total(trainer), "parameters": parameter_count(model.module)}
    result = _save(model, best, trainer, out_dir, started, config, scale)
    return None if result is None else result | scale


def _window_loader(builder, split, model, knobs: Knobs, distance: int, batch_size: int, shuffle: bool = False,
                   num_workers: int = 0):
    """`batch_size` windows per step. Every window has the same token count, so padding
    to exactly that count wastes nothing (packing would merge a whole epoch into one step)."""
    variates = manifest_variates(builder.manifest(), knobs.calendar)
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
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
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
    variates = manifest_variates(builder.manifest(), knobs.calendar)
    check_window_fits(module, knobs, variates)
    model = FinancialMoiraiFinetune(
        **SIGNATURE_ONLY,
        max_dim=max(64, variates),
        module=module,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        log_on_step=True,
        context_length=knobs.context_length,
        prediction_length=knobs.prediction_length,
        patch_size=knobs.patch_size,
        known_future=knobs.calendar,
    )
    train_loader = _window_loader(builder, "train", model, knobs, cfg.train_distance, cfg.batch_size, shuffle=True,
                                  num_workers=cfg.num_workers)
    val_loader = _window_loader(builder, "val", model, knobs, knobs.prediction_length, cfg.batch_size,
                                num_workers=cfg.num_workers)
    best = BestWeights(VAL_NLL)
    stopper = L.pytorch.callbacks.EarlyStopping(monitor=VAL_NLL, patience=cfg.patience, mode="min")
    trainer = _trainer(cfg, live_dir, knobs.seed, [best, stopper], max_epochs=cfg.max_epochs, log_every_n_steps=1,
                       num_sanity_val_steps=0)
    started = time.monotonic()
    _fit(trainer, model, train_loader, val_loader)
    return _save(model, best, trainer, out_dir, started, {"knobs": knobs.model_dump(), "finetune": cfg.model_dump()})


def _save(model, best: BestWeights, trainer: L.Trainer, out_dir: Path, started: float,
          config: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
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
    } | (extra or {})
    seconds = round(time.monotonic() - started, 1)
    if not math.isfinite(summary["best_val_nll"]):
        raise RuntimeError(f"training produced no finite validation NLL (last metrics: {final})")
    if not trainer.is_global_zero:
        return None  # with several devices, only rank 0 writes the model and the metrics
    out_dir.mkdir(parents=True, exist_ok=True)
    save_module(model.module, out_dir)
    (out_dir / "training.json").write_text(json.dumps(config | {"result": summary}, indent=2, default=str))
    logger.info("saved %s after %.1f s: %s", out_dir, seconds, summary)
    return {k: summary[k] for k in NLL_METRICS}  # the `dvc exp show` columns; steps and epochs: training.json
