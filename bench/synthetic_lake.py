"""Write a synthetic hive-partitioned hourly OHLCV lake (finmoirai/data/synthetic.py) anywhere:
the generator of `lake.source: synthetic`, with params.yaml's `lake.synthetic` as defaults.

    .venv/bin/python bench/synthetic_lake.py OUT_DIR --assets 200 --years 2 --seed 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from finmoirai.data.synthetic import write_synthetic_lake
from finmoirai.params.data import ExtractConfig, LakeConfig, MarketConfig


def main(argv: list[str] | None = None) -> None:
    shipped = LakeConfig.shipped("lake").synthetic
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    for name in ("assets", "years", "start", "seed", "gap_rate", "bad_bar_rate"):
        value = getattr(shipped, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--frequency", default=ExtractConfig.shipped("extract").frequency,
                        help="bar frequency (5m, 1h, 1d, ...)")
    args = parser.parse_args(argv)
    cfg = shipped.replace(assets=args.assets, start=args.start, years=args.years, seed=args.seed,
                              gap_rate=args.gap_rate, bad_bar_rate=args.bad_bar_rate)
    t0 = time.perf_counter()
    summary = write_synthetic_lake(args.out, cfg, args.frequency, MarketConfig.shipped("market"))
    print(f"wrote {summary['assets']} assets, {summary['rows']} rows to {args.out} in "
          f"{time.perf_counter() - t0:.1f}s; market_proxy={summary['market_proxy']} years={summary['years']}")


if __name__ == "__main__":
    main()
