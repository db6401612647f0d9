"""Monte-Carlo noise of the headline's yardstick: how much does the reference baseline's CRPS
move when only its sampling seed changes?

On the built data (`make repro` or `dvc repro features` first) it runs `evaluate.reference`
(GARCH-t by default) on the evaluation windows of a period with several seeds, the same
windows and fits each time, and prints per seed the mean-over-assets CRPS of the horizon
return and the headline skill of that seed's reference against the first seed's: a model
that is the reference in distribution. Its spread is the part of any skill's noise that is
the yardstick moving, not the model; compare it with the differences between models.

    .venv/bin/python bench/reference_noise.py                       # 5 seeds, test period
    .venv/bin/python bench/reference_noise.py --seeds 8 --split val --set evaluate.num_samples=400
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import yaml
from seeds import apply_override  # `key.sub=value` as dvc exp run -S (a sibling script)

from finmoirai.evaluation.forecasters import forecasters, run_windows
from finmoirai.evaluation.metrics import date_panels, score_assets
from finmoirai.evaluation.series import load_series
from finmoirai.evaluation.significance import geometric_skill
from finmoirai.params import EvaluateConfig, SplitConfig, knobs, section

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="sampling seeds 0..N-1")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--data", type=Path, default=REPO / "data", help="the data stages' outputs (features/, ...)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override params, as -S")
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text())
    for assignment in args.set:
        apply_override(params, assignment)
    experiment, cfg, split = knobs(params), section(params, EvaluateConfig, "evaluate"), section(params,
                                                                                                SplitConfig, "split")
    start, until = (split.train_end_ts, split.val_end_ts) if args.split == "val" else (split.val_end_ts, None)
    scalers = json.loads((args.data / "preprocessed" / "scalers.json").read_text())
    series = load_series(args.data / "features", scalers, start, target=experiment.target, scored_until=until)
    reference = cfg.reference
    fns = {reference: forecasters({}, experiment.context_length, experiment.prediction_length, experiment.patch_size,
                                  cfg)[reference]}
    panels, crps = [], []
    for seed in range(args.seeds):
        started = time.monotonic()
        windows, _, _ = run_windows(series, fns, experiment.context_length, experiment.prediction_length, cfg.stride,
                                    seed)
        assets = score_assets(windows, [reference], experiment.context_length, experiment.prediction_length)
        panels.append(date_panels(assets, [reference])[reference])
        crps.append(statistics.fmean(a.mean(reference)["crps"] for a in assets))
        skill = geometric_skill(panels[-1], panels[0])
        print(f"seed {seed}: {reference} CRPS {crps[-1]:.6f}  skill vs seed 0 {skill:+.5f}  "
              f"({sum(len(w.origins) for w in windows)} windows, {time.monotonic() - started:.0f} s)", flush=True)
    skills = [geometric_skill(p, panels[0]) for p in panels[1:]]
    print(f"{reference}, {args.split} period, {cfg.num_samples} samples: CRPS mean {statistics.fmean(crps):.6f} "
          f"std {statistics.stdev(crps):.6f} ({statistics.stdev(crps) / statistics.fmean(crps):.2%}); "
          f"skill of a reseeded reference: std {statistics.stdev(skills) if len(skills) > 1 else float('nan'):.5f}, "
          f"max |skill| {max(abs(s) for s in skills):.5f}")


if __name__ == "__main__":
    main()
