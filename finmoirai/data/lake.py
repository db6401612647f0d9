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
from pathlib import Path

import pandas as pd
import polars as pl
from tqdm import tqdm

from finmoirai.params import ExtractConfig

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


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _partition(name: str, key: str) -> str | None:
    prefix = f"{key}="
    return name[len(prefix):] if name.startswith(prefix) else None


def _year_files(symbol_dir: Path, years: list[int]) -> list[Path]:
    """Parquet files of the selected years under one symbol's partition, in year order."""
    files = []
    for year in sorted(years):
        files += sorted(p for p in (symbol_dir / f"year={year}").glob("*.parquet") if p.is_file())
    return files


def _asset_dirs(lake_path: Path, cfg: ExtractConfig) -> dict[tuple[str, str], list[Path]]:
    """Partition pruning on the directory tree: (asset_class, symbol) -> its selected files.

    Only the directories of the selected classes and frequency are listed, and only the
    selected years' files are returned; nothing outside the selection is opened."""
    found: dict[tuple[str, str], list[Path]] = {}
    for asset_class in cfg.asset_classes:
        base = lake_path / f"asset_class={asset_class}" / f"frequency={cfg.frequency}"
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            sym = _partition(d.name, "symbol")
            if sym is None or not d.is_dir():
                continue
            files = _year_files(d, cfg.years)
            if files:
                found[(asset_class, sym)] = files
    return found


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


def list_assets(lake_path: str | Path, cfg: ExtractConfig) -> dict[tuple[str, str], list[Path]]:
    """(asset_class, symbol) -> its parquet files in the selected partitions, ordered by
    symbol, checking the selection is sane."""
    lake_path = Path(lake_path)
    if not lake_path.is_dir():
        raise ValueError(f"lake {lake_path}: directory does not exist")
    selected = _asset_dirs(lake_path, cfg)
    if not selected and not next(lake_path.glob("**/*.parquet"), None):
        raise ValueError(f"lake {lake_path}: no parquet files found")
    found = dict(sorted(selected.items(), key=lambda item: (item[0][1], item[0][0])))
    asked = f"asset_classes={cfg.asset_classes} frequency={cfg.frequency} years={cfg.years}"
    if not found:
        raise ValueError(f"lake {lake_path}: empty selection, no data for {asked}")
    symbols = [s for _, s in found]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        classes = {s: [c for c, x in found if x == s] for s in twice}
        raise ValueError(f"lake {lake_path}: symbol(s) under two asset classes: {classes}")
    unknown = [s for s in cfg.symbols if s not in symbols]
    if unknown:
        raise ValueError(f"lake {lake_path}: symbol(s) {', '.join(unknown)} not in {asked}; "
                         f"available: {', '.join(symbols)}")
    if cfg.symbols:
        found = {pair: files for pair, files in found.items() if pair[1] in cfg.symbols}
    return found


def _collect_symbol(lake_path: Path, symbol: str, files: list[Path]) -> pl.DataFrame:
    """Collect one asset from its partition files as a float64 frame with UTC timestamps.

    Rows keep the lake's order, bad order and duplicates included: preprocess repairs and
    reports them."""
    parts = []
    for f in files:
        try:
            df = pl.read_parquet(f, hive_partitioning=False)
        except Exception as e:  # noqa: BLE001 - polars raises several types for unreadable input
            raise ValueError(f"lake {lake_path}: corrupt parquet file {f} ({_first_line(e)})") from None
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"lake {lake_path}: symbol {symbol}: column {missing[0]} missing in {f}")
        ts = df["timestamp"]
        if not isinstance(ts.dtype, pl.Datetime):
            raise ValueError(f"lake {lake_path}: symbol {symbol}: timestamp has type {ts.dtype} in {f}, "
                             "expected a datetime")
        ts = ts.dt.replace_time_zone("UTC") if ts.dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
        parts.append(df.select(ts.dt.cast_time_unit("us").alias("timestamp"),
                               *[pl.col(c).cast(pl.Float64) for c in OHLCV]))
    return pl.concat(parts, how="vertical")


def extract(lake_path: str | Path, cfg: ExtractConfig, out_dir: str | Path) -> list[dict]:
    """Write one parquet per selected asset plus manifest.json; one asset in memory at a time,
    read from its own partition files only (the rest of the lake is never opened)."""
    lake_path, out_dir = Path(lake_path), Path(out_dir)
    assets = list_assets(lake_path, cfg)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    manifest = []
    for (asset_class, symbol), files in tqdm(assets.items(), desc="extract", leave=False):
        df = _collect_symbol(lake_path, symbol, files)
        df.write_parquet(out_dir / f"{symbol}.parquet")  # Polars' writer: no round trip through pandas
        first, last = df["timestamp"].min(), df["timestamp"].max()
        entry = {"symbol": symbol, "asset_class": asset_class, "frequency": cfg.frequency, "rows": len(df),
                 "first": pd.Timestamp(first).isoformat(), "last": pd.Timestamp(last).isoformat()}
        logger.info("extract %s (%s): %d rows %s .. %s", symbol, asset_class, len(df), entry["first"], entry["last"])
        manifest.append(entry)
    (out_dir / "manifest.json").write_text(json.dumps({"assets": manifest}, indent=2))
    return manifest
