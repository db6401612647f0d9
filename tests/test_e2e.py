"""End to end: real `dvc repro` and `dvc exp run` in a temporary git + DVC copy of the repo."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e

TINY = {
    "patch_size": 16,
    "context_length": 64,
    "prediction_length": 12,  # context >= 5x horizon (min_context_ratio)
    "extract": {"symbols": ["BTC", "ETH", "SPY"], "asset_classes": ["crypto", "equity"], "years": [2018, 2019]},
    "features": {"market_proxy": {"crypto": "BTC", "equity": "SPY"}},
    "model": {"num_layers": 1, "max_seq_len": 256},
    "pretrain": {"max_steps": 4, "warmup_steps": 1, "batch_size": 4, "val_check_interval": 2},
    "finetune": {"max_epochs": 1, "batch_size": 16, "train_distance": 400},
    "baselines": {"num_samples": 50},
    "evaluate": {"stride": 240, "num_samples": 20, "plot_assets": 1},
}


def _merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _run(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
                             f"{done.stderr[-4000:]}")
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the tracked files, its own git history and DVC cache, tiny params."""
    return tiny_repo(tmp_path_factory.mktemp("repo"), TINY)


def tiny_repo(dest: Path, *overrides: dict, groups: dict[str, str] | None = None) -> Path:
    """A copy of the tracked files at `dest`, committed to a git repository of its own, whose
    conf/ composes the shipped configuration with `groups` chosen (e.g. {"data": "daily"}) and
    then each of `overrides` in turn (conf/tiny.yaml, last in the defaults list); params.yaml is
    that composition, so `dvc repro` and every `dvc exp run` (which composes) see the same."""
    from finmoirai.composition import write_params

    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, tracked.split("\0")):
        if rel == "dvc.lock" or not (REPO / rel).exists():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    tiny: dict = {}
    for override in overrides:
        tiny = _merge(tiny, copy.deepcopy(override))
    (dest / "conf" / "tiny.yaml").write_text("# @package _global_\n" + yaml.safe_dump(tiny, sort_keys=False))
    config = (dest / "conf" / "config.yaml").read_text()
    for group, choice in (groups or {}).items():
        config, found = re.subn(rf"^(  - {group}: )\S+", rf"\g<1>{choice}", config, flags=re.M)
        assert found == 1, group
    head, defaults, rest = re.match(r"(.*?^defaults:\n)((?:  - [^\n]*\n)+)(.*)", config, re.S | re.M).groups()
    (dest / "conf" / "config.yaml").write_text(f"{head}{defaults}  - tiny\n{rest}")
    write_params(dest)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "test@example.com"],
        ["git", "config", "user.name", "test"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "tiny copy"],
    ):
        _run(cmd, dest)
    return dest


def _metrics(repo: Path) -> dict:
    return json.loads((repo / "metrics" / "evaluate.json").read_text())


