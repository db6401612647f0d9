"""Pre-training throughput: how fast the real training step is, and how much of it is data.

For the default module (params.yaml's `model`) and a Moirai-small-sized one (d_model 384,
6 layers), at patch sizes 32 and 64, on the built datasets (`make repro` or `dvc repro build`
first), it runs uni2ts's pre-training step by hand, exactly as Lightning would (training_step,
backward, AdamW, the warmup/cosine scheduler) and prints:

- full: patch tokens per second of the whole step through the real data pipeline (uni2ts's
  per-series transforms, packing collation) with `pretrain.num_workers` of params.yaml;
- bare: patch tokens per second of forward + backward + optimiser on the same batches, built
  beforehand;
- full / bare time per token: the data-loading overhead (1.0 = the model never waits);
- the share of a full step's time in uni2ts transforms, collation, forward, backward and the
  optimiser (with num_workers 0: the transforms run in the training process and are timed
  there; with workers they overlap, and "data" is only the wait for the next batch).

    .venv/bin/python bench/train_throughput.py                 # both modules, patch 32 and 64
    .venv/bin/python bench/train_throughput.py --steps 40 --modules default --set pretrain.num_workers=1

Patch tokens are the non-padding tokens of a packed batch (sample_id > 0): what the model
computes on. Compare the ratios within one run; the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml
from seeds import apply_override  # `key.sub=value` as dvc exp run -S (a sibling script)

from finmoirai.data.builder import IterativeFinancialDatasetBuilder
from finmoirai.params import Params
from finmoirai.params.training import ModelConfig, PretrainConfig
from finmoirai.training.loops import pretrain_loader, pretrain_task

REPO = Path(__file__).resolve().parents[1]
SMALL = {"d_model": 384, "num_layers": 6}  # Moirai-small's width and depth
PHASES = ("transforms", "collate", "forward", "backward", "optimiser")


class TimedDataset(torch.utils.data.Dataset):
    """The training dataset with the seconds spent in its __getitem__ (uni2ts's transforms)."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset, self.seconds = dataset, 0.0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        started = time.perf_counter()
        item = self.dataset[index]
        self.seconds += time.perf_counter() - started
        return item


def optimiser(model: L.LightningModule):
    config = model.configure_optimizers()
    return config["optimizer"], config["lr_scheduler"]["scheduler"]


def train_step(model, opt, scheduler, batch, index: int, clock: dict[str, float]) -> None:
    """One step as Lightning runs it (automatic optimisation, no gradient clipping configured)."""
    started = time.perf_counter()
    loss = model.training_step(batch, index)
    forward = time.perf_counter()
    loss.backward()
    backward = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    scheduler.step()
    done = time.perf_counter()
    clock["forward"] += forward - started
    clock["backward"] += backward - forward
    clock["optimiser"] += done - backward


def tokens(batch: dict) -> int:
    return int((batch["sample_id"] > 0).sum())


def measure(builder, experiment, model_cfg: ModelConfig, cfg: PretrainConfig, steps: int, warmup: int) -> dict:
    torch.set_num_threads(cfg.threads)
    L.seed_everything(experiment.seed, workers=True)
    model = pretrain_task(builder, experiment, model_cfg, cfg)
    timed = TimedDataset(builder.load_dataset(model.train_transform_map, cfg.synthetic_share))
    loader = iter(pretrain_loader(builder, model, model_cfg, cfg, dataset=timed))
    opt, scheduler = optimiser(model)
    model.train()
    clock = dict.fromkeys(("data", *PHASES), 0.0)
    batches, count, elapsed = [], 0, 0.0
    for index in range(warmup + steps):
        if index == warmup:  # the first steps pay for worker start-up and allocator warm-up
            clock, timed.seconds, count = dict.fromkeys(clock, 0.0), 0.0, 0
            elapsed = time.perf_counter()
        started = time.perf_counter()
        batch = next(loader)
        clock["data"] += time.perf_counter() - started
        train_step(model, opt, scheduler, batch, index, clock)
        if index >= warmup:
            batches.append(batch)
            count += tokens(batch)
    full_seconds = time.perf_counter() - elapsed
    clock["transforms"] = timed.seconds if cfg.num_workers == 0 else 0.0
    clock["collate"] = clock["data"] - clock["transforms"]

    bare_clock = dict.fromkeys(PHASES, 0.0)
    started = time.perf_counter()
    for index, batch in enumerate(batches):
        train_step(model, opt, scheduler, batch, index, bare_clock)
    bare_seconds = time.perf_counter() - started
    return {"tokens_per_step": count / steps, "full": count / full_seconds, "bare": count / bare_seconds,
            "shares": {k: clock[k] / full_seconds for k in PHASES}, "step_seconds": full_seconds / steps,
            "bare_step_seconds": bare_seconds / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="data/datasets", help="built datasets (the build stage's output)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--patch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--modules", nargs="+", default=["default", "small"], choices=["default", "small"])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml", help="the params file --set applies to")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override params.yaml, as dvc exp run -S (e.g. pretrain.num_workers=1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # training_step's self.log without a Trainer, worker notices
    params = yaml.safe_load(args.params.read_text())
    for assignment in args.set:
        apply_override(params, assignment)
    params = Params.parse(params)
    cfg = params.pretrain
    print(f"pretrain.batch_size={cfg.batch_size} model.max_seq_len={params.model.max_seq_len} "
          f"num_workers={cfg.num_workers} threads={cfg.threads} steps={args.steps}")
    print(f"{'module':8} {'patch':>5} {'tokens/step':>11} {'full tok/s':>10} {'bare tok/s':>10} {'full/bare':>9} "
          f"{'step s':>7}  " + " ".join(f"{p:>10}" for p in PHASES))
    for name in args.modules:
        model_cfg = params.model
        if name == "small":
            model_cfg = model_cfg.replace(**SMALL)
        for patch in args.patch_sizes:
            experiment = params.knobs.replace(patch_size=patch)
            builder = IterativeFinancialDatasetBuilder(args.datasets).for_target(experiment.target)
            r = measure(builder, experiment, model_cfg, cfg, args.steps, args.warmup)
            shares = " ".join(f"{100 * r['shares'][p]:9.1f}%" for p in PHASES)
            print(f"{name:8} {patch:5d} {r['tokens_per_step']:11.0f} {r['full']:10.0f} {r['bare']:10.0f} "
                  f"{r['bare'] / r['full']:9.2f} {r['step_seconds']:7.3f}  {shares}", flush=True)


if __name__ == "__main__":
    main()
