import json

import numpy as np
import pytest
import torch

from finmoirai.data.builder import IterativeFinancialDatasetBuilder
from finmoirai.data.targets import CALENDAR_COLUMNS
from finmoirai.params.base import ParamsError
from finmoirai.params.data import SplitConfig
from finmoirai.params.training import FinetuneConfig, Knobs, ModelConfig, PretrainConfig
from finmoirai.training.loops import finetune, pretrain
from finmoirai.training.module import (
    SCALER_FILE,
    PackedZeroMeanScaler,
    check_window_fits,
    load_module,
    new_module,
    save_module,
    scaler_name,
)
from finmoirai.training.tasks import FinancialMoiraiFinetune
from tests.helpers import write_feature_dir

KNOBS = Knobs(seed=7, patch_size=16, context_length=64, prediction_length=16, target="level", calendar=False)


def test_calendar_covariates_reach_the_model_over_the_horizon(builder, tmp_path):
    """With `calendar`, fine-tuning windows carry the 5 calendar variates right after the target
    (MoiraiForecast's order), over context AND horizon, never as a prediction target; the past-only
    covariates stop at the forecast start. Pre-training with them runs on real uni2ts."""
    knobs = KNOBS.replace(target="log_return", calendar=True)
    returns = IterativeFinancialDatasetBuilder(builder.storage_path.parent).for_target("log_return")
    module = new_module(ModelConfig.shipped("model", max_seq_len=256), patch_size=16)
    model = FinancialMoiraiFinetune(min_patches=2, min_mask_ratio=0.1, max_mask_ratio=0.5, max_dim=64,
                                    num_training_steps=None, num_warmup_steps=0, module=module, lr=1e-4,
                                    weight_decay=0.1, context_length=64, prediction_length=16, patch_size=16,
                                    known_future=True)
    window = returns.load_window_dataset("val", model.val_transform_map, context_length=64, prediction_length=16,
                                         patch_size=16, distance=16)[0]
    variate, time, predict = (np.asarray(window[k]) for k in ("variate_id", "time_id", "prediction_mask"))
    k = len(returns.manifest()["covariates"])
    assert sorted(set(variate.tolist())) == list(range(1 + len(CALENDAR_COLUMNS) + k))
    horizon = time[(variate == 0) & predict].min()  # first horizon patch of the target
    calendar = (variate >= 1) & (variate <= len(CALENDAR_COLUMNS))
    assert time[calendar].max() > horizon - 1 and not predict[calendar].any()
    assert time[variate > len(CALENDAR_COLUMNS)].max() < horizon
    plain = FinancialMoiraiFinetune(min_patches=2, min_mask_ratio=0.1, max_mask_ratio=0.5, max_dim=64,
                                    num_training_steps=None, num_warmup_steps=0, module=module, lr=1e-4,
                                    weight_decay=0.1, context_length=64, prediction_length=16, patch_size=16)
    without = returns.load_window_dataset("val", plain.val_transform_map, context_length=64, prediction_length=16,
                                          patch_size=16, distance=16)[0]
    assert len(set(np.asarray(without["variate_id"]).tolist())) == 1 + k

    cfg = PretrainConfig.shipped("pretrain", max_steps=2, warmup_steps=1, batch_size=4, val_check_interval=2)
    result = pretrain(returns, knobs, ModelConfig.shipped("model", max_seq_len=256), cfg, tmp_path / "pre_cal",
                      tmp_path / "live_cal")
    assert np.isfinite(result["best_val_nll"])