def test_repro_runs_every_stage_and_metrics_are_finite(repo):
    out = _run(["dvc", "repro"], repo)
    for stage in ("lake", "extract", "preprocess", "features", "build", "pretrain", "finetune", "baselines",
                  "evaluate", "package", "forecast"):
        assert f"Running stage '{stage}'" in out
    metrics = _metrics(repo)
    for model in ("moirai", "pretrained", "random_walk", "rw_ewma", "garch_t", "seasonal_naive", "auto_ets"):
        for name in ("crps", "msis", "coverage_80"):
            assert math.isfinite(metrics[model][name]), (model, name, metrics[model])
    assert metrics["reference"] == "garch_t" and metrics["scored"] == "test"
    for period in ("val", "test"):  # the headline for both periods, side by side
        head = metrics[period]
        assert head["windows"] > 0 and head["skill_lo"] <= head["skill"] <= head["skill_hi"], (period, head)
        assert 0.0 <= head["dm_p"] <= 1.0 and head["qlike"] > 0
    assert metrics["test"]["qlike"] == metrics["moirai"]["qlike"]
    details = json.loads((repo / "metrics" / "evaluate_details.json").read_text())
    for name in ("sq_error", "abs_error", "sharpe", "coverage_50", "qlike"):  # the full table: details and report
        assert math.isfinite(details["models"]["moirai"][name]), name
    assert math.isfinite(details["buy_and_hold"]["sharpe"])
    assert set(details["skill_vs"]["moirai"]) == {"random_walk", "rw_ewma", "garch_t", "seasonal_naive", "auto_ets"}
    assert any(v["in_set"] for v in details["mcs"].values())
    report = (repo / "metrics" / "report.md").read_text()
    assert "| moirai |" in report and "## CRPS per asset" in report and "## Data quality per asset" in report
    quality = json.loads((repo / "metrics" / "data_quality.json").read_text())
    assert quality["assets"] == 3 and quality["rows_out"] > 0
    for stage in ("pretrain", "finetune"):
        nll = json.loads((repo / "metrics" / f"{stage}.json").read_text())
        assert math.isfinite(nll["val_nll"]) and math.isfinite(nll["train_nll"])
    pretrained = json.loads((repo / "metrics" / "pretrain.json").read_text())
    point = json.loads((repo / "plots" / "data" / "scaling.json").read_text())  # the scaling study's plot data
    assert point == [{"pretrain_tokens": pretrained["tokens"], "parameters": pretrained["parameters"],
                      "val_skill": metrics["val"]["skill"], "test_skill": metrics["test"]["skill"]}]
    assert pretrained["tokens"] > 0 and pretrained["parameters"] > 0
    assert (repo / "models" / "finetuned" / "model.safetensors").is_file()
    assert list((repo / "plots" / "forecasts").glob("*.png"))
    assert not (repo / "data" / "datasets" / ".tmp").exists()
    shown = _run(["dvc", "exp", "show", "--no-pager", "--csv"], repo).splitlines()[0]
    for column in ("test.skill", "val.skill", "test.skill_lo", "val.dm_p", "moirai.crps", "moirai.qlike", "val_nll"):
        assert column in shown, shown


def test_second_repro_does_nothing(repo):
    out = _run(["dvc", "repro"], repo)
    assert "Running stage" not in out, out
    status = _run(["dvc", "status"], repo)
    assert "up to date" in status.lower(), status


def _forecast(repo: Path, *args: str) -> str:
    return _run([str(Path(sys.executable).parent / "finmoirai"), "forecast", *args], repo)


def test_forecast_as_of_a_test_bar_is_what_evaluate_scored_there(repo, tmp_path):
    """`finmoirai forecast` with the packaged models/finetuned, as of the bar before one of
    evaluate's test origins, on the e2e lake: the same windows' inputs through the same data
    code with the folder's statistics, the same window seed, so the very same sample paths:
    every quantile equals evaluate's (data/evaluate/forecasts.parquet). The Parquet schema is
    the documented one. Then the folder alone, copied to an empty directory, forecasts too."""
    import pandas as pd

    from finmoirai.evaluation.forecast_table import FORECAST_COLUMNS, quantile_column
    from finmoirai.forecasting.forecast import DEFAULT_QUANTILES

    scored = pd.read_parquet(repo / "data" / "evaluate" / "forecasts.parquet")
    scored = scored[scored["model"] == "moirai"]
    origin = scored[scored["symbol"] == "ETH"]["origin"].drop_duplicates().iloc[1]  # a test origin (not the first)
    window = scored[(scored["symbol"] == "ETH") & (scored["origin"] == origin)].reset_index(drop=True)
    asof = window["asof"].iloc[0]
    out = _forecast(repo, "--model", "models/finetuned", "--lake", "data/lake", "--symbols", "ETH",
                    "--asof", asof.isoformat(), "--out", str(tmp_path / "fc"), "--sample-paths")
    assert "ETH: 12 bars from" in out, out
    table = pd.read_parquet(tmp_path / "fc" / "forecast.parquet")
    levels = [quantile_column(kind, q) for q in DEFAULT_QUANTILES for kind in ("price", "return")]
    assert list(table.columns) == [*FORECAST_COLUMNS, *levels, "mean_price"]
    for column in ("asof", "origin", "timestamp"):
        assert str(table[column].dtype) == "datetime64[us, UTC]", (column, table[column].dtype)
    assert table["step"].tolist() == list(range(1, 13)) and (table["origin"] == origin).all()
    assert table["timestamp"].tolist() == window["timestamp"].tolist()
    for column in ["last_close", *levels, "mean_price"]:
        np_equal = (table[column].to_numpy() == window[column].to_numpy()).all()
        assert np_equal, (column, table[column].tolist(), window[column].tolist())
    samples = pd.read_parquet(tmp_path / "fc" / "samples.parquet")
    assert len(samples) == 20 * 12 and set(samples.columns) == {"symbol", "origin", "sample", "step", "timestamp",
                                                                   "price"}
    assert (tmp_path / "fc" / "fan" / "ETH.png").is_file()

    alone = tmp_path / "empty"
    shutil.copytree(repo / "models" / "finetuned", alone / "finetuned")
    shutil.copytree(repo / "data" / "lake", alone / "lake")
    _run([str(Path(sys.executable).parent / "finmoirai"), "forecast", "--model", "finetuned", "--lake", "lake",
          "--symbols", "ETH", "--asof", asof.isoformat(), "--out", "fc", "--no-plots"], alone)
    again = pd.read_parquet(alone / "fc" / "forecast.parquet")
    pd.testing.assert_frame_equal(again, table)


