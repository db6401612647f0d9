"""conf/ and params.yaml: the shipped params.yaml is the composition of conf/ that `dvc exp run`
writes, every group option composes into valid params, and a group only moves the params of
the stages it is about."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml

from finmoirai.cli import check
from finmoirai.composition import CONFIG_DIR, CONFIG_NAME, check_composed, compose, first_difference
from finmoirai.config import declared_params, validate_params
from finmoirai.errors import DataError
from finmoirai.params.base import ParamsError, load_yaml

REPO = Path(__file__).resolve().parents[1]
GROUPS = {group.name: sorted(p.stem for p in group.glob("*.yaml")) for group in (REPO / "conf").iterdir()
          if group.is_dir()}
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def test_dvc_composes_conf_into_params_yaml() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert config.getboolean("hydra", "enabled")
    assert (config.get("hydra", "config_dir"), config.get("hydra", "config_name")) == (CONFIG_DIR, CONFIG_NAME)
    assert GROUPS == {"data": ["daily", "hourly", "own_lake", "synthetic"], "model": ["base", "small", "tiny"],
                      "trainer": ["cpu", "ddp", "gpu", "slurm"]}


def test_shipped_params_yaml_is_the_composition_byte_for_byte() -> None:
    """A hand edit of params.yaml fails here (and in `make repro`): `dvc exp run` would drop it."""
    assert (REPO / "params.yaml").read_text() == compose(REPO), "params.yaml is stale: run `make params`"
    check_composed(REPO)


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        out |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
    return out


def _stages_touched(changed: set[str]) -> set[str]:
    """The stages of dvc.yaml that declare a param (or a section above one) that changed."""
    return {stage for stage in STAGES for param in declared_params(stage, REPO / "dvc.yaml")
            if any(key == param or key.startswith(f"{param}.") for key in changed)}


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes_into_valid_params(group: str, option: str) -> None:
    """Each option validates (own_lake up to its lake path, a placeholder to replace), and a
    model or trainer option moves only the training stages' params: data stages never rerun."""
    params = yaml.safe_load(compose(REPO, [f"{group}={option}"]))
    validate_params(params)
    changed = {k for k, v in _leaves(params).items() if _leaves(load_yaml(REPO / "params.yaml")).get(k) != v}
    if group in ("model", "trainer"):
        assert _stages_touched(changed) <= {"pretrain", "finetune", "package"}, changed  # package: the model card
    if group == "data" and option != "hourly":
        assert {"lake", "extract"} & _stages_touched(changed) or option == "daily", changed


def test_gpu_groups_compose_what_a_gpu_run_needs() -> None:
    """`dvc exp run -S model=small -S trainer=gpu` (run on a GPU machine; composed and checked here)."""
    params = yaml.safe_load(compose(REPO, ["model=small", "trainer=gpu"]))
    validate_params(params)
    assert params["model"] | {} == {**load_yaml(REPO / "params.yaml")["model"], "d_model": 384, "num_layers": 6}
    for stage in ("pretrain", "finetune"):
        assert {k: params[stage][k] for k in ("accelerator", "precision", "devices", "num_workers")} == {
            "accelerator": "gpu", "precision": "bf16-mixed", "devices": 1, "num_workers": 4}
    slurm = yaml.safe_load(compose(REPO, ["trainer=slurm", "model=base"]))
    validate_params(slurm)
    assert {k: slurm["pretrain"][k] for k in ("devices", "num_nodes", "strategy")} == {
        "devices": 4, "num_nodes": 2, "strategy": "ddp"}
    assert slurm["model"]["d_model"] == 768 and slurm["finetune"]["num_nodes"] == 2


def test_one_key_overridden_on_top_of_the_groups() -> None:
    params = yaml.safe_load(compose(REPO, ["data=daily", "patch_size=16", "pretrain.precision=bf16-mixed"]))
    assert (params["patch_size"], params["extract"]["frequency"]) == (16, "1d")
    assert (params["pretrain"]["precision"], params["finetune"]["precision"]) == ("bf16-mixed", "32-true")
    assert params["split"]["train_end"] == "2016-01-01"  # a date stays a string: DVC reads it


def test_a_hand_edit_of_params_yaml_is_named(tmp_path: Path) -> None:
    params = load_yaml(REPO / "params.yaml")
    params["model"]["num_layers"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ParamsError, match=r"model\.num_layers is 3, but conf/ composes 2; dvc exp run rewrites"):
        check_composed(REPO, tmp_path / "params.yaml")
    assert first_difference({"a": {"b": 1}}, {"a": {"b": 1.0}}) == ("a.b", 1, 1.0)
    assert first_difference({"a": 1}, {"a": 1, "c": 2}) == ("c", "<absent>", 2)


def test_an_unknown_group_or_key_is_one_line() -> None:
    with pytest.raises(ParamsError, match=r"cannot compose model=huge: .*model.*huge"):
        compose(REPO, ["model=huge"])
    with pytest.raises(ParamsError, match=r"cannot compose modl\.d_model=128: Could not override 'modl\.d_model'"):
        compose(REPO, ["modl.d_model=128"])


def test_an_unquoted_date_in_params_yaml_gets_the_fix(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("train_end: '2019-01-01'", "train_end: 2019-01-01")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"^param split\.train_end: 2019-01-01 is an unquoted date, which DVC cannot "
                                          r"read .*write it quoted in .*: \"2019-01-01\""):
        check(tmp_path / "params.yaml")


def test_check_validates_an_experiment_before_it_runs(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    assert check(overrides=["data=daily"])[0] == "conf/ with data=daily: 20 top-level keys valid"
    with pytest.raises(DataError, match="param lake.path: /path/to/your/lake does not exist"):
        check(overrides=["data=own_lake"])


def test_the_published_schema_is_params_current_schema() -> None:
    """params.schema.json (for editors: .vscode/settings.json maps it to params.yaml) is what
    `finmoirai schema` prints for the Params of this commit."""
    from finmoirai.cli import params_schema

    published = (REPO / "params.schema.json").read_text()
    assert published == params_schema(), "regenerate it: finmoirai schema > params.schema.json"
