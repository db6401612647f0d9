"""The hive-partitioned OHLCV lake: writing partitions, and the `extract` stage.

Layout: ``<lake>/asset_class=<c>/frequency=<f>/symbol=<s>/year=<y>/data.parquet`` with
columns timestamp (UTC), open, high, low, close, volume. Extract prunes partitions on the
directory tree, then reads each selected asset's own files; bad bars are left for
preprocessing to see and report.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import polars as pl
from tqdm import tqdm

from finmoirai.errors import DataError, first_line
from finmoirai.params.data import DEMO_LAKE, ExtractConfig, bar_period, period_label

logger = logging.getLogger(__name__)

OHLCV = ["open", "high", "low", "close", "volume"]
COLUMNS = ["timestamp", *OHLCV]


def _normalise(df: pd.DataFrame, sort: bool) -> pd.DataFrame:
    df = df[COLUMNS].copy()
    df["timestamp"] = df["timestamp"].astype("datetime64[us, UTC]")
    df[OHLCV] = df[OHLCV].astype("float64")
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True) if sort else df


def write_partitions(out_dir: Path, asset_class: str, symbol: str, df: pd.DataFrame,
                     frequency: str = "1h", sort: bool = True) -> list[dict]:
    """Write one asset's bars as one parquet file per UTC year; returns rows per year.

    `sort=False` keeps the rows' order within each year, bad order and duplicates included,
    as a raw feed would have them (the synthetic lake and the quality tests plant those)."""
    df = _normalise(df, sort)
    summary = []
    for year, part in df.groupby(df["timestamp"].dt.year, sort=True):
        d = out_dir / f"asset_class={asset_class}" / f"frequency={frequency}" / f"symbol={symbol}" / f"year={year}"
        d.mkdir(parents=True, exist_ok=True)
        pl.from_pandas(part.reset_index(drop=True)).write_parquet(d / "data.parquet")
        summary.append({"asset_class": asset_class, "symbol": symbol, "year": int(year), "rows": len(part)})
    return summary


# --------------------------------------------------------------------------- extract


def _partition(name: str, key: str) -> str | None:
    prefix = f"{key}="
    return name[len(prefix):] if name.startswith(prefix) else None


def _hidden(path: Path) -> bool:
    """Names the hive convention leaves out of the data (`.DS_Store`, `_SUCCESS`, ...)."""
    return path.name.startswith((".", "_"))


@dataclass
class LakeScan:
    """What the directory walk found: each selected asset's files, and the entries it could
    not parse as partitions (path relative to the lake, and why)."""

    lake: Path
    strict: bool
    assets: dict[tuple[str, str], list[Path]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def malformed(self, path: Path, why: str) -> None:
        """An entry outside the layout: an error naming it (lake.strict), or skipped and listed."""
        where = path.relative_to(self.lake).as_posix()
        if self.strict:
            raise DataError(f"lake {self.lake}: {where}: {why}; fix or remove it, or set lake.strict: false "
                            "to skip it (then it is listed in the data-quality report)")
        logger.warning("lake %s: skipping %s: %s", self.lake, where, why)
        self.skipped.append({"path": where, "reason": why})


def _check_keys(scan: LakeScan, folder: Path, key: str) -> None:
    """Every visible entry of `folder` must be a `key=<value>` directory."""
    for d in sorted(folder.iterdir()):
        if _hidden(d):
            continue
        if not d.is_dir() or _partition(d.name, key) is None:
            scan.malformed(d, f"not a {key}=<value> partition directory")
        elif not _partition(d.name, key):
            scan.malformed(d, f"{key}= partition with an empty value")


def _year_files(scan: LakeScan, symbol_dir: Path, years: list[int]) -> list[Path]:
    """Parquet files of the selected years under one symbol's partition, in year order;
    anything else under it that is not a `year=<digits>` folder of parquet files is malformed."""
    found: dict[int, list[Path]] = {}
    for d in sorted(symbol_dir.iterdir()):
        if _hidden(d):
            continue
        year = _partition(d.name, "year")
        if not d.is_dir() or year is None:
            scan.malformed(d, "not a year=<YYYY> partition directory")
        elif not (year.isdigit() and len(year) == 4):
            scan.malformed(d, f"year partition {year!r} is not a four-digit year")
        elif int(year) in years:
            files = []
            for p in sorted(d.iterdir()):
                if _hidden(p):
                    continue
                if p.is_file() and p.suffix == ".parquet":
                    files.append(p)
                else:
                    scan.malformed(p, "not a .parquet file")
            found[int(year)] = files
    return [p for year in sorted(found) for p in found[year]]


def scan_lake(lake_path: Path, cfg: ExtractConfig, strict: bool) -> LakeScan:
    """Partition pruning on the directory tree: (asset_class, symbol) -> its selected files.

    Only the selected classes' and frequency's folders are walked below their level, and only
    the selected years' files are returned; nothing is opened. Every entry met on the way that
    is not part of the layout is malformed (see LakeScan.malformed)."""
    scan = LakeScan(lake_path, strict)
    _check_keys(scan, lake_path, "asset_class")
    for asset_class in cfg.asset_classes:
        class_dir = lake_path / f"asset_class={asset_class}"
        if not class_dir.is_dir():
            continue
        _check_keys(scan, class_dir, "frequency")
        base = class_dir / f"frequency={cfg.frequency}"
        if not base.is_dir():
            continue
        _check_keys(scan, base, "symbol")
        for d in sorted(base.iterdir()):
            sym = _partition(d.name, "symbol")
            if _hidden(d) or not sym or not d.is_dir():
                continue
            files = _year_files(scan, d, cfg.years)
            if files:
                scan.assets[(asset_class, sym)] = files
    return scan


def lake_years(lake_path: str | Path, cfg: ExtractConfig) -> list[int]:
    """Years that have files for the selection's classes, frequency and symbols: a directory
    listing (no file is opened), so an empty year selection is named before any work."""
    years = set()
    for asset_class in cfg.asset_classes:
        base = Path(lake_path) / f"asset_class={asset_class}" / f"frequency={cfg.frequency}"
        for year_dir in base.glob("symbol=*/year=*"):
            symbol, year = _partition(year_dir.parent.name, "symbol"), _partition(year_dir.name, "year")
            wanted = not cfg.symbols or symbol in cfg.symbols
            if wanted and year.isdigit() and next(year_dir.glob("*.parquet"), None) is not None:
                years.add(int(year))
    return sorted(years)


def list_assets(lake_path: str | Path, cfg: ExtractConfig, strict: bool = True,
                param: str = "lake.path") -> dict[tuple[str, str], list[Path]]:
    """(asset_class, symbol) -> its parquet files in the selected partitions, ordered by
    symbol, checking the selection is sane (errors name `param`, the lake path's key)."""
    return select_assets(lake_path, cfg, strict, param).assets


LAYOUT = "asset_class=<c>/frequency=<f>/symbol=<s>/year=<y>/*.parquet"


def check_lake_path(lake_path: str | Path, param: str = "lake.path") -> Path:
    """The lake folder, or one line naming `param` and what is there instead: nothing, a
    file, or a folder without `asset_class=` partitions (with what it does hold)."""
    path = Path(lake_path)
    if not path.exists():
        raise DataError(f"param {param}: {path} does not exist; point it at a hive-partitioned lake ({LAYOUT}), "
                        f"or leave it at {DEMO_LAKE} for the embedded demo")
    if not path.is_dir():
        raise DataError(f"param {param}: {path} is a file, not a folder; point it at the lake's top folder, "
                        f"the one holding asset_class=<c> folders")
    entries = sorted(d.name for d in path.iterdir() if not _hidden(d))
    if not any(_partition(name, "asset_class") for name in entries):
        found = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        below = next((name for name in entries if "=" in name), None)
        inner = next((name for name in entries if (path / name).is_dir()
                      and any(_partition(d.name, "asset_class") for d in (path / name).iterdir())), None)
        hint = (f"{below} is a partition below asset_class=: point {param} at the folder above" if below
                else f"{path / inner} is a lake: point {param} at it" if inner else f"the layout is {LAYOUT}")
        raise DataError(f"param {param}: {path} has no asset_class=<c> partitions (it holds "
                        f"{found or 'nothing'}); {hint}")
    return path


def select_assets(lake_path: str | Path, cfg: ExtractConfig, strict: bool, param: str = "lake.path") -> LakeScan:
    """scan_lake, ordered by symbol and restricted to `cfg.symbols`, with one-line errors for
    a lake path that is not a lake (naming `param`), an empty selection, a symbol under two
    classes and unknown symbols."""
    lake_path = check_lake_path(lake_path, param)
    scan = scan_lake(lake_path, cfg, strict)
    found = dict(sorted(scan.assets.items(), key=lambda item: (item[0][1], item[0][0])))
    asked = f"asset_classes={cfg.asset_classes} frequency={cfg.frequency} years={cfg.years}"
    if not found:
        raise DataError(f"lake {lake_path}: empty selection, no data for {asked}")
    symbols = [s for _, s in found]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        classes = {s: [c for c, x in found if x == s] for s in twice}
        raise DataError(f"lake {lake_path}: symbol(s) under two asset classes: {classes}")
    unknown = [s for s in cfg.symbols if s not in symbols]
    if unknown:
        raise DataError(f"lake {lake_path}: symbol(s) {', '.join(unknown)} not in {asked}; "
                        f"available: {', '.join(symbols)}")
    if cfg.symbols:
        found = {pair: files for pair, files in found.items() if pair[1] in cfg.symbols}
    scan.assets = found
    return scan


def _numeric(df: pl.DataFrame, where: str) -> list[pl.Expr]:
    """The OHLCV columns as float64; a column of another type must convert value by value
    (numbers stored as text), else the first value that does not is named."""
    exprs = []
    for c in OHLCV:
        col = df[c]
        if not (col.dtype.is_numeric() or col.dtype == pl.Null):
            converted = col.cast(pl.Float64, strict=False)
            bad = col.is_not_null() & converted.is_null()
            if bad.any():
                row = int(bad.arg_max())
                raise DataError(f"{where}: column {c} is not numeric ({col.dtype}): {bad.sum()} of {len(col)} "
                                f"values do not parse as numbers, e.g. {col[row]!r} in row {row}")
            logger.warning("%s: column %s stored as %s; every value parsed as a number", where, c, col.dtype)
        exprs.append(pl.col(c).cast(pl.Float64, strict=False))
    return exprs


def _utc(ts: pl.Series, where: str, naive_timezone: str | None) -> pl.Series:
    """Timestamps in UTC (microseconds). Timestamps without a zone are read in
    `naive_timezone`, and are an error when it is not set: a guess would shift every bar."""
    if ts.dtype.time_zone is not None:
        return ts.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if naive_timezone is None:
        raise DataError(f"{where}: timestamps have no time zone; set lake.naive_timezone to the zone they were "
                        "recorded in (e.g. UTC, America/New_York)")
    try:
        local = ts.dt.replace_time_zone(naive_timezone, ambiguous="raise", non_existent="raise")
    except pl.exceptions.PolarsError as e:
        raise DataError(f"{where}: timestamps cannot be read in lake.naive_timezone={naive_timezone}: "
                        f"{first_line(e)}") from None
    return local.dt.convert_time_zone("UTC").dt.cast_time_unit("us")


@dataclass
class CollectedAsset:
    """One asset's bars as read from its partition files, and the bars left out because they
    lie outside their file's `year=` partition (lake.strict: false)."""

    bars: pl.DataFrame
    wrong_year: int


def _partition_year(file: Path) -> int:
    return int(_partition(file.parent.name, "year"))


def _outside_year(ts: pl.Series, year: int, where: str, strict: bool) -> pl.Series:
    """Which bars of a file lie outside its `year=` partition (the year as stored: UTC for UTC
    timestamps, the wall clock for naive ones). Under lake.strict they stop the run."""
    outside = (ts.dt.year() != year).fill_null(False)
    count = int(outside.sum())
    if count and strict:
        years = sorted(set(ts.filter(outside).dt.year().to_list()))
        raise DataError(f"{where}: {count} of {len(ts)} bars are from {', '.join(map(str, years))}, not the "
                        f"partition's year={year}; move them to their year's partition, or set lake.strict: false "
                        f"to drop and count them")
    return outside


def _collect_symbol(lake_path: Path, symbol: str, files: list[Path], naive_timezone: str | None,
                    strict: bool) -> CollectedAsset:
    """Collect one asset from its partition files as a float64 frame with UTC timestamps.

    Rows keep the lake's order, bad order, duplicates and null timestamps included:
    preprocess repairs and reports them. Bars outside their file's year are refused
    (lake.strict) or dropped and counted."""
    parts, wrong_year = [], 0
    for f in files:
        where = f"lake {lake_path}: symbol {symbol}: {f}"
        try:
            df = pl.read_parquet(f, hive_partitioning=False)
        except Exception as e:  # noqa: BLE001 - polars raises several types for unreadable input
            raise DataError(f"lake {lake_path}: corrupt parquet file {f} ({first_line(e)})") from None
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"lake {lake_path}: symbol {symbol}: column {missing[0]} missing in {f}")
        ts = df["timestamp"]
        if not isinstance(ts.dtype, pl.Datetime):
            raise DataError(f"{where}: timestamp has type {ts.dtype}, expected a datetime")
        bars = df.select(_utc(ts, where, naive_timezone).alias("timestamp"), *_numeric(df, where))
        outside = _outside_year(ts, _partition_year(f), where, strict)
        if outside.any():
            wrong_year += int(outside.sum())
            logger.warning("%s: dropped %d bars outside the partition's year (lake.strict: false)",
                           where, int(outside.sum()))
            bars = bars.filter(~outside)
        parts.append(bars)
    return CollectedAsset(pl.concat(parts, how="vertical"), wrong_year)


