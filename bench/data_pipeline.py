"""Benchmark of the data stages (extract -> preprocess -> features -> build) at lake scale.

For each size it generates a synthetic lake (N assets x Y years of hourly bars) in a temp
directory outside the repo, runs every data stage as its own process (as `dvc repro` does),
and reports wall time, rows per second and the peak RSS of each stage's process tree (the
stage and any worker processes, summed, polled every 20 ms). It compares the pipeline to

* a bare Polars scan of the same lake (every column of every file read once: the floor);
* a naive baseline that loads the whole lake into one pandas frame, then computes the same
  cleaning and features per asset while holding everything in memory.

    .venv/bin/python bench/data_pipeline.py                    # 50, 200, 800 assets x 2 years
    .venv/bin/python bench/data_pipeline.py --sizes 20 --years 1   # a quick run

Timings on a shared machine move around: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

from finmoirai.config import stage_command
from finmoirai.data.synthetic import class_counts, market_proxy, years_covered
from finmoirai.params.data import LakeConfig, SyntheticConfig

REPO = Path(__file__).resolve().parents[1]

STAGES = ("extract", "preprocess", "features", "build")
STAGE_MODULES = {"extract": "finmoirai.data.lake", "preprocess": "finmoirai.data.preprocessing",
                 "features": "finmoirai.data.features", "build": "finmoirai.data.builder"}
TMP_PREFIX = "finmoirai-bench-"

SCAN = """
import sys, time
t0 = time.perf_counter()
import polars as pl
lf = pl.scan_parquet(sys.argv[1] + "/**/*.parquet", hive_partitioning=True)
cols = ["open", "high", "low", "close", "volume"]
out = lf.select(pl.len(), pl.col("timestamp").max(), *[pl.col(c).sum() for c in cols]).collect(engine="streaming")
print(time.perf_counter() - t0, out.item(0, 0))
"""


class Peak:
    """Peak summed RSS of a process and its descendants, polled in a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS bytes, stdout) of one command; raises if it fails."""
    t0 = time.perf_counter()
    with log.open("ab") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=err)
        peak = Peak(proc.pid)
        out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    rss = peak.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}:\n"
                           + log.read_text()[-3000:])
    return wall, rss, out.decode()


def startup_floor(log: Path, repeats: int = 3) -> dict[str, float]:
    """Seconds to start each stage's process and import its module, doing no work (best of
    `repeats`): the part of the pipeline's time that does not grow with the lake. Worker
    processes pay their own imports on top (in parallel), which this leaves out."""
    floor = {}
    for stage, module in STAGE_MODULES.items():
        code = f"import {module}"
        floor[stage] = min(run([sys.executable, "-c", code], REPO, log)[0] for _ in range(repeats))
    return floor


def stage_params(lake: Path, cfg: SyntheticConfig, workers: int | None, batch_size: int | None) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["lake"]["path"] = params["evaluate"]["lake_path"] = str(lake)
    params["extract"].update(asset_classes=list(class_counts(cfg)), years=years_covered(cfg), symbols=[])
    params["features"]["market_proxy"] = market_proxy(cfg)
    start = pd.Timestamp(cfg.start)
    span = pd.DateOffset(years=cfg.years)
    end = start + span
    days = (end - start).days
    params["split"] = {"train_end": str((start + pd.Timedelta(days=int(days * 0.7))).date()),
                       "val_end": str((start + pd.Timedelta(days=int(days * 0.85))).date())}
    if workers is not None:
        params["preprocess"]["workers"] = workers
        params["features"]["workers"] = workers
    if batch_size is not None:
        params["build"]["batch_size"] = batch_size
    return params


def bench_size(n: int, args: argparse.Namespace, root: Path) -> dict:
    py = sys.executable
    cfg = LakeConfig.shipped("lake").synthetic.replace(assets=n, years=args.years,
                              seed=args.seed)
    lake, work = root / "lake", root / "work"
    work.mkdir()
    log = root / "log.txt"
    gen_wall, _, _ = run([py, str(REPO / "bench" / "synthetic_lake.py"), str(lake), "--assets", str(n), "--years",
                          str(args.years), "--seed", str(args.seed)], REPO, log)
    base = stage_params(lake, cfg, args.workers, args.batch_size)
    (work / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    res = {"assets": n, "generate_s": gen_wall, "stages": {}}
    scan_wall, scan_rss, out = run([py, "-c", SCAN, str(lake)], work, log)
    scan_inner, rows = out.split()
    res.update(rows=int(rows), scan_s=scan_wall, scan_inner_s=float(scan_inner), scan_rss=scan_rss)
    for stage in STAGES:
        wall, rss, _ = run(stage_command(stage, REPO / "dvc.yaml"), work, log)
        res["stages"][stage] = {"s": wall, "rss": rss}
    res["pipeline_s"] = sum(s["s"] for s in res["stages"].values())
    res["tmp_left"] = (work / "data/datasets/.tmp").exists()
    res["workers"] = {}
    for w in args.compare_workers:  # the parallel stages again, same inputs, another process count
        params = {**base, "preprocess": {**base["preprocess"], "workers": w},
                  "features": {**base["features"], "workers": w}}
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        res["workers"][w] = {s: dict(zip(("s", "rss"), run(stage_command(s, REPO / "dvc.yaml"), work, log)[:2]))
                             for s in ("preprocess", "features")}
    (work / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    quality = json.loads((work / "data/preprocessed/quality_report.json").read_text())["totals"]
    res["quality"] = {k: quality[k] for k in ("rows_in", "rows_out", "rows_dropped", "rows_inserted",
                                              "outliers", "inconsistent_high_low")}
    if n <= args.naive_max:
        wall, rss, _ = run([py, str(Path(__file__).resolve()), "--naive", str(work)], work, log)
        res.update(naive_s=wall, naive_rss=rss)
    return res


# --------------------------------------------------------------------------- naive baseline


def naive(work: Path) -> None:
    """The whole lake in one pandas frame, then the same cleaning and features, all kept."""
    from finmoirai.data.calendars import asset_calendar
    from finmoirai.data.features import asset_features
    from finmoirai.data.preprocessing import clean_asset, fit_scaler
    from finmoirai.params import Params

    params = Params.load(work / "params.yaml")
    lake = params.lake
    split = params.split
    pcfg = params.preprocess
    fcfg = params.features
    market, frequency = params.market, params.extract.frequency
    whole = pd.read_parquet(lake.path)  # pyarrow reads the hive partitions as columns
    whole["symbol"] = whole["symbol"].astype(str)
    whole["asset_class"] = whole["asset_class"].astype(str)
    cleaned, feats = {}, {}
    classes = dict(zip(whole["symbol"], whole["asset_class"]))
    for sym, raw in whole.groupby("symbol", sort=True):
        bars = asset_calendar(market, {"symbol": sym, "asset_class": classes[sym], "frequency": frequency})
        cleaned[sym], _ = clean_asset(raw[["timestamp", "open", "high", "low", "close", "volume"]], bars, pcfg)
    for sym, df in cleaned.items():
        proxy = cleaned[fcfg.market_proxy[classes[sym]]]
        feats[sym], _, _ = asset_features(df, proxy, split, fcfg, fit_scaler(df, split, pcfg.min_train_rows, sym))
    print(sum(len(f) for f in feats.values()))


# --------------------------------------------------------------------------- report


def mb(b: float) -> str:
    return f"{b / 2**20:,.0f}"


def table(results: list[dict]) -> str:
    head = ["assets", "rows", "scan s", "pipe s", "pipe/scan", "rows/s", *[f"{s} s" for s in STAGES],
            *[f"{s} MB" for s in STAGES], "naive s", "naive MB", "naive/build MB", "tmp left"]
    lines = []
    for r in results:
        st = r["stages"]
        naive_rss = r.get("naive_rss")
        lines.append([
            str(r["assets"]), f"{r['rows']:,}", f"{r['scan_s']:.2f}", f"{r['pipeline_s']:.1f}",
            f"{r['pipeline_s'] / r['scan_s']:.1f}x", f"{r['rows'] / r['pipeline_s']:,.0f}",
            *[f"{st[s]['s']:.1f}" for s in STAGES], *[mb(st[s]["rss"]) for s in STAGES],
            f"{r['naive_s']:.1f}" if naive_rss else "-", mb(naive_rss) if naive_rss else "-",
            f"{naive_rss / st['build']['rss']:.2f}" if naive_rss else "-", "yes" if r["tmp_left"] else "no",
        ])
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), *(fmt.format(*row) for row in lines)])


def summary(results: list[dict], floor: dict[str, float]) -> str:
    start = sum(floor.values())
    out = [f"stage start-up (process + imports, no work): {start:.1f}s = "
           + ", ".join(f"{s} {t:.2f}s" for s, t in floor.items())]
    by = {r["assets"]: r for r in results}
    small, big = min(by), max(by)
    if small != big:
        b0, b1 = by[small]["stages"]["build"]["rss"], by[big]["stages"]["build"]["rss"]
        out.append(f"build peak RSS {big} vs {small} assets: {b1 / b0:.2f}x ({mb(b1)} MB vs {mb(b0)} MB; "
                   f"target <= 1.25x and < 2048 MB)")
        for s in STAGES:
            r0, r1 = by[small]["stages"][s]["rss"], by[big]["stages"][s]["rss"]
            out.append(f"  {s:<10} peak RSS {mb(r0)} -> {mb(r1)} MB ({r1 / r0:.2f}x)")
        if "naive_rss" in by[small] and "naive_rss" in by[big]:
            n0, n1 = by[small]["naive_rss"], by[big]["naive_rss"]
            out.append(f"naive baseline peak RSS {big} vs {small} assets: {n1 / n0:.2f}x ({mb(n1)} vs {mb(n0)} MB)")
    for r in results:
        for w, st in r.get("workers", {}).items():
            for s in ("preprocess", "features"):
                one = r["stages"][s]
                out.append(f"{r['assets']} assets, {s} with {w} worker(s): {st[s]['s']:.1f}s and {mb(st[s]['rss'])} MB "
                           f"vs {one['s']:.1f}s and {mb(one['rss'])} MB with the default "
                           f"({one['s'] / st[s]['s']:.2f}x speed-up)")
        out.append(f"{r['assets']} assets: pipeline {r['pipeline_s']:.1f}s = {r['pipeline_s'] / r['scan_s']:.1f}x the "
                   f"scan process ({r['scan_s']:.2f}s), {r['pipeline_s'] / r['scan_inner_s']:.0f}x the scan itself "
                   f"({r['scan_inner_s']:.2f}s, no interpreter start); without the stages' start-up "
                   f"{r['pipeline_s'] - start:.1f}s = {(r['pipeline_s'] - start) / r['scan_inner_s']:.0f}x the scan "
                   f"itself; lake generated in {r['generate_s']:.1f}s; "
                   f"quality {r['quality']}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200,800", help="comma-separated asset counts")
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None,
                        help="preprocess/features workers (default: params.yaml's, 0 = auto)")
    parser.add_argument("--batch-size", type=int, default=None, help="build.batch_size (default: params.yaml's)")
    parser.add_argument("--compare-workers", default="",
                        help="comma-separated worker counts to rerun preprocess and features with, e.g. 2")
    parser.add_argument("--naive-max", type=int, default=10**9, help="skip the naive baseline above this size")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--naive", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive is not None:
        naive(args.naive)
        return
    args.compare_workers = [int(w) for w in args.compare_workers.split(",") if w]
    for stale in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):  # left by a killed run
        if stale.is_dir() and not _alive(stale):
            shutil.rmtree(stale, ignore_errors=True)
    results = []
    with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}{os.getpid()}-") as tmp:
        floor = startup_floor(Path(tmp) / "log.txt")
    for n in [int(x) for x in args.sizes.split(",")]:
        root = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
        try:
            print(f"--- {n} assets x {args.years} years (in {root})", flush=True)
            results.append(bench_size(n, args, root))
            print(table(results[-1:]), flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print("\n" + table(results))
    print(summary(results, floor))
    if args.json:
        args.json.write_text(json.dumps({"startup_s": floor, "sizes": results}, indent=2))


def _alive(path: Path) -> bool:
    """A bench temp dir is named after its process id: alive means someone still uses it."""
    try:
        return psutil.pid_exists(int(path.name[len(TMP_PREFIX):].split("-")[0]))
    except ValueError:
        return False


if __name__ == "__main__":
    main()
