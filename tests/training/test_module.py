"""Safe loading: weights only from safetensors folders, and one line for what cannot be loaded."""

import pytest
import torch

from finmoirai.params.base import ParamsError
from finmoirai.params.training import ModelConfig
from finmoirai.training.module import WEIGHTS_FILE, load_module, new_module


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
