"""Preprocess stage: put every asset on its trading-calendar hourly grid, repair and report
bad bars, replace outliers, and fit per-variate scalers on the training period only.

Prices stay in their original units in the output; the scalers are saved next to them so
features can normalise and evaluation can denormalise with exactly the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from finmoirai.params import SplitConfig, require

logger = logging.getLogger(__name__)

PRICES = ["open", "high", "low", "close"]
OHLCV = [*PRICES, "volume"]
NY = "America/New_York"
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the std for Gaussian data
CALENDARS = ("crypto", "fx", "equity")
STD_TOL = 1e-9  # a std this small relative to the mean is rounding noise of a constant column


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Gap, outlier and scaler settings for the preprocess stage."""

    max_fill_bars: int
    outlier_window: int
    outlier_threshold: float
    min_train_rows: int

    def validate(self) -> None:
        require(self.max_fill_bars >= 0, f"param preprocess.max_fill_bars: must be >= 0, got {self.max_fill_bars}")
        require(self.outlier_window >= 3, f"param preprocess.outlier_window: must be >= 3, got {self.outlier_window}")
        require(self.outlier_threshold > 0,
                f"param preprocess.outlier_threshold: must be positive, got {self.outlier_threshold}")
        require(self.min_train_rows >= 1, f"param preprocess.min_train_rows: must be >= 1, got {self.min_train_rows}")


# --------------------------------------------------------------------------- calendars


def trading_grid(asset_class: str, timestamps: pd.Series) -> pd.DatetimeIndex:
    """Hourly UTC grid of bars the market of `asset_class` trades, spanning the data.

    crypto trades 24/7. fx trades from Sunday 17:00 to Friday 17:00 New York time, i.e.
    Sunday 22:00 to Friday 22:00 UTC in winter (an hour earlier in US summer time, which
    is what the data shows), so weekend hours are not gaps. equity (New York regular
    session) has bars at 9:30, 10:30, ..., 15:30 local time on every day with ANY data:
    days without a single bar are taken to be exchange holidays, not gaps, because no
    exchange calendar is bundled. Half-days therefore show up as filled afternoon gaps.
    """
    ts = pd.DatetimeIndex(timestamps).as_unit("us")
    if asset_class == "crypto":
        return pd.date_range(ts.min(), ts.max(), freq="1h", name="timestamp", unit="us")
    if asset_class == "fx":
        hours = pd.date_range(ts.min(), ts.max(), freq="1h", name="timestamp", unit="us")
        return hours[_fx_open(hours)]
    if asset_class == "equity":
        return _equity_grid(ts)
    raise ValueError(f"no trading calendar for asset class {asset_class!r}; known: {', '.join(CALENDARS)}")


def _fx_open(hours: pd.DatetimeIndex) -> np.ndarray:
    local = hours.tz_convert(NY)
    dow, hour = local.dayofweek, local.hour
    closed = (dow == 5) | ((dow == 4) & (hour >= 17)) | ((dow == 6) & (hour < 17))
    return ~np.asarray(closed)