def test_pretrain_then_finetune_real_uni2ts(builder, tmp_path):
    cfg = PretrainConfig.shipped("pretrain", max_steps=4, warmup_steps=1, batch_size=4, val_check_interval=2)
    model_cfg = ModelConfig.shipped("model", max_seq_len=256, scaler="std")  # KNOBS: target level
    result = pretrain(builder, KNOBS, model_cfg, cfg, tmp_path / "pre", tmp_path / "live_pre")
    assert np.isfinite(result["best_val_nll"])
    assert set(result) == {"train_nll", "val_nll", "best_val_nll", "tokens", "parameters"}
    assert 4 * 256 < result["tokens"] <= 4 * 4 * 256  # 4 steps of 4 packed rows of 256 patches, padding not counted
    assert json.loads((tmp_path / "pre" / "training.json").read_text())["result"]["steps"] == 4
    assert (tmp_path / "pre" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "pre" / "config.json").read_text())["finmoirai"]["scaler"] == "std"
    assert (tmp_path / "live_pre" / "plots" / "metrics" / "val" / "PackedNLLLoss_epoch.tsv").is_file()
    assert (tmp_path / "live_pre" / "plots" / "metrics" / "train" / "PackedNLLLoss_step.tsv").is_file()
    reloaded = load_module(str(tmp_path / "pre"))
    assert reloaded.training  # ready to fine-tune, not left in eval mode
    assert tuple(reloaded.patch_sizes) == (16,)
    assert result["parameters"] == sum(p.numel() for p in reloaded.parameters())

    ft = FinetuneConfig.shipped("finetune", init_from=str(tmp_path / "pre"), max_epochs=1, batch_size=8,
                         train_distance=64)
    result = finetune(builder, KNOBS, ft, tmp_path / "fine", tmp_path / "live_fine")
    assert np.isfinite(result["val_nll"])
    saved = json.loads((tmp_path / "fine" / "training.json").read_text())
    assert saved["result"]["steps"] > 0 and saved["result"]["val_nll"] == result["val_nll"]
    assert "seconds" not in saved["result"]  # wall-clock time is logged, not stored: same bytes on a rerun
    before = load_module(str(tmp_path / "pre")).state_dict()
    after = load_module(str(tmp_path / "fine")).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_window_that_does_not_fit_fails_before_training():
    module = new_module(ModelConfig.shipped("model", max_seq_len=64), patch_size=8)
    with pytest.raises(ParamsError, match="max_seq_len"):
        check_window_fits(module, KNOBS.replace(patch_size=8, context_length=168, prediction_length=24),
                          variates=10)
    with pytest.raises(ParamsError, match="patch_size"):
        check_window_fits(module, KNOBS.replace(patch_size=32, context_length=64, prediction_length=8),
                          variates=1)


def test_bad_params_are_named():
    with pytest.raises(ParamsError, match="model.d_model"):
        ModelConfig.shipped("model", d_model=100)
    with pytest.raises(ParamsError, match="pretrain.warmup_steps"):
        PretrainConfig.shipped("pretrain", max_steps=10, warmup_steps=20)
    with pytest.raises(ParamsError, match="unknown key"):
        FinetuneConfig.shipped("finetune", max_epoch=3)
    with pytest.raises(ParamsError, match="patch_size"):
        Knobs.parse({"seed": 0, "patch_size": 30, "context_length": 10, "prediction_length": 2,
                              "target": "level", "calendar": False}, "top-level")
    with pytest.raises(ParamsError, match="param target"):
        Knobs.parse({"seed": 0, "patch_size": 32, "context_length": 10, "prediction_length": 2,
                              "target": "price", "calendar": False}, "top-level")


def test_missing_model_folder_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(ValueError, match="neither an existing model folder"):
        load_module(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="neither an existing model folder"):
        load_module("models/pretrained_typo")


