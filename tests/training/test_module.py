"""Safe loading: weights only from safetensors folders, and one line for what cannot be loaded."""

import pytest
import torch

from finmoirai.params.base import ParamsError
from finmoirai.params.training import ModelConfig
from finmoirai.training.module import (
    SCALERS,
    WEIGHTS_FILE,
    PackedRecipeScaler,
    PackedZeroMeanScaler,
    load_module,
    new_module,
    save_module,
)


@pytest.fixture
def saved(tmp_path):
    module = new_module(ModelConfig.shipped("model"), patch_size=16)
    module.save_pretrained(str(tmp_path / "m"))
    return tmp_path / "m", module


def test_a_saved_folder_loads_its_safetensors_weights(saved):
    folder, module = saved
    reloaded = load_module(str(folder))
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), reloaded.state_dict().values()))


def test_pickled_weights_are_never_loaded(saved):
    folder, module = saved
    (folder / WEIGHTS_FILE).unlink()
    torch.save(module.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ParamsError, match=rf"^{folder}: no model.safetensors: it has pickled weights "
                                          r"\(pytorch_model.bin\), which are never loaded; save the model"):
        load_module(str(folder))


def test_corrupt_weights_name_the_folder(saved):
    folder, _ = saved
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ParamsError, match=rf"^{folder}: cannot load the model \("):
        load_module(str(folder))