def test_forecast_stage_and_model_card(repo):
    """The forecast stage's artifact starts after the lake's last bar, for every trained asset;
    the model card is the run's: its numbers are metrics/evaluate.json's."""
    import pandas as pd

    table = pd.read_parquet(repo / "data" / "forecast" / "forecast.parquet")
    assert sorted(table["symbol"].unique()) == ["BTC", "ETH", "SPY"] and table.groupby("symbol").size().eq(12).all()
    assert (table["origin"] > table["asof"]).all() and table["asof"].max() >= pd.Timestamp("2019-09-30", tz="UTC")
    card = (repo / "models" / "finetuned" / "README.md").read_text()
    head = _metrics(repo)
    assert f"{head['test']['skill']:.4f}" in card and f"{head['val']['skill']:.4f}" in card
    assert f"{head['garch_t']['crps']:.4f}" in card and "## What it is not" in card
    assert "BTC (crypto, 24/7)" in card and "finmoirai forecast --model models/finetuned" in card
    for name in ("pretrained", "finetuned"):
        files = {p.name for p in (repo / "models" / name).iterdir()}
        assert {"config.json", "model.safetensors", "forecast.json", "training.json", "README.md"} <= files, files
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:  # what DVC's model registry and Studio read
        artifacts = dvc_repo.artifacts.read()["dvc.yaml"]
    assert {name: (a.path, a.type) for name, a in artifacts.items()} == {
        "finmoirai-pretrained": ("models/pretrained", "model"), "finmoirai-finetuned": ("models/finetuned", "model")}


