import json

import numpy as np
import pytest
import torch

from finmoirai.builder import IterativeFinancialDatasetBuilder
from finmoirai.model import FinetuneConfig, ModelConfig, PretrainConfig, check_window_fits, finetune, load_module, new_module, pretrain
from finmoirai.params import Knobs, ParamsError, SplitConfig, parse_section
from tests.helpers import write_feature_dir

KNOBS = Knobs(seed=7, patch_size=16, context_length=64, prediction_length=16)


@pytest.fixture
def builder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    features = write_feature_dir(tmp_path / "features", {"AAA": 1200, "BBB": 1000})
    b = IterativeFinancialDatasetBuilder(tmp_path / "datasets", batch_size=1)
    b.build_dataset(features, SplitConfig("2018-10-01", "2018-10-15"))
    return b


def test_pretrain_then_finetune_real_uni2ts(builder, tmp_path):
    cfg = PretrainConfig(max_steps=4, warmup_steps=1, batch_size=4, val_check_interval=2)
    result = pretrain(builder, KNOBS, ModelConfig(max_seq_len=256), cfg, tmp_path / "pre", tmp_path / "live_pre")
    assert np.isfinite(result["best_val_nll"]) and result["steps"] == 4
    assert (tmp_path / "pre" / "model.safetensors").is_file()
    assert (tmp_path / "live_pre" / "plots" / "metrics" / "val" / "PackedNLLLoss_epoch.tsv").is_file()
    assert (tmp_path / "live_pre" / "plots" / "metrics" / "train" / "PackedNLLLoss_step.tsv").is_file()
    reloaded = load_module(str(tmp_path / "pre"))
    assert reloaded.training  # ready to fine-tune, not left in eval mode
    assert tuple(reloaded.patch_sizes) == (16,)

    ft = FinetuneConfig(init_from=str(tmp_path / "pre"), max_epochs=1, batch_size=8, train_distance=64)
    result = finetune(builder, KNOBS, ft, tmp_path / "fine", tmp_path / "live_fine")
    assert np.isfinite(result["val_nll"])
    saved = json.loads((tmp_path / "fine" / "training.json").read_text())
    assert saved["result"]["steps"] == result["steps"] > 0
    before = load_module(str(tmp_path / "pre")).state_dict()
    after = load_module(str(tmp_path / "fine")).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_window_that_does_not_fit_fails_before_training():
    module = new_module(ModelConfig(max_seq_len=64), patch_size=8)
    with pytest.raises(ParamsError, match="max_seq_len"):
        check_window_fits(module, Knobs(seed=0, patch_size=8, context_length=168, prediction_length=24), num_variates=10)
    with pytest.raises(ParamsError, match="patch_size"):
        check_window_fits(module, Knobs(seed=0, patch_size=32, context_length=64, prediction_length=8), num_variates=1)


def test_bad_params_are_named():
    with pytest.raises(ParamsError, match="model.d_model"):
        parse_section(ModelConfig, {"d_model": 100}, "model")
    with pytest.raises(ParamsError, match="pretrain.warmup_steps"):
        parse_section(PretrainConfig, {"max_steps": 10, "warmup_steps": 20}, "pretrain")
    with pytest.raises(ParamsError, match="unknown key"):
        parse_section(FinetuneConfig, {"max_epoch": 3}, "finetune")
    with pytest.raises(ParamsError, match="patch_size"):
        parse_section(Knobs, {"seed": 0, "patch_size": 30, "context_length": 10, "prediction_length": 2}, "top-level")


def test_missing_model_folder_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(ValueError, match="neither an existing model folder"):
        load_module(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="neither an existing model folder"):
        load_module("models/pretrained_typo")