def test_zero_mean_scaler_keeps_zero_at_zero_and_survives_save_and_load(tmp_path):
    """The log-return scaler does not add the context mean back: a constant context of 2 gets
    loc 0 and scale sqrt(var + 1e-5 + mean^2); the choice is saved beside the weights and restored."""
    x = torch.tensor([[[2.0], [2.0], [2.0], [2.0]]])
    observed = torch.ones_like(x, dtype=torch.bool)
    sample, variate = torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)
    module = new_module(ModelConfig.shipped("model", scaler="zero_mean"), patch_size=16)
    loc, scale = module.scaler(x, observed, sample, variate)
    assert torch.all(loc == 0) and torch.allclose(scale, torch.sqrt(torch.tensor(4.0 + 1e-5)))
    padding = torch.zeros(1, 4, dtype=torch.long)  # sample_id 0: uni2ts's padding keeps loc 0, scale 1
    loc, scale = module.scaler(x, observed, padding, variate)
    assert torch.all(loc == 0) and torch.all(scale == 1)
    save_module(module, tmp_path / "m")
    loaded = load_module(str(tmp_path / "m"))
    assert type(loaded.scaler) is PackedZeroMeanScaler
    for (name, a), b in zip(module.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    module.save_pretrained(str(tmp_path / "old"))  # a folder written before config.json had the entry
    (tmp_path / "old" / SCALER_FILE).write_text(json.dumps({"scaler": scaler_name(module)}))
    assert type(load_module(str(tmp_path / "old")).scaler) is PackedZeroMeanScaler
    (tmp_path / "old" / SCALER_FILE).unlink()  # a stock folder (the hub's): uni2ts's own scaler
    assert type(load_module(str(tmp_path / "old")).scaler).__name__ == "PackedStdScaler"
    with pytest.raises(ParamsError, match="model.scaler"):
        ModelConfig.shipped("model", scaler="robust")


def test_synthetic_share_zero_pretrains_exactly_as_without_a_corpus(builder, tmp_path):
    """A corpus built but given share 0 changes nothing, so `dvc exp run -S pretrain.synthetic_share=...`
    sweeps over one build, with 0 as the real-only control; a positive share trains on the mix."""
    from finmoirai.data.corpus import merge_features

    corpus = write_feature_dir(tmp_path / "corpus", {"SYN": 700}, start="2018-08-01", seed=3)
    merged = merge_features(tmp_path / "features", corpus, tmp_path / "merged")
    IterativeFinancialDatasetBuilder(tmp_path / "mixed", batch_size=1).build_dataset(merged, SplitConfig(
        train_end="2018-10-01", val_end="2018-10-15"))
    mixed = IterativeFinancialDatasetBuilder(tmp_path / "mixed").for_target("level")
    model_cfg = ModelConfig.shipped("model", max_seq_len=256, scaler="std")
    weights = {}
    for name, data, share in (("plain", builder, None), ("share0", mixed, 0.0), ("share05", mixed, 0.5)):
        cfg = PretrainConfig.shipped("pretrain", max_steps=3, warmup_steps=1, batch_size=4,
                              val_check_interval=3, synthetic_share=share)
        result = pretrain(data, KNOBS, model_cfg, cfg, tmp_path / name, tmp_path / f"live_{name}")
        assert np.isfinite(result["best_val_nll"])
        weights[name] = load_module(str(tmp_path / name)).state_dict()
    assert all(torch.equal(weights["plain"][k], weights["share0"][k]) for k in weights["plain"])
    assert any(not torch.equal(weights["plain"][k], weights["share05"][k]) for k in weights["plain"])


def test_stock_uni2ts_refuses_a_zero_mean_folder_loudly_and_loads_a_std_folder_right(tmp_path):
    """What a user outside this project gets from `MoiraiModule.from_pretrained`: a `zero_mean`
    folder (the default) raises a message naming finmoirai's loader, never a silent PackedStdScaler
    model; a `std` folder is a stock Moirai folder and loads with the same weights."""
    from uni2ts.model.moirai import MoiraiModule
    from uni2ts.module.packed_scaler import PackedStdScaler

    zero = new_module(ModelConfig.shipped("model", scaler="zero_mean"), patch_size=16)
    save_module(zero, tmp_path / "zero")
    with pytest.raises(ValueError, match=r"zero_mean.*finmoirai\.training\.module\.load_module"):
        MoiraiModule.from_pretrained(str(tmp_path / "zero"))
    std = new_module(ModelConfig.shipped("model", scaler="std"), patch_size=16)
    save_module(std, tmp_path / "std")
    stock = MoiraiModule.from_pretrained(str(tmp_path / "std"))
    assert type(stock.scaler) is PackedStdScaler
    for (name, a), b in zip(std.state_dict().items(), stock.state_dict().values()):
        assert torch.equal(a, b), name