DOMINANT = 2 / 3  # a step this common is the data's frequency
MIN_SPACINGS = 10  # fewer distinct steps between bars than this say nothing about the frequency


def typical_spacing(ts: pl.Series) -> tuple[pd.Timedelta, int, int] | None:
    """The most common step between consecutive distinct timestamps (the smallest one on a
    tie), how many steps have it, and how many there are; None when there are too few."""
    steps = ts.drop_nulls().unique().sort().diff().drop_nulls()
    if len(steps) < MIN_SPACINGS:
        return None
    counts = steps.value_counts(name="n").sort(["n", "timestamp"], descending=[True, False])
    return pd.Timedelta(counts["timestamp"][0]), int(counts["n"][0]), len(steps)


def spacing_mismatch(ts: pl.Series, frequency: str) -> str | None:
    """Why the bars do not fit their `frequency=` partition, or None: two thirds or more of
    their steps are another period. A gap, a weekend or a session break is never that common;
    nor, for long bars on an exchange, are the shorter steps around a lunch break or a close
    (4-hour Hong Kong bars step 210 minutes over lunch, then overnight: half the steps each)."""
    found = typical_spacing(ts)
    if found is None or found[0] == bar_period(frequency, "extract.frequency") or found[1] < DOMINANT * found[2]:
        return None
    step, n, total = found
    return (f"bars are {period_label(step)} apart ({n} of {total} steps), not the partition's "
            f"frequency={frequency}; move the files to the frequency they have")