def test_an_unreachable_hub_id_says_to_use_a_local_folder(tmp_path, monkeypatch):
    """Offline (no network is reached: the hub client is told it is offline, and its cache is empty)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(ParamsError, match=r"^param finetune.init_from: cannot load Salesforce/moirai-1.1-R-small "
                                          r"from the Hugging Face hub \(.*\); offline, download it once .* "
                                          r"set finetune.init_from to that local folder"):
        load_module("Salesforce/moirai-1.1-R-small")


def packed_window():
    """One packed row, patch width 4: sample 1 holds a target (variate 0, its last token the
    horizon) and a covariate near 5 (variate 1); sample 2 a single short target; then padding."""
    torch.manual_seed(0)
    x = torch.randn(1, 9, 4)
    x[0, 3:6] += 5.0
    sample = torch.tensor([[1, 1, 1, 1, 1, 1, 2, 2, 0]])
    variate = torch.tensor([[0, 0, 0, 1, 1, 1, 0, 0, 0]])
    time = torch.tensor([[0, 1, 2, 0, 1, 2, 0, 1, 0]])
    horizon = torch.tensor([[False, False, True, False, False, False, False, True, False]])
    context = torch.ones_like(x, dtype=torch.bool) & ~horizon.unsqueeze(-1)
    return x, context, sample, variate, time, horizon


def test_the_recipe_scaler_without_options_is_the_plain_scaler():
    x, context, sample, variate, time, horizon = packed_window()
    for name in ("zero_mean", "std"):
        plain = SCALERS[name]()(x, context, sample, variate)
        recipe = PackedRecipeScaler(name)(x, context, sample, variate, time, horizon)
        assert all(torch.equal(a, b) for a, b in zip(plain, recipe))


def test_covariates_are_centred_and_the_target_keeps_its_scaler():
    """covariate_scaler std: the covariate (mean about 5) is shifted by its mean and divided by
    its std, instead of being divided by its root mean square (about 5) with no shift."""
    x, context, sample, variate, time, horizon = packed_window()
    loc, scale = PackedRecipeScaler("zero_mean", "std")(x, context, sample, variate, time, horizon)
    plain_loc, plain_scale = PackedZeroMeanScaler()(x, context, sample, variate)
    cov = x[0, 3:6].double()
    assert torch.equal(loc[0, :3], plain_loc[0, :3]) and torch.equal(scale[0, :3], plain_scale[0, :3])
    assert torch.allclose(loc[0, 3:6, 0], cov.mean().float().expand(3))
    assert torch.allclose(scale[0, 3:6, 0], torch.sqrt(cov.var() + 1e-5).float().expand(3))
    assert plain_scale[0, 3, 0] > 4 and scale[0, 3, 0] < 2
    assert loc[0, 8, 0] == 0 and scale[0, 8, 0] == 1  # padding


def test_the_recency_weighted_scale_by_hand():
    """scale_halflife h: the target's scale is sqrt(sum w x^2 / sum w + 1e-5), w = 2^-(age / h),
    age in bars before the last context bar; a very long half-life is the plain mean square."""
    x, context, sample, variate, time, horizon = packed_window()
    _, scale = PackedRecipeScaler("zero_mean", "same", 3.0)(x, context, sample, variate, time, horizon)
    bars = x[0, :2].reshape(-1).double()  # sample 1's target context: 8 bars, ages 7 .. 0
    weight = 2.0 ** (-torch.arange(7, -1, -1, dtype=torch.float64) / 3.0)
    expected = torch.sqrt((weight * bars**2).sum() / weight.sum() + 1e-5)
    assert torch.allclose(scale[0, :3, 0].double(), expected.expand(3), atol=1e-6)
    bars2 = x[0, 6].double()  # sample 2: its own 4 bars, ages 3 .. 0
    weight2 = 2.0 ** (-torch.arange(3, -1, -1, dtype=torch.float64) / 3.0)
    assert torch.allclose(scale[0, 6:8, 0].double(),
                          torch.sqrt((weight2 * bars2**2).sum() / weight2.sum() + 1e-5).expand(2), atol=1e-6)
    _, long = PackedRecipeScaler("zero_mean", "same", 1e12)(x, context, sample, variate, time, horizon)
    assert torch.allclose(long[0, 0, 0].double(), torch.sqrt((bars**2).mean() + 1e-5), atol=1e-6)
    plain = PackedZeroMeanScaler()(x, context, sample, variate)
    assert torch.equal(long[0, 3:6], plain[1][0, 3:6])  # the covariate: the target's scaler, unweighted


def test_a_recipe_folder_round_trips_and_stock_uni2ts_refuses_it(tmp_path):
    from uni2ts.model.moirai import MoiraiModule

    module = new_module(ModelConfig.shipped("model", scaler="std", covariate_scaler="std", scale_halflife=24),
                        patch_size=4)
    save_module(module, tmp_path / "m")
    loaded = load_module(str(tmp_path / "m"))
    assert isinstance(loaded.scaler, PackedRecipeScaler)
    assert (loaded.scaler.target, loaded.scaler.covariates, loaded.scaler.halflife) == ("std", "std", 24)
    x, context, sample, variate, time, horizon = packed_window()
    inputs = (x, context | horizon.unsqueeze(-1), sample, time, variate, horizon, torch.full((1, 9), 4))
    with torch.no_grad():
        assert torch.equal(module.eval()(*inputs).log_prob(x), loaded.eval()(*inputs).log_prob(x))
    with pytest.raises(ValueError, match="covariate_scaler=std,scale_halflife=24.*load_module"):
        MoiraiModule.from_pretrained(str(tmp_path / "m"))
    with pytest.raises(ParamsError, match="model.covariate_scaler"):
        ModelConfig.shipped("model", covariate_scaler="robust")
    with pytest.raises(ParamsError, match="model.scale_halflife"):
        ModelConfig.shipped("model", scale_halflife=0)


def test_attention_dropout_is_off_when_the_model_forecasts(tmp_path):
    """uni2ts applies attention dropout in eval mode too; a loaded or fresh module forecasts
    deterministically, and training mode gets its dropout back."""
    module = new_module(ModelConfig.shipped("model", dropout=0.5), patch_size=4)
    x, context, sample, variate, time, horizon = packed_window()
    inputs = (x, context | horizon.unsqueeze(-1), sample, time, variate, horizon, torch.full((1, 9), 4))

    def nll():
        with torch.no_grad():
            return -module(*inputs).log_prob(x)

    module.eval()
    assert torch.equal(nll(), nll())
    module.train()
    torch.manual_seed(0)
    assert not torch.equal(nll(), nll())
    save_module(module, tmp_path / "m")
    module = load_module(str(tmp_path / "m")).eval()
    assert torch.equal(nll(), nll())
    module.save_pretrained(str(tmp_path / "stock"))  # a stock folder (the hub's format) too
    module = load_module(str(tmp_path / "stock")).eval()
    assert torch.equal(nll(), nll())
