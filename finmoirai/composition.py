"""params.yaml as the Hydra composition of conf/, written the way `dvc exp run` writes it.

With `hydra.enabled` in .dvc/config, every `dvc exp run` composes conf/config.yaml and its
groups (with the `-S` overrides) into params.yaml before it runs, so params.yaml is an output
of conf/ and a hand edit of it is lost at the next experiment. `dvc repro` does not compose:
it reads params.yaml as it is. This module composes with DVC's own function, so the committed
params.yaml is byte for byte what an experiment without overrides writes, and reports the
first key where params.yaml and the composition part (`finmoirai check`, `make repro`).
"""

from __future__ import annotations

import configparser
import tempfile
from pathlib import Path
from typing import Any

import yaml

from finmoirai.params.base import ParamsError

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR, CONFIG_NAME = "conf", "config"  # .dvc/config's hydra section (tests/test_composition.py checks it)


def hydra_settings(root: Path) -> tuple[Path, str] | None:
    """(config folder, config name) when `root`'s .dvc/config enables hydra, else None."""
    parser = configparser.ConfigParser()
    parser.read(root / ".dvc" / "config")
    if not parser.has_section("hydra") or not parser.getboolean("hydra", "enabled", fallback=False):
        return None
    return root / parser.get("hydra", "config_dir", fallback=CONFIG_DIR), parser.get("hydra", "config_name",
                                                                                       fallback=CONFIG_NAME)


def compose(root: Path = REPO, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The text of params.yaml that `dvc exp run -S o1 -S o2 ...` writes in repo `root`
    (Hydra overrides: `model=small`, `patch_size=64`, `+evaluate.market_proxy.crypto=BTCUSD`)."""
    from dvc.utils.hydra import compose_and_dump  # deferred: DVC and Hydra take ~1 s to import
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    settings = hydra_settings(root)
    if settings is None:
        raise ParamsError(f"{root / '.dvc' / 'config'}: hydra is not enabled, so params.yaml is not composed")
    config_dir, config_name = settings
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        try:
            compose_and_dump(out, str(config_dir.resolve()), None, config_name, str(root), list(overrides))
        except (HydraException, OmegaConfBaseException, yaml.YAMLError) as e:
            message = " ".join(str(e).split())
            raise ParamsError(f"{config_dir}: cannot compose {' '.join(overrides) or 'the defaults'}: {message}") \
                from None
        return out.read_text()


def write_params(root: Path = REPO, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Write the composition to `root`/params.yaml (`make params`); returns the path."""
    path = root / "params.yaml"
    path.write_text(compose(root, overrides))
    return path


def first_difference(ours: Any, theirs: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, value in `ours`, value in `theirs`) of the first leaf where two parsed
    params trees differ, or None when they are equal (type included: 1 is not 1.0)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for name in [*ours, *(k for k in theirs if k not in ours)]:
            found = first_difference(ours.get(name, "<absent>"), theirs.get(name, "<absent>"), f"{key}{name}.")
            if found:
                return found
        return None
    if ours == theirs and type(ours) is type(theirs):
        return None
    return key.rstrip("."), ours, theirs


def check_composed(root: Path = REPO, params_path: Path | None = None) -> None:
    """Raise ParamsError, naming the first key that differs, unless params.yaml is the
    composition of conf/ (values and types; comments and layout are not compared)."""
    if hydra_settings(root) is None:
        return
    params_path = params_path or root / "params.yaml"
    found = first_difference(yaml.safe_load(params_path.read_text()), yaml.safe_load(compose(root)))
    if found:
        key, ours, composed = found
        raise ParamsError(
            f"{params_path}: {key} is {ours!r}, but conf/ composes {composed!r}; dvc exp run rewrites params.yaml "
            f"from conf/, so this value would be lost: put it in conf/ (or pass -S {key}=... to dvc exp run) and "
            f"run `make params`")