def extract(lake_path: str | Path, cfg: ExtractConfig, out_dir: str | Path, *, strict: bool,
            naive_timezone: str | None, until: pd.Timestamp | None = None) -> list[dict]:
    """Write one parquet per selected asset plus manifest.json (the assets, and the partitions
    skipped when not `strict`); one asset in memory at a time, read from its own partition
    files only (the rest of the lake is never opened). `until`: only the bars stamped at or
    before it (a forecast as of that time)."""
    lake_path, out_dir = Path(lake_path), Path(out_dir)
    scan = select_assets(lake_path, cfg, strict)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    manifest = []
    for (asset_class, symbol), files in tqdm(scan.assets.items(), desc="extract", leave=False):
        collected = _collect_symbol(lake_path, symbol, files, naive_timezone, strict)
        df = collected.bars
        if until is not None:
            df = df.filter(pl.col("timestamp") <= until.to_pydatetime())
            if df.is_empty():
                raise DataError(f"lake {lake_path}: {symbol} has no bar at or before {until} (its first is "
                                f"{pd.Timestamp(collected.bars['timestamp'].min())}); forecast from a later time")
        mismatch = spacing_mismatch(df["timestamp"], cfg.frequency)
        if mismatch:
            scan.malformed(files[0].parent.parent, mismatch)
            continue
        df.write_parquet(out_dir / f"{symbol}.parquet")  # Polars' writer: no round trip through pandas
        first, last = df["timestamp"].min(), df["timestamp"].max()
        entry = {"symbol": symbol, "asset_class": asset_class, "frequency": cfg.frequency, "rows": len(df),
                 "first": pd.Timestamp(first).isoformat(), "last": pd.Timestamp(last).isoformat(),
                 "wrong_year": collected.wrong_year}
        logger.info("extract %s (%s): %d rows %s .. %s", symbol, asset_class, len(df), entry["first"], entry["last"])
        manifest.append(entry)
    payload: dict = {"assets": manifest}
    if scan.skipped:
        payload["skipped_partitions"] = scan.skipped
    (out_dir / "manifest.json").write_text(json.dumps(payload, indent=2))
    return manifest
