"""Monte-Carlo noise of the headline's yardstick: how much does the reference baseline's CRPS
move when only its sampling seed changes?

On the built data (`make repro` or `dvc repro features` first) it runs `evaluate.reference`
(GARCH-t by default) on the evaluation windows of a period with several seeds, the same
windows and fits each time, and prints per seed the mean-over-assets CRPS of the horizon
return and the headline skill of that seed's reference against the first seed's: a model
that is the reference in distribution. Its spread is the part of any skill's noise that is
the yardstick moving, not the model; compare it with the differences between models.

    .venv/bin/python bench/reference_noise.py                       # 5 seeds, test period
    .venv/bin/python bench/reference_noise.py --seeds 8 --split val --set baselines.num_samples=100
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import yaml
from seeds import apply_override  # `key.sub=value` as dvc exp run -S (a sibling script)

from finmoirai.evaluation.forecasters import baseline_forecasters
from finmoirai.evaluation.metrics import date_panels, per_asset_means
from finmoirai.evaluation.scores import score_windows
from finmoirai.evaluation.scoring import period_windows
from finmoirai.evaluation.significance import geometric_skill
from finmoirai.params import Params

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
    params = Params.parse(params)
    experiment, split = params.knobs, params.split
    cfg, stride = params.baselines, params.evaluate.stride
    reference = params.evaluate.reference
    windows, _ = period_windows(args.data / "features", args.data / "preprocessed", split, args.split, experiment,
                                stride)
    fns = {reference: baseline_forecasters(cfg, experiment.context_length, experiment.prediction_length)[reference]}
    panels, crps = [], []
    for seed in range(args.seeds):
        started = time.monotonic()
        table, _, _ = score_windows(windows, fns, seed, experiment.context_length, experiment.prediction_length,
                                    stride)
        panels.append(date_panels(table, [reference])[reference])
        crps.append(float(per_asset_means(table, ["crps"])["crps"].mean()))
        skill = geometric_skill(panels[-1], panels[0])
        print(f"seed {seed}: {reference} CRPS {crps[-1]:.6f}  skill vs seed 0 {skill:+.5f}  "
              f"({len(table)} windows, {time.monotonic() - started:.0f} s)", flush=True)
    skills = [geometric_skill(p, panels[0]) for p in panels[1:]]
    print(f"{reference}, {args.split} period, {cfg.num_samples} samples (baselines.num_samples): "
          f"CRPS mean {statistics.fmean(crps):.6f} "
          f"std {statistics.stdev(crps):.6f} ({statistics.stdev(crps) / statistics.fmean(crps):.2%}); "
          f"skill of a reseeded reference: std {statistics.stdev(skills) if len(skills) > 1 else float('nan'):.5f}, "
          f"max |skill| {max(abs(s) for s in skills):.5f}")


if __name__ == "__main__":
    main()
