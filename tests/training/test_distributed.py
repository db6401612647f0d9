"""Several devices by params alone: pre-training with DDP on CPU, two processes (gloo), run
through the stage script as DVC runs it (Lightning relaunches that command for rank 1)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finmoirai.data.builder import IterativeFinancialDatasetBuilder
from finmoirai.params.data import SplitConfig
from finmoirai.params.training import ACCELERATORS, PRECISIONS, STRATEGIES, PretrainConfig
from finmoirai.training.module import load_module
from tests.helpers import write_feature_dir

REPO = Path(__file__).resolve().parents[2]
TINY = {"seed": 7, "patch_size": 16, "context_length": 64, "prediction_length": 12, "target": "log_return",
        "model": {"num_layers": 1, "max_seq_len": 256},
        "pretrain": {"max_steps": 4, "warmup_steps": 1, "batch_size": 4, "val_check_interval": 2, "devices": 2,
                     "strategy": "ddp", "threads": 1}}


def test_pretrain_on_two_cpu_processes_with_ddp(tmp_path):
    features = write_feature_dir(tmp_path / "features", {"AAA": 1200, "BBB": 1000})
    IterativeFinancialDatasetBuilder(tmp_path / "data" / "datasets", batch_size=1).build_dataset(
        features, SplitConfig(train_end="2018-10-01", val_end="2018-10-15"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in TINY.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    paths = ["data/datasets", "models/checkpoints/pretrained", "dvclive/pretrain", "metrics/pretrain.json"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    done = subprocess.run([sys.executable, str(REPO / "stages" / "pretrain.py"), *paths], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log and "GLOBAL_RANK: 0, MEMBER: 1/2" in log  # two processes trained
    assert log.count("saved models/checkpoints/pretrained/.partial/0/pretrained") == 1  # rank 0 alone wrote it
    metrics = json.loads((tmp_path / "metrics" / "pretrain.json").read_text())
    assert all(math.isfinite(metrics[k]) for k in ("train_nll", "val_nll", "best_val_nll")), metrics
    assert load_module(str(tmp_path / "models" / "checkpoints" / "pretrained")) is not None
    assert sorted(p.name for p in (tmp_path / "models" / "checkpoints").iterdir()) == ["pretrained"]  # none staged
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".partial", ".old"))]
    board = tmp_path / "dvclive" / "pretrain" / "tensorboard"  # logged live by rank 0 alone
    assert len(list(board.glob("events.out.tfevents.*"))) == 1
    assert (tmp_path / "dvclive" / "pretrain" / "plots" / "metrics" / "train" / "PackedNLLLoss_step.tsv").is_file()


def test_trainer_params_are_lightning_names_and_are_validated():
    from lightning.fabric.connector import _PRECISION_INPUT_STR
    from lightning.pytorch.strategies import StrategyRegistry

    assert set(STRATEGIES) - {"auto"} <= set(StrategyRegistry.available_strategies())
    assert set(PRECISIONS) <= set(_PRECISION_INPUT_STR.__args__)
    assert {"cpu", "gpu", "auto"} <= set(ACCELERATORS)
    from finmoirai.params.base import ParamsError

    for bad, message in [({"precision": "16-mixed"}, "pretrain.precision: 16-mixed needs a GPU"),
                         ({"strategy": "horovod"}, "pretrain.strategy: 'horovod' is not one of"),
                         ({"devices": 2, "strategy": "single_device"}, "runs one process, but devices x num_nodes"),
                         ({"accumulate_grad_batches": 0}, "pretrain.accumulate_grad_batches: must be >= 1"),
                         ({"num_workers": -1}, "pretrain.num_workers: must be >= 0"),
                         ({"accelerator": "npu"}, "pretrain.accelerator: 'npu' is not one of")]:
        with pytest.raises(ParamsError, match=message):
            PretrainConfig.shipped("pretrain", **bad)