@pytest.mark.parametrize(("args", "message"), [
    (["--symbols", "DOGE"], r"--symbols DOGE: the model has no statistics for it \(it was trained on BTC, ETH, SPY\)"),
    (["--symbols", "ETH", "--asof", "2030-01-01"], r"--asof 2030-01-01 00:00:00\+00:00: beyond the lake's data: ETH's "
                                                   "last bar is"),
    (["--symbols", "ETH", "--asof", "2018-01-01T02:00Z"],  # the asset or its market proxy, whichever comes first
     r"(BTC|ETH): too little history up to 2018-01-01 02:00:00\+00:00 for the model's features"),
    (["--symbols", "ETH", "--asof", "2017-06-01"], "--lake data/lake: no 1h bars of BTC, ETH from 2018 up to"),
    (["--symbols", "ETH", "--asof", "yesterday"], "--asof yesterday: not a time"),
])
def test_forecast_mistakes_are_one_line(repo, tmp_path, args, message):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([str(Path(sys.executable).parent / "finmoirai"), "forecast", "--model", "models/finetuned",
                           "--lake", "data/lake", "--out", str(tmp_path / "fc"), *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert re.match(f"error: {message}", last), done.stderr[-2000:]
    assert not (tmp_path / "fc" / "forecast.parquet").exists()


# What an interrupted stage may leave: for each stage, its DVC outputs (dvc.yaml), the folder
# whose files mean the stage is writing them, and the output it writes as it runs instead of
# staging it (None: all are staged). build stages its datasets inside data/datasets/.partial/
# (finmoirai/atomic.py); pretrain stages its model and metrics inside models/checkpoints/pretrained/.partial/,
# and is past its first training step once dvclive has written a curve into its live folder.
INTERRUPTED = {
    "build": (("data/datasets",), "data/datasets", ".partial", None),  # the staging folder: the block has begun
    "pretrain": (("models/checkpoints/pretrained", "dvclive/pretrain/plots", "metrics/pretrain.json"),
                 "dvclive/pretrain/plots", "*.tsv", "dvclive/pretrain/plots"),
}


def _digest(path: Path) -> dict[str, str] | None:
    """Every file under `path` (or `path` itself) by relative name -> sha256, its staging folder
    (`.partial/`) left out; None when there is nothing else."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                 and ".partial" not in p.relative_to(path).parts)
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files} or None


def _leftovers(repo: Path) -> list[str]:
    """Staging and superseded copies anywhere in the workspace: a `.partial/` inside an output,
    or a `.name.partial` / `.name.old` beside one (finmoirai/atomic.py's fallback layout)."""
    return sorted(str(p.relative_to(repo)) for top in repo.iterdir() if top.name not in (".git", ".dvc")
                  for p in (top, *(top.rglob("*") if top.is_dir() else ())) if p.name.endswith((".partial", ".old")))


def _written_since(folder: Path, pattern: str, since: float) -> bool:
    """Whether an entry matching `pattern` under `folder` was written after `since` (the live
    curves of the previous run are still there until DVC removes the stage's outputs)."""
    for path in folder.rglob(pattern):
        try:
            if path.stat().st_mtime > since:
                return True
        except FileNotFoundError:  # removed under our feet, by DVC or the stage
            continue
    return False


def _interrupt_stage(repo: Path, stage: str, sig: signal.Signals, writing: str, started_glob: str,
                     log: Path) -> int:
    """Run `dvc repro -f -s stage`, send `sig` to dvc and the stage once `writing` has a
    `started_glob` entry (the stage is inside its atomic block), and return dvc's exit code."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    started = time.time()  # the previous run's files are older; this run's stage starts seconds later
    with log.open("w") as sink:
        proc = subprocess.Popen(["dvc", "repro", "--force", "--single-item", stage], cwd=repo, env=env,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not _written_since(repo / writing, started_glob, started):  # this run's stage is writing
            assert proc.poll() is None, (f"`dvc repro -f -s {stage}` ended ({proc.returncode}) before it could be "
                                         f"interrupted while writing {writing}:\n{log.read_text()[-4000:]}")
            assert time.monotonic() < deadline, f"{writing} never appeared:\n{log.read_text()[-4000:]}"
            time.sleep(0.02)
        assert proc.poll() is None, f"{stage} finished before the signal:\n{log.read_text()[-4000:]}"
        os.killpg(proc.pid, sig)  # dvc and the stage, as Ctrl-C in a terminal does
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
@pytest.mark.parametrize("stage", list(INTERRUPTED))
def test_interrupted_stage_then_repro_gives_the_same_outputs(repo, tmp_path, stage, sig):
    """Ctrl-C (SIGINT) or a kill -9 of `dvc repro` while a stage writes its outputs leaves no
    half-written output, and the next plain `dvc repro`, which restores the stage from its run
    cache without running any of our code, gives back exactly the uninterrupted run's outputs
    and lock, with nothing staged left behind: a killed run's staging folder was inside an
    output, which DVC removes before it restores one."""
    outs, writing, started_glob, live = INTERRUPTED[stage]
    lock = (repo / "dvc.lock").read_text()
    reference = {out: _digest(repo / out) for out in outs}
    assert all(reference.values()), reference
    before = set(_leftovers(repo))  # none, unless an earlier test failed: each test checks its own
    for _attempt in range(3):  # again when the signal came after the stage had ended (DVC ignores SIGINT while
        code = _interrupt_stage(repo, stage, sig, writing, started_glob, tmp_path / "interrupted.log")  # it waits)
        if code != 0:
            break
    log = tmp_path / "interrupted.log"
    output = log.read_text()
    interrupted = {out: _digest(repo / out) for out in outs}
    interrupted_lock = (repo / "dvc.lock").read_text()
    interrupted_left = sorted(set(_leftovers(repo)) - before)
    repro = _run(["dvc", "repro"], repo)  # before any assertion, so that a failure leaves the workspace restored

    assert code != 0, output[-4000:]
    if sig == signal.SIGINT:
        assert not interrupted_left, interrupted_left  # a caught interrupt removes what it staged
    else:  # killed: what it staged is inside an output of the stage
        assert interrupted_left and all(any(f"{left}/".startswith(f"{out}/") for out in outs)
                                        for left in interrupted_left), interrupted_left
    for path, expected in reference.items():  # DVC removed the outputs first: absent, never half-written
        if path == live:  # but the live log, written as the stage runs, shows the curves so far
            assert interrupted[path], path
        else:
            assert interrupted[path] in (None, expected), path
    assert f"Stage '{stage}' is cached - skipping run" in repro, repro[-4000:]  # restored, our code not run
    assert interrupted_lock == lock
    assert (repo / "dvc.lock").read_text() == lock
    assert {out: _digest(repo / out) for out in outs} == reference
    left = sorted(set(_leftovers(repo)) - before)
    assert not left, f"{left} left behind by a plain `dvc repro` (after the interrupt: {interrupted_left})"
    status = _run(["dvc", "status"], repo)
    assert "up to date" in status.lower(), status
    if sig == signal.SIGINT:  # last: the outputs matter more than the message
        assert f"error: stage {stage} interrupted; its outputs were not written" in output, output[-4000:]


# A model knob reruns these; what evaluate scores (another lake, period) reruns scoring and the
# model card, not the forecast (forecast depends on the folder's model files and recipe only).
MODEL_STAGES = {"pretrain", "finetune", "evaluate", "package", "forecast"}
SCORING_STAGES = {"evaluate", "package"}


def _ran(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def test_exp_show_is_narrow_and_a_fresh_clone_shows_the_baseline(repo, tmp_path):
    """Headline metrics only (each a column of `dvc exp show`), tracked by git, so a fresh
    clone's row has numbers before it has run anything."""
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "baseline run"], repo)
    table = json.loads(_run(["dvc", "exp", "show", "--json"], repo))
    metrics = table[0]["rev"] == "workspace" and table[0]["data"]["metrics"]
    leaves = sum(_leaves(m["data"]) for m in metrics.values())
    header = _run(["dvc", "exp", "show", "--no-pager", "--csv"], repo).splitlines()[0].split(",")
    print(f"dvc exp show: {len(header)} columns, {leaves} metric columns")
    assert leaves <= 57, leaves  # evaluate 42 (val and test headline, 4 per model), training 8, data quality 7
    assert len(header) <= 243, len(header)  # 57 metrics, ~110 params, ~70 dependency hashes (239 measured)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    rows = list(csv.DictReader(io.StringIO(_run(["dvc", "exp", "show", "--no-pager", "--csv"], clone))))
    for rev in ("workspace", "main"):
        row = next(r for r in rows if r["rev"] == rev)
        assert float(row["test.skill"]) == _metrics(repo)["test"]["skill"], row
        assert float(row["moirai.crps"]) > 0 and math.isfinite(float(row["metrics/finetune.json:val_nll"])), row


def _leaves(tree) -> int:
    return sum(_leaves(v) for v in tree.values()) if isinstance(tree, dict) else 1


def test_patch_size_experiment_reruns_only_model_stages(repo):
    out = _run(["dvc", "exp", "run", "-S", "patch_size=64"], repo)
    assert _ran(out) == MODEL_STAGES, out
    assert math.isfinite(_metrics(repo)["moirai"]["crps"])


def make_exp_command() -> list[str]:
    """`make exp`'s dvc command line, as the Makefile writes it (make's $$ is a shell $)."""
    make = subprocess.run(["make", "-n", "-s", "exp", "STAMP="], cwd=REPO, capture_output=True, text=True, check=True)
    line = next(ln for ln in make.stdout.splitlines() if "dvc exp show" in ln)
    return shlex.split(line[line.index("dvc exp show"):])


def test_make_exp_shows_the_headline_first_on_a_200_column_terminal(repo):
    """After the patch-size experiment: on a 200-column terminal the first columns after
    Experiment and Created are the reference and the validation and test skill with their
    intervals and DM p, and the knob that changed is on screen too."""
    env = dict(os.environ, COLUMNS="200", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    shown = subprocess.run([*make_exp_command(), "--no-pager"], cwd=repo, env=env, capture_output=True, text=True,
                           check=True).stdout
    print(shown)
    header = next(line for line in shown.splitlines() if "Experiment" in line).split()
    headline = [f"{period}.{key}" for period in ("val", "test") for key in ("skill", "skill_lo", "skill_hi", "dm_p")]
    assert header[:12] == ["Experiment", "Created", "reference", *headline, "patch_size"], header


def test_back_to_the_baseline_restores_from_the_run_cache(repo):
    """A, B, A: the baseline params again train nothing; the run cache gives back the
    baseline's models and the very same (git-tracked, cache: false) metrics."""
    out = _run(["dvc", "exp", "run", "-S", "patch_size=16"], repo)
    assert _ran(out) == set(), out
    for stage in MODEL_STAGES:
        assert f"Stage '{stage}' is cached - skipping run" in out, out
    committed = _run(["git", "show", "HEAD:metrics/evaluate.json"], repo)
    assert _metrics(repo) == json.loads(committed)


def test_remote_round_trip(repo):
    """The default remote (a directory beside the clone, .dvc/config) takes every output and
    the run cache, and gives them back to a workspace that lost its cache and outputs.
    (After the run-cache test: `dvc push --run-cache` sends the run-cache entries, not the
    objects of `cache: false` outputs, so a pulled run cache cannot restore the stages that
    write metrics; see README "Remote".)"""
    remote = (repo / ".dvc" / "../../finmoirai-dvc-remote").resolve()
    _run(["dvc", "push", "--run-cache"], repo)
    assert remote.is_dir() and any(remote.rglob("*")), remote
    before = (repo / "models" / "finetuned" / "model.safetensors").read_bytes()
    shutil.rmtree(repo / ".dvc" / "cache")
    for out in ("data", "models", "plots", "dvclive/pretrain/plots", "dvclive/finetune/plots"):
        shutil.rmtree(repo / out)
    (repo / "metrics" / "evaluate_details.json").unlink()
    _run(["dvc", "pull", "--run-cache"], repo)
    assert (repo / "models" / "finetuned" / "model.safetensors").read_bytes() == before
    status = _run(["dvc", "status"], repo)
    assert "up to date" in status.lower(), status
    assert "Running stage" not in _run(["dvc", "repro"], repo)


def test_model_knobs_never_rerun_the_baselines(repo):
    """The baselines stage depends on the data and the windows only, and samples with
    baselines.seed: a new model seed retrains and re-scores the model, and reuses the
    baselines' scores (the same yardstick). (After the remote test, which pushes the committed
    run's outputs: the plots test diffs against them.)"""
    before = (repo / "data" / "baselines" / "test.parquet").read_bytes()
    out = _run(["dvc", "exp", "run", "-S", "seed=7"], repo)
    assert _ran(out) == MODEL_STAGES, out
    assert (repo / "data" / "baselines" / "test.parquet").read_bytes() == before


def _queue_logs(out: str, repo: Path) -> dict[str, str]:
    """Each queued experiment's name (from `dvc exp run --queue`'s output) and its run's log."""
    names = re.findall(r"Queued experiment '([^']+)'", out)
    return {name: _run(["dvc", "queue", "logs", name], repo) for name in names}


def test_queued_sweep_and_group_switch_run_exactly_their_stages(repo):
    """`dvc exp run --queue -S 'seed=range(1,4)'` (a Hydra sweep: three experiments) and
    `-S model=small -S trainer=cpu` (two groups switched; the model is the small one's width
    with the tiny test depth), then `dvc queue start`: every experiment runs, and each reruns
    exactly the stages its params touch (a seed or a model group: training and evaluate)."""
    seeds = _run(["dvc", "exp", "run", "--queue", "-S", "seed=range(1,4)"], repo)
    assert seeds.count("Queued experiment") == 3, seeds
    groups = _run(["dvc", "exp", "run", "--queue", "-S", "model=small", "-S", "trainer=cpu"], repo)
    assert groups.count("Queued experiment") == 1, groups
    _run(["dvc", "queue", "start"], repo)
    deadline = time.monotonic() + 1500
    while time.monotonic() < deadline:
        status = _run(["dvc", "queue", "status"], repo)
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(5)
    assert status.count("Success") == 4, status
    for name, log in {**_queue_logs(seeds, repo), **_queue_logs(groups, repo)}.items():
        assert _ran(log) == MODEL_STAGES, (name, log[-3000:])
    rows = list(csv.DictReader(io.StringIO(_run(["dvc", "exp", "show", "--no-pager", "--csv"], repo))))
    runs = {(r["seed"], r["model.d_model"]): r for r in rows if r["Experiment"]}
    for key in (("1", "64"), ("2", "64"), ("3", "64"), ("42", "384")):
        assert math.isfinite(float(runs[key]["test.skill"])), (key, sorted(runs))


def test_repro_reads_params_yaml_as_it_is(repo):
    """`dvc repro` does not compose: a hand edit of params.yaml runs as written (here only
    evaluate reruns), and `finmoirai check` names the key the next `dvc exp run` would drop."""
    from finmoirai.composition import check_composed, write_params
    from finmoirai.params.base import ParamsError

    write_params(repo)  # the composition of the tiny conf/, after the experiments before
    _run(["dvc", "repro"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["num_samples"] = 30
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro"], repo)
    assert _ran(out) == {"evaluate", "package", "forecast"}, out  # forecast: the folder's sample count moved
    assert yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["num_samples"] == 30
    with pytest.raises(ParamsError, match=r"evaluate\.num_samples is 30, but conf/ composes 20"):
        check_composed(repo)
    write_params(repo)


def test_target_and_calendar_knobs_rerun_only_the_model_stages(repo):
    out = _run(["dvc", "exp", "run", "-S", "target=level", "-S", "model.scaler=std", "-S", "calendar=true"], repo)
    assert _ran(out) == MODEL_STAGES, out
    metrics = _metrics(repo)
    assert math.isfinite(metrics["moirai"]["crps"]) and math.isfinite(metrics["test"]["skill"])


def test_evaluate_on_another_lake_without_retraining(repo):
    out = _run(
        ["dvc", "exp", "run", "-S", "evaluate.lake_path=data/lake", "-S", "evaluate.symbols=[BTC,ETH]",
         "-S", "evaluate.asset_classes=[crypto]"],
        repo,
    )
    assert _ran(out) == SCORING_STAGES, out
    per_asset = json.loads((repo / "metrics" / "evaluate_per_asset.json").read_text())
    assert sorted(per_asset) == ["BTC", "ETH"]
    assert "| moirai |" in (repo / "metrics" / "report.md").read_text()


# Every `dvc exp run` composes params.yaml from conf/ afresh, so a test repeats the overrides it builds on.
OTHER_LAKE = ["-S", "evaluate.lake_path=other_lake", "-S", "evaluate.years=[2022,2023]", "-S",
              "evaluate.test_start=2023-01-01", "-S", "evaluate.symbols=[BTC,ETH]", "-S",
              "evaluate.asset_classes=[crypto]"]


def test_evaluate_on_a_lake_of_other_years_reruns_only_evaluate(repo):
    """A lake of 2022-2023 bars (the model saw 2018-2019): its own years and test start, its
    scalers fitted on its bars before that start, and nothing but evaluate reruns."""
    from tests.helpers import write_hourly_lake

    write_hourly_lake(repo / "other_lake", {"BTC": "crypto", "ETH": "crypto"}, "2022-11-01", "2023-02-01")
    out = _run(["dvc", "exp", "run", *OTHER_LAKE], repo)
    assert _ran(out) == SCORING_STAGES, out
    metrics = _metrics(repo)
    assert metrics["test"]["windows"] == 8, metrics  # 2 assets x origins 1464, 1704, 1944, 2184 (stride 240)
    assert math.isfinite(metrics["test"]["skill"]) and metrics["val"]["skill"] is None  # that lake has no val period
    for model in ("moirai", "pretrained", "random_walk", "rw_ewma"):
        for name in ("crps", "msis", "coverage_80"):
            assert math.isfinite(metrics[model][name]), (model, name, metrics[model])
    per_asset = json.loads((repo / "metrics" / "evaluate_per_asset.json").read_text())
    assert sorted(per_asset) == ["BTC", "ETH"]
    assert "Test period from 2023-01-01 00:00:00+00:00" in (repo / "metrics" / "report.md").read_text()


def test_an_edited_file_of_the_other_lake_reruns_evaluate(repo):
    """The scored lake is a dependency of evaluate: with the same params, cutting the last 300
    bars off one asset's file reruns evaluate, which scores two windows fewer."""
    import polars as pl

    before = _metrics(repo)["test"]["windows"]
    (path,) = (repo / "other_lake").glob("asset_class=crypto/frequency=*/symbol=BTC/year=2023/*.parquet")
    frame = pl.read_parquet(path)
    frame.head(frame.height - 300).write_parquet(path)
    out = _run(["dvc", "exp", "run", *OTHER_LAKE], repo)
    assert _ran(out) == SCORING_STAGES, out
    assert _metrics(repo)["test"]["windows"] == before - 2  # BTC keeps origins 1464 and 1704


def test_validation_period_is_scored_by_evaluate_alone(repo):
    out = _run(["dvc", "exp", "run", "-S", "evaluate.split=val"], repo)
    assert _ran(out) == SCORING_STAGES, out
    metrics = _metrics(repo)
    assert metrics["scored"] == "val" and metrics["val"]["windows"] > 0 and math.isfinite(metrics["val"]["skill"])
    assert metrics["test"]["skill"] is None  # choosing on validation never looks at test
    assert "Validation period from 2019-01-01" in (repo / "metrics" / "report.md").read_text()


def test_a_reference_checkpoint_is_scored_beside_the_models_offline(repo, monkeypatch):
    """evaluate.reference_models: a Moirai checkpoint folder in the hub's own format (stock
    uni2ts save_pretrained, no finmoirai entry: uni2ts's scaler), written here, scored zero-shot
    and close-only on the same windows, with the hub switched off."""
    import pandas as pd
    from uni2ts.distribution import (
        LogNormalOutput,
        MixtureOutput,
        NegativeBinomialOutput,
        NormalFixedScaleOutput,
        StudentTOutput,
    )
    from uni2ts.model.moirai import MoiraiModule

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    stock = MoiraiModule(distr_output=MixtureOutput([StudentTOutput(), NormalFixedScaleOutput(),
                                                     NegativeBinomialOutput(), LogNormalOutput()]),
                         d_model=64, num_layers=1, patch_sizes=(8, 16, 32, 64, 128), max_seq_len=512,
                         attn_dropout_p=0.0, dropout_p=0.0, scaling=True)
    stock.save_pretrained(str(repo / "reference" / "moirai-local"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = _run(["dvc", "exp", "run", "-S", "+evaluate.reference_models.local_ref=reference/moirai-local"], repo)
    assert _ran(out) == SCORING_STAGES, out
    metrics = _metrics(repo)
    assert math.isfinite(metrics["local_ref"]["crps"]) and metrics["local_ref"]["crps"] != metrics["moirai"]["crps"]
    scored = pd.read_parquet(repo / "data" / "evaluate" / "forecasts.parquet")
    assert set(scored["model"]) == {"moirai", "pretrained", "local_ref"}
    assert "| local_ref |" in (repo / "metrics" / "report.md").read_text()


def test_plots_show_and_diff_draw_every_plot_with_a_subset_of_baselines(repo):
    """dvc.yaml's plots follow baselines.models: with two baselines, `dvc plots show` and
    `dvc plots diff` against the committed run draw every declared plot from data."""
    out = _run(["dvc", "exp", "run", "-S", "baselines.models=[random_walk,garch_t]"], repo)
    assert {"baselines", "evaluate"} <= _ran(out), out
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    names = [next(iter(p)) for p in declared]
    for command in (["dvc", "plots", "show", "--json"], ["dvc", "plots", "diff", "HEAD", "--json"]):
        shown = json.loads(_run(command, repo))
        assert not shown.get("errors"), shown.get("errors")
        for name in names:
            (plot,) = shown["data"][name]
            values = plot["content"]["data"]["values"]
            fields = {v.get("field") or v.get("filename::field", "").split("::")[-1] for v in values}
            assert values and fields, (command, name)
            if "baselines" in json.dumps(declared[names.index(name)]):
                assert {"random_walk", "garch_t"} <= fields and "auto_ets" not in fields, (name, fields)
    diff = json.loads(_run(["dvc", "plots", "diff", "HEAD", "--json"], repo))
    revisions = {r for v in diff["data"].values() for p in v for r in p.get("revisions", [])}
    assert {"HEAD", "workspace"} <= revisions, revisions
