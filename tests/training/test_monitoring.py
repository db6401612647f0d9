"""Training is watched while it runs: dvclive's tsv curves and TensorBoard's event files are in
the declared live folder before training ends, and logging changes no byte of the model or
its metrics and opens no network connection (finmoirai/training/loops.py)."""

import socket

import lightning as L
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from finmoirai.params.training import Knobs, ModelConfig, PretrainConfig
from finmoirai.training import loops
from finmoirai.training.loops import pretrain

KNOBS = Knobs(seed=7, patch_size=16, context_length=64, prediction_length=16, target="level", calendar=False)
TRAIN_TSV = ("plots", "metrics", "train", "PackedNLLLoss_step.tsv")
VAL_TSV = ("plots", "metrics", "val", "PackedNLLLoss_epoch.tsv")


def _configs(steps: int = 4):
    return (ModelConfig.shipped("model", max_seq_len=256, scaler="std"),
            PretrainConfig.shipped("pretrain", max_steps=steps, warmup_steps=1, batch_size=4, val_check_interval=2))


def _scalars(board) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(board))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


class Probe(L.Callback):
    """What a user looking at the live folder sees after step 3 of 4, training still running."""

    def __init__(self, live):
        self.live, self.seen = live, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3:
            self.seen = {"tsv": (self.live.joinpath(*TRAIN_TSV).read_text().splitlines(),
                                 self.live.joinpath(*VAL_TSV).read_text().splitlines()),
                         "board": _scalars(self.live / "tensorboard")}


def test_dvclive_and_tensorboard_are_readable_while_training_runs(builder, tmp_path, monkeypatch):
    live = tmp_path / "dvclive" / "pretrain"
    (live / "tensorboard").mkdir(parents=True)
    (live / "tensorboard" / "events.out.tfevents.0.old").write_text("a previous run's")
    probe = Probe(live)
    trainer = loops._trainer
    monkeypatch.setattr(loops, "_trainer", lambda cfg, live_dir, seed, callbacks, **kw: trainer(
        cfg, live_dir, seed, [*callbacks, probe], **kw))
    connections = []
    connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda s, address: (connections.append(address),
                                                                       connect(s, address))[1])

    pretrain(builder, KNOBS, *_configs(), tmp_path / "model", live)

    train_rows, val_rows = probe.seen["tsv"]
    board = probe.seen["board"]
    assert train_rows[0].split("\t")[:2] == ["step", "PackedNLLLoss_step"] and len(train_rows) > 1, train_rows
    assert len(val_rows) == 1 + 1, val_rows  # the validation after step 2
    assert len(board["train/PackedNLLLoss_step"]) == len(train_rows) - 1, board  # the same steps so far
    assert len(board["val/PackedNLLLoss_epoch"]) == 1, board
    after = _scalars(live / "tensorboard")
    assert len(after["train/PackedNLLLoss_step"]) == 4 and len(after["val/PackedNLLLoss_epoch"]) == 2, after
    assert len(after["train/PackedNLLLoss_step"]) > len(board["train/PackedNLLLoss_step"])  # it was mid-run
    assert [float(r.split("\t")[1]) for r in live.joinpath(*TRAIN_TSV).read_text().splitlines()[1:]] == \
        pytest.approx([v for _, v in after["train/PackedNLLLoss_step"]])  # the same curve in both
    assert not (live / "tensorboard" / "events.out.tfevents.0.old").exists()  # one run per folder
    assert not list((live / "plots").rglob("*tfevents*"))  # nothing of TensorBoard's in the DVC output
    assert not [a for a in connections if isinstance(a, tuple)], connections  # no network


def test_tensorboard_changes_no_byte_of_the_model_the_metrics_or_the_plots(builder, tmp_path, monkeypatch):
    both = pretrain(builder, KNOBS, *_configs(3), tmp_path / "both", tmp_path / "live_both")
    only_dvclive = loops.training_loggers
    monkeypatch.setattr(loops, "training_loggers", lambda live_dir: only_dvclive(live_dir)[:1])
    alone = pretrain(builder, KNOBS, *_configs(3), tmp_path / "alone", tmp_path / "live_alone")
    assert both == alone
    assert not (tmp_path / "live_alone" / "tensorboard").exists()
    for name in ("model.safetensors", "config.json", "training.json"):
        assert (tmp_path / "both" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name
    plots = {run: {str(f.relative_to(tmp_path / run)): f.read_bytes() for f in (tmp_path / run / "plots").rglob("*")
                   if f.is_file()} for run in ("live_both", "live_alone")}
    assert plots["live_both"] == plots["live_alone"] and plots["live_both"]  # dvclive's DVC output, byte for byte