def _equity_grid(ts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    days = pd.DatetimeIndex(ts.tz_convert(NY).normalize().unique()).tz_localize(None)
    offsets = pd.to_timedelta([9.5 + h for h in range(7)], unit="h")
    wall = (days.values[:, None] + offsets.values[None, :]).ravel()
    grid = pd.DatetimeIndex(wall).tz_localize(NY).tz_convert("UTC").sort_values()
    grid = grid[(grid >= ts.min()) & (grid <= ts.max())]
    return pd.DatetimeIndex(grid, name="timestamp").as_unit("us")


# --------------------------------------------------------------------------- bad bars


def clean_bars(df: pd.DataFrame, q: dict[str, int]) -> pd.DataFrame:
    """Sort, dedupe, drop unusable prices and fix high/low, counting each repair in `q`."""
    ts = df["timestamp"]
    q["unsorted"] = int((ts.diff() < pd.Timedelta(0)).sum())
    df = df.sort_values("timestamp", kind="stable")
    dup = df["timestamp"].duplicated(keep="last")
    q["duplicate_timestamps"] = int(dup.sum())
    df = df[~dup]
    bad = df[PRICES].isna().any(axis=1) | (df[PRICES] <= 0).any(axis=1)
    q["non_positive_price"] = int(bad.sum())
    df = df[~bad].copy()
    vol = df["volume"]
    q["zero_volume"] = int((vol.isna() | (vol <= 0)).sum())
    df["volume"] = vol.fillna(0.0).clip(lower=0.0)
    return repair_high_low(df, q)


def repair_high_low(df: pd.DataFrame, q: dict[str, int]) -> pd.DataFrame:
    """Make high/low the envelope of open/close (and of each other) where they are not."""
    hi = df[PRICES].max(axis=1)
    lo = df[PRICES].min(axis=1)
    wrong = (df["high"] < hi) | (df["low"] > lo)
    q["inconsistent_high_low"] = int(wrong.sum())
    df = df.copy()
    df["high"], df["low"] = hi, lo
    return df


def hampel_flags(log_close: np.ndarray, window: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centered Hampel filter: (flags, rolling median, scaled MAD) of each point's window."""
    half = window // 2
    padded = np.concatenate([np.full(half, np.nan), log_close, np.full(window - 1 - half, np.nan)])
    win = np.lib.stride_tricks.sliding_window_view(padded, window)
    med = np.nanmedian(win, axis=1)
    mad = MAD_SCALE * np.nanmedian(np.abs(win - med[:, None]), axis=1)
    flags = (mad > 0) & (np.abs(log_close - med) > threshold * mad)
    return flags, med, mad


def replace_outliers(df: pd.DataFrame, cfg: PreprocessConfig, q: dict[str, int]) -> pd.DataFrame:
    """Replace close outliers by the rolling median; clip o/h/l into the accepted band."""
    df = df.copy()
    x = np.log(df["close"].to_numpy())
    flags, med, mad = hampel_flags(x, cfg.outlier_window, cfg.outlier_threshold)
    q["outliers_replaced"] = int(flags.sum())
    if flags.any():
        lo = np.exp(med - cfg.outlier_threshold * mad)[flags]
        hi = np.exp(med + cfg.outlier_threshold * mad)[flags]
        idx = df.index[flags]
        df.loc[idx, "close"] = np.exp(med[flags])
        for col in ("open", "high", "low"):
            df.loc[idx, col] = np.clip(df.loc[idx, col].to_numpy(), lo, hi)
        df.loc[idx, "high"] = df.loc[idx, PRICES].max(axis=1)
        df.loc[idx, "low"] = df.loc[idx, PRICES].min(axis=1)
    df["observed"] = ~flags
    return df


# --------------------------------------------------------------------------- grid filling


def fill_grid(df: pd.DataFrame, grid: pd.DatetimeIndex, cfg: PreprocessConfig, q: dict[str, int]) -> pd.DataFrame:
    """Reindex on the calendar grid; missing bars are flat at the previous close, volume 0."""
    on_grid = df["timestamp"].isin(grid)
    q["off_calendar"] = int((~on_grid).sum())
    df = df[on_grid].set_index("timestamp").reindex(grid)
    missing = df["close"].isna()
    q["gaps_filled"] = int(missing.sum())
    q["long_gaps"] = count_long_runs(missing.to_numpy(), cfg.max_fill_bars)
    df["close"] = df["close"].ffill()
    for col in ("open", "high", "low"):
        df[col] = df[col].fillna(df["close"])
    df["volume"] = df["volume"].fillna(0.0)
    df["observed"] = df["observed"].astype("boolean").fillna(False).astype(bool)
    return df.reset_index()


def count_long_runs(missing: np.ndarray, max_len: int) -> int:
    """Number of runs of consecutive True values longer than `max_len`."""
    padded = np.concatenate([[False], missing, [False]]).astype(np.int8)
    edges = np.diff(padded)
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((lengths > max_len).sum())


def clean_asset(df: pd.DataFrame, asset_class: str, cfg: PreprocessConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Full cleaning of one asset: bad bars, outliers, calendar grid. Returns (frame, counts)."""
    q: dict[str, int] = {"rows_in": len(df)}
    df = df.reset_index(drop=True)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).dt.as_unit("us")
    df = clean_bars(df, q)
    if df.empty:
        raise ValueError(f"asset has no usable bars ({q['rows_in']} rows in, all with bad prices)")
    df = replace_outliers(df.reset_index(drop=True), cfg, q)
    grid = trading_grid(asset_class, df["timestamp"])
    out = fill_grid(df, grid, cfg, q)
    q["rows_out"] = len(out)
    return out[["timestamp", *OHLCV, "observed"]], q


# --------------------------------------------------------------------------- scalers


def fit_scaler(df: pd.DataFrame, split: SplitConfig, min_rows: int, symbol: str) -> dict[str, dict[str, Any]]:
    """Per-variate z-score fitted on observed training rows only (t < train_end)."""
    train = df[(df["timestamp"] < split.train_end_ts) & df["observed"]]
    if len(train) < min_rows:
        raise ValueError(
            f"asset {symbol}: {len(train)} observed training rows before {split.train_end} "
            f"(of {len(df)} rows), need preprocess.min_train_rows={min_rows}"
        )
    entry = {}
    for col in OHLCV:
        transform = "log1p" if col == "volume" else "identity"
        x = _forward(train[col].to_numpy(dtype=float), transform)
        mean = float(np.mean(x))
        entry[col] = {"mean": mean, "std": safe_std(float(np.std(x)), mean), "transform": transform}
    return entry


def safe_std(std: float, mean: float) -> float:
    """std, or 1.0 when it is zero, NaN or rounding noise (a constant column)."""
    return std if np.isfinite(std) and std > STD_TOL * max(1.0, abs(mean)) else 1.0


def _forward(x: np.ndarray, transform: str) -> np.ndarray:
    if transform == "log1p":
        return np.log1p(x)
    if transform == "identity":
        return x
    raise ValueError(f"unknown scaler transform {transform!r}")


def apply_scaler(values: Any, entry: dict[str, Any]) -> np.ndarray:
    """Normalise values with one column's scaler entry {mean, std, transform}."""
    x = _forward(np.asarray(values, dtype=float), entry["transform"])
    return (x - entry["mean"]) / entry["std"]


def invert_scaler(values: Any, entry: dict[str, Any]) -> np.ndarray:
    """Undo apply_scaler: back to original units (used to denormalise forecasts)."""
    x = np.asarray(values, dtype=float) * entry["std"] + entry["mean"]
    if entry["transform"] == "log1p":
        return np.expm1(x)
    if entry["transform"] == "identity":
        return x
    raise ValueError(f"unknown scaler transform {entry['transform']!r}")


# --------------------------------------------------------------------------- stage


def split_counts(ts: pd.Series, split: SplitConfig) -> dict[str, int]:
    """Rows per split: train t < train_end <= val < val_end <= test."""
    train = ts < split.train_end_ts
    test = ts >= split.val_end_ts
    return {"train_rows": int(train.sum()), "val_rows": int((~train & ~test).sum()), "test_rows": int(test.sum())}


def preprocess(in_dir: str | Path, split: SplitConfig, cfg: PreprocessConfig, out_dir: str | Path) -> dict:
    """Clean every extracted asset; write parquets, scalers.json, manifest.json, quality.json."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    assets = json.loads((in_dir / "manifest.json").read_text())["assets"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    scalers, quality, manifest = {}, {}, []
    for asset in tqdm(assets, desc="preprocess", leave=False):
        sym = asset["symbol"]
        raw = pd.read_parquet(in_dir / f"{sym}.parquet")
        try:
            df, q = clean_asset(raw, asset["asset_class"], cfg)
        except ValueError as e:
            raise ValueError(f"asset {sym}: {e}") from None
        scalers[sym] = fit_scaler(df, split, cfg.min_train_rows, sym)
        q.update(split_counts(df["timestamp"], split))
        _log_asset(sym, q)
        df.to_parquet(out_dir / f"{sym}.parquet", index=False)
        quality[sym] = q
        manifest.append({**asset, "rows_out": len(df)})
    _write_json(out_dir / "scalers.json", scalers)
    _write_json(out_dir / "manifest.json", {"assets": manifest})
    _write_json(out_dir / "quality.json", quality)
    return {"assets": manifest, "quality": quality, "scalers": scalers}


def _log_asset(sym: str, q: dict[str, int]) -> None:
    logger.info(
        "%s: %d -> %d rows, %d gaps filled (%d long), %d outliers, %d bad high/low, %d bad price, "
        "%d zero volume, %d duplicates, %d unsorted, %d off-calendar; train/val/test %d/%d/%d",
        sym, q["rows_in"], q["rows_out"], q["gaps_filled"], q["long_gaps"], q["outliers_replaced"],
        q["inconsistent_high_low"], q["non_positive_price"], q["zero_volume"], q["duplicate_timestamps"],
        q["unsorted"], q["off_calendar"], q["train_rows"], q["val_rows"], q["test_rows"],
    )
    if q["test_rows"] == 0:
        logger.warning("%s has no test rows (data ends before the test period); it cannot be evaluated", sym)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2))
