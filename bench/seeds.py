"""Seed noise and recipe comparisons: train the model stages with several seeds, score both periods.

For each seed (and each `--set` override of params.yaml) it runs the real stage scripts
`pretrain -> finetune -> evaluate` (test period) and `evaluate` again with `evaluate.split: val`,
each as its own process, in a work directory under --out whose `data/` links to this repo's
built data stages (run `make repro` or `dvc repro build` first). The `baselines` stage runs once,
before the seeds (its scores do not depend on the model's seed), and every seed reads them. It prints the headline skill
(exact CRPS of the horizon return, geometric over assets, vs `evaluate.reference`) per seed
with its 95% block-bootstrap interval and Diebold-Mariano p, then the mean and standard
deviation over seeds, for the validation and the test period. Recipes are chosen on the validation
columns; the test columns are reported, not tuned on.

    .venv/bin/python bench/seeds.py                              # seeds 42 1 2, default params
    .venv/bin/python bench/seeds.py --seeds 42 --set target=level --set model.scaler=std
    .venv/bin/python bench/seeds.py --datasets /tmp/syn/data/datasets   # datasets built with a synthetic corpus

Each seed takes about as long as the model stages of `make repro` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import yaml
from data_pipeline import run  # the same stage runner as the data benchmark (a sibling script)

from finmoirai.config import stage_command

REPO = Path(__file__).resolve().parents[1]
STAGES = ("pretrain", "finetune")


def apply_override(params: dict, assignment: str) -> None:
    """`key.sub=value` (value parsed as YAML), as `dvc exp run -S` does."""
    key, _, raw = assignment.partition("=")
    if not raw:
        raise SystemExit(f"--set {assignment!r}: expected key=value")
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        if part not in node:
            raise SystemExit(f"--set {assignment!r}: params.yaml has no section {part}")
        node = node[part]
    if leaf not in node:
        raise SystemExit(f"--set {assignment!r}: params.yaml has no key {key}")
    node[leaf] = yaml.safe_load(raw)


def work_dir(out: Path, params: dict, data: Path, datasets: Path, baselines: Path | None = None) -> Path:
    """A directory that looks like the repo to the stage scripts: the built data linked (the
    scripts run from this repo by their absolute path, the package is installed in the venv)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    sources = [("features", data / "features"), ("preprocessed", data / "preprocessed"), ("datasets", datasets)]
    for name, source in sources + ([("baselines", baselines)] if baselines else []):
        link = out / "data" / name
        if not link.exists():
            if not source.exists():
                raise SystemExit(f"{source} is missing: run `make repro` (or `dvc repro build`) first")
            link.symlink_to(source.resolve())
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return out


def run_stage(work: Path, stage: str, log: str) -> None:
    (work / log).unlink(missing_ok=True)  # `run` appends
    run(stage_command(stage, REPO / "dvc.yaml"), work, work / log)


def evaluate(work: Path, params: dict, split: str) -> dict:
    params["evaluate"]["split"] = split
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage(work, "evaluate", f"evaluate_{split}.log")
    metrics = json.loads((work / "metrics" / "evaluate.json").read_text())
    details = json.loads((work / "metrics" / "evaluate_details.json").read_text())
    for name in ("evaluate.json", "evaluate_details.json", "report.md"):
        (work / "metrics" / name).replace(work / f"{split}_{name}")
    step, head, reference = details["per_step"], metrics[split], metrics["reference"]
    return {"skill": head["skill"], "lo": head["skill_lo"], "hi": head["skill_hi"], "dm_p": head["dm_p"],
            "reference": reference, "coverage_80": metrics["moirai"]["coverage_80"],
            "qlike": metrics["moirai"]["qlike"], "step1_vs_reference": step["moirai"][0] / step[reference][0]} | \
        old_style(details)


def old_style(details: dict) -> dict:
    """The headline as it was defined before the exact-CRPS change, as far as today's scores
    allow: skill against RW-EWMA on the 9-quantile weighted quantile loss, a ratio of the means
    over assets (the quantile loss is now of the horizon's return in percent, not of prices,
    and RW-EWMA's decay comes from a half-life in bars). Beside it, the new score against the
    old reference (exact CRPS, geometric over assets)."""
    models = details["models"]
    if "rw_ewma" not in models:
        return {}
    return {"wql_vs_rw_ewma": 1.0 - models["moirai"]["qloss"] / models["rw_ewma"]["qloss"],
            "crps_vs_rw_ewma": details["skill_vs"]["moirai"]["rw_ewma"]}


def score_baselines(out: Path, params: dict, data: Path, datasets: Path) -> Path:
    """The baselines stage once, for every seed: its scores do not depend on `seed`."""
    work = work_dir(out / "baselines", params, data, datasets)
    run_stage(work, "baselines", "baselines.log")
    return work / "data" / "baselines"


def one_seed(out: Path, params: dict, seed: int, data: Path, datasets: Path, baselines: Path) -> dict:
    params = json.loads(json.dumps(params)) | {"seed": seed}
    work = work_dir(out / f"seed-{seed}", params, data, datasets, baselines)
    started = time.monotonic()
    for stage in STAGES:
        run_stage(work, stage, f"{stage}.log")
    trained = time.monotonic() - started
    result = {split: evaluate(work, params, split) for split in ("val", "test")}
    return result | {"train_s": round(trained), "total_s": round(time.monotonic() - started)}


def summary_line(label: str, values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{label}: mean {statistics.fmean(values):+.4f}  std {std:.4f}  (n={len(values)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("/tmp/finmoirai-seeds"))
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml",
                        help="the params file the --set overrides apply to (the data must have been built with it)")
    parser.add_argument("--data", type=Path, default=REPO / "data",
                        help="the data stages' outputs: features/, preprocessed/ and datasets/ are used")
    parser.add_argument("--datasets", type=Path, default=None,
                        help="built datasets to train on instead of DATA/datasets (e.g. a build with "
                             "build.synthetic_assets > 0)")
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text())
    for assignment in args.overrides:
        apply_override(params, assignment)
    results = {}
    datasets = args.datasets or args.data / "datasets"
    baselines = score_baselines(args.out, params, args.data, datasets)
    for seed in args.seeds:
        results[seed] = one_seed(args.out, params, seed, args.data, datasets, baselines)
        r = results[seed]
        print(f"seed {seed:>4}: " + "  ".join(
            f"{split} skill {r[split]['skill']:+.4f} [{r[split]['lo']:+.4f}, {r[split]['hi']:+.4f}] "
            f"DM p {r[split]['dm_p']:.3g} cov80 {r[split]['coverage_80']:.3f} QLIKE {r[split]['qlike']:.3f} "
            f"step1/ref {r[split]['step1_vs_reference']:.2f}"
            + (f" (old style: wQL vs rw_ewma {r[split]['wql_vs_rw_ewma']:+.4f}, CRPS vs rw_ewma "
               f"{r[split]['crps_vs_rw_ewma']:+.4f})" if "wql_vs_rw_ewma" in r[split] else "")
            for split in ("val", "test"))
            + f"  ({r['train_s']} s training, {r['total_s']} s in all)", flush=True)
    print("overrides:", " ".join(args.overrides) or "none")
    for split in ("val", "test"):
        reference = next(iter(results.values()))[split]["reference"]
        print(summary_line(f"{split} skill vs {reference}", [r[split]["skill"] for r in results.values()]))
    if args.json:
        args.json.write_text(json.dumps({"overrides": args.overrides, "seeds": results}, indent=2))


if __name__ == "__main__":
    main()
