"""Preprocess stage: put every asset on its trading calendar's bar grid, repair and report
bad bars, replace outliers, and fit per-variate scalers on the training period only.

Prices stay in their original units in the output; the scalers are saved next to them so
features can normalise and evaluation can denormalise with exactly the same numbers.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd

from finmoirai import write_json, write_parquet
from finmoirai.data.calendars import DAY, BarCalendar, asset_calendar
from finmoirai.data.parallel import kept_assets, map_assets, require_kept, resolve_workers
from finmoirai.errors import BadAsset, about_asset
from finmoirai.params.data import MarketConfig, PreprocessConfig, SplitConfig

logger = logging.getLogger(__name__)

PRICES = ["open", "high", "low", "close"]
OHLCV = [*PRICES, "volume"]
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the std for Gaussian data
MAX_OFF_GRID_SHARE = 0.5  # more bars than this off the grid: the feed's timestamps are wrong, not a few bars
WARN_OFF_CALENDAR_SHARE = 0.05  # more bars than this outside the sessions: extended hours, or a wrong calendar or stamp
STD_TOL = 1e-9  # a std this small relative to the mean is rounding noise of a constant column

# What preprocess does with each kind of bad bar (and with gaps): the data-quality report
# lists every count under these names, so nothing is dropped or changed without a record.
ACTIONS: dict[str, dict[str, str]] = {
    "wrong_year": {"action": "dropped",
                   "detail": "bars outside their file's year= partition, dropped by extract (lake.strict: false; "
                             "under strict they stop the run)"},
    "null_timestamps": {"action": "dropped", "detail": "rows without a timestamp; dropped before anything else"},
    "unsorted": {"action": "reordered",
                 "detail": "rows out of timestamp order (counted against the previous row); sorted, kept"},
    "duplicate_timestamps": {"action": "dropped",
                             "detail": "extra rows of a repeated timestamp; the last one written is kept"},
    "non_positive_price": {"action": "dropped",
                           "detail": "an open/high/low/close that is NaN, infinite or <= 0; the row is dropped and, "
                                     "inside the data's span, its slot becomes a filled gap (observed=false)"},
    "high_below_low": {"action": "repaired",
                       "detail": "high < low; high/low reset to the max/min of open, high, low, close (kept, "
                                 "also counted in inconsistent_high_low)"},
    "inconsistent_high_low": {"action": "repaired",
                              "detail": "high below max(open, close, low) or low above min(...); high/low "
                                        "reset to the envelope of the four prices, row kept"},
    "zero_volume": {"action": "kept",
                    "detail": "volume zero, negative, NaN or infinite; all but zero set to 0, row kept as observed"},
    "outliers": {"action": "flagged",
                 "detail": "Hampel outlier of log close against the trailing preprocess.outlier_window bars (the bar "
                           "and those before it, never after: no look-ahead). outlier_action flag: counted, the bar "
                           "kept as observed; replace: close set to the trailing median, open/high/low clipped into "
                           "the accepted band, observed=false (never a forecast anchor or truth)"},
    "off_grid": {"action": "dropped",
                 "detail": "timestamp between the bar grid's points (e.g. 10:00:00.123 on an hourly grid at whole "
                           "hours, or a daily bar not at 00:00 UTC): never moved onto the grid, never taken as the "
                           "grid; an asset with more than half its bars off the grid stops the run (its feed's "
                           "stamps are wrong)"},
    "off_calendar": {"action": "dropped",
                     "detail": "timestamp on the bar grid but outside its market's sessions (market.calendars: "
                               "holidays, early closes, nights and weekends of an exchange)"},
    "gaps_filled": {"action": "inserted",
                    "detail": "missing calendar bar; flat at the previous close, volume 0, observed=false"},
    "long_gaps": {"action": "inserted",
                  "detail": "runs of missing bars longer than preprocess.max_fill_bars (filled as gaps_filled, "
                            "counted as runs)"},
}
DROPPED = ("wrong_year", "null_timestamps", "duplicate_timestamps", "non_positive_price", "off_grid", "off_calendar")
INSERTED = ("gaps_filled",)


# --------------------------------------------------------------------------- calendars


def off_grid(timestamps: pd.Series, grid: pd.DatetimeIndex, period: pd.Timedelta) -> np.ndarray:
    """Which timestamps fall between the grid's points: not a whole number of bars away from
    any of them (hourly crypto/fx at whole hours, New York equity at :30 in summer and winter,
    daily bars at midnight; the calendar decides which points on the grid trade)."""
    step = period // pd.Timedelta(microseconds=1)
    phases = np.unique(grid.as_unit("us").asi8 % step)
    return ~np.isin(pd.DatetimeIndex(timestamps).as_unit("us").asi8 % step, phases)


def drop_off_grid(df: pd.DataFrame, grid: pd.DatetimeIndex, bars: BarCalendar,
                  symbol: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop the bars between the grid's points and count them. A feed whose stamps are mostly
    off the grid (say every bar at :00:00.123) is wrong as a whole: it stops, with an example."""
    outside = off_grid(df["timestamp"], grid, bars.period)
    if outside.mean() > MAX_OFF_GRID_SHARE:
        example = df["timestamp"].to_numpy()[outside.argmax()]
        fix = ("stamp each daily bar at 00:00 UTC of its session's date" if bars.period >= DAY else
               f"stamp each bar at its {bars.stamp} (market.bar_stamp), on the calendar's clock")
        raise BadAsset(symbol, f"{int(outside.sum())} of {len(df)} bars are off the grid of {bars.label} (e.g. "
                               f"{pd.Timestamp(example).isoformat()}; the grid's bars are at e.g. "
                               f"{grid[0].isoformat() if len(grid) else 'none'}): {fix}")
    return df[~outside], {"off_grid": int(outside.sum())}


def trading_grid(bars: BarCalendar, timestamps: pd.Series) -> pd.DatetimeIndex:
    """Every bar the asset's market trades, from its first timestamp to its last: the sessions,
    holidays and early closes of its calendar (finmoirai.data.calendars). A holiday has no bar,
    so it is not a gap; the bars after an early close are not there to be filled."""
    ts = pd.DatetimeIndex(timestamps)
    return bars.grid(ts.min(), ts.max())


# --------------------------------------------------------------------------- bad bars


def as_utc(ts: pd.Series) -> pd.Series:
    """Timestamps as datetime64[us, UTC]. Extract already writes that type; it is kept as is,
    because pd.to_datetime would walk every value to decide whether to cache them."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC").dt.as_unit("us")
    return pd.to_datetime(ts, utc=True).dt.as_unit("us")


def clean_bars(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop rows without a timestamp, sort, dedupe, drop unusable prices and fix high/low;
    returns the bars and the count of each kind of repair."""
    null_ts = df["timestamp"].isna()
    df = df[~null_ts]
    unsorted = int((df["timestamp"].diff() < pd.Timedelta(0)).sum())
    if unsorted:
        df = df.sort_values("timestamp", kind="stable")
    dup = df["timestamp"].duplicated(keep="last")
    df = df[~dup]
    prices = df[PRICES].to_numpy()
    bad = ~(np.isfinite(prices) & (prices > 0)).all(axis=1)
    df = df[~bad].copy()
    vol = df["volume"].to_numpy()
    usable = np.isfinite(vol) & (vol > 0)
    df["volume"] = np.where(usable, vol, 0.0)
    df, high_low = repair_high_low(df)
    counts = {"null_timestamps": int(null_ts.sum()), "unsorted": unsorted, "duplicate_timestamps": int(dup.sum()),
              "non_positive_price": int(bad.sum()), "zero_volume": int((~usable).sum())}
    return df, counts | high_low


def repair_high_low(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Make high/low the envelope of open/close (and of each other) where they are not;
    returns the bars and the counts of rows that needed it."""
    prices = df[PRICES].to_numpy()  # NumPy row max/min: pandas' axis=1 reductions are slow
    hi, lo = prices.max(axis=1), prices.min(axis=1)
    high, low = df["high"].to_numpy(), df["low"].to_numpy()
    counts = {"high_below_low": int((high < low).sum()), "inconsistent_high_low": int(((high < hi) | (low > lo)).sum())}
    df = df.copy()
    df["high"], df["low"] = hi, lo
    return df, counts


def hampel_flags(log_close: np.ndarray, window: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing (causal) Hampel filter: (flags, rolling median, scaled MAD) of each point's window.

    The window of point i is x[i - window + 1 : i + 1], cut at the series' start: whether bar
    i is an outlier depends on bars up to i only. (A centred window would decide with bars
    after i: whether a jump is replaced would depend on whether it later reverts.) Median and
    MAD are exactly np.median's (the two middle values averaged)."""
    x = np.ascontiguousarray(log_close, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("Hampel filter needs finite log prices (bad prices are dropped before it)")
    med, mad = _rolling_median_mad(x, window)
    mad *= MAD_SCALE
    flags = (mad > 0) & (np.abs(x - med) > threshold * mad)
    return flags, med, mad


@numba.njit(cache=True)
def _rolling_median_mad(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Trailing rolling median and MAD in O(n * window): a sorted copy of the window is kept up
    to date (one removal and one insertion per step), the median is read off its middle, and
    the MAD is the median of the deviations, merged outward from the median in sorted order.
    (np.median over a sliding-window view does a partition per row: several times slower.)"""
    n = len(x)
    med = np.empty(n)
    mad = np.empty(n)
    buf = np.empty(window)
    k = 0
    for i in range(n):
        if i - window >= 0:
            k = _remove(buf, k, x[i - window])
        k = _insert(buf, k, x[i])
        m = buf[k // 2] if k % 2 == 1 else (buf[k // 2 - 1] + buf[k // 2]) / 2.0
        med[i] = m
        # Deviations below the median grow leftwards from `lo`, those above rightwards from
        # `hi`; taking the smaller head each time yields them in sorted order.
        hi = 0
        while hi < k and buf[hi] < m:
            hi += 1
        lo = hi - 1
        prev = 0.0
        cur = 0.0
        for _ in range(k // 2 + 1):
            prev = cur
            if lo >= 0 and (hi >= k or m - buf[lo] <= buf[hi] - m):
                cur = m - buf[lo]
                lo -= 1
            else:
                cur = buf[hi] - m
                hi += 1
        mad[i] = cur if k % 2 == 1 else (prev + cur) / 2.0
    return med, mad


@numba.njit(cache=True)
def _insert(buf: np.ndarray, k: int, value: float) -> int:  # pragma: no cover
    j = k
    while j > 0 and buf[j - 1] > value:
        buf[j] = buf[j - 1]
        j -= 1
    buf[j] = value
    return k + 1


@numba.njit(cache=True)
def _remove(buf: np.ndarray, k: int, value: float) -> int:  # pragma: no cover
    j = np.searchsorted(buf[:k], value)
    for t in range(j, k - 1):
        buf[t] = buf[t + 1]
    return k - 1


def replace_outliers(df: pd.DataFrame, cfg: PreprocessConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Count close outliers of the trailing Hampel filter; with `outlier_action: replace`, set
    them to the trailing median and clip o/h/l into the accepted band (unobserved from then on).
    Returns the bars and the count of outliers."""
    df = df.copy()
    x = np.log(df["close"].to_numpy())
    flags, med, mad = hampel_flags(x, cfg.outlier_window, cfg.outlier_threshold)
    counts = {"outliers": int(flags.sum())}
    if cfg.outlier_action == "flag":
        df["observed"] = True
        return df, counts
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
    return df, counts


# --------------------------------------------------------------------------- grid filling


def fill_grid(df: pd.DataFrame, grid: pd.DatetimeIndex, cfg: PreprocessConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Reindex on the calendar grid (the bars on it: off-grid ones are dropped before); missing
    bars are flat at the previous close, volume 0. Returns the bars and the counts of
    off-calendar bars dropped and gaps filled."""
    on_calendar = df["timestamp"].isin(grid)
    df = df[on_calendar].set_index("timestamp").reindex(grid)
    missing = df["close"].isna()
    counts = {"off_calendar": int((~on_calendar).sum()), "gaps_filled": int(missing.sum()),
              "long_gaps": count_long_runs(missing.to_numpy(), cfg.max_fill_bars)}
    df["close"] = df["close"].ffill()
    for col in ("open", "high", "low"):
        df[col] = df[col].fillna(df["close"])
    df["volume"] = df["volume"].fillna(0.0)
    df["observed"] = df["observed"].astype("boolean").fillna(False).astype(bool)
    return df.reset_index(), counts


def count_long_runs(missing: np.ndarray, max_len: int) -> int:
    """Number of runs of consecutive True values longer than `max_len`."""
    padded = np.concatenate([[False], missing, [False]]).astype(np.int8)
    edges = np.diff(padded)
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((lengths > max_len).sum())


def clean_asset(df: pd.DataFrame, calendar: BarCalendar, cfg: PreprocessConfig,
                symbol: str = "", wrong_year: int = 0) -> tuple[pd.DataFrame, dict[str, int]]:
    """Full cleaning of one asset: bad bars, off-grid stamps, outliers, the grid of its calendar.
    `wrong_year`: the asset's bars extract dropped (outside their year partition), counted in
    as read from the lake. Returns (frame, counts)."""
    rows_in = len(df) + wrong_year
    df = df.reset_index(drop=True)
    df["timestamp"] = as_utc(df["timestamp"])
    df, repaired = clean_bars(df)
    if df.empty:
        raise BadAsset(symbol, f"no usable bars ({rows_in} rows in, none with a timestamp and valid prices)")
    grid = trading_grid(calendar, df["timestamp"])
    df, stamps = drop_off_grid(df, grid, calendar, symbol)
    df, outliers = replace_outliers(df.reset_index(drop=True), cfg)
    out, filled = fill_grid(df, grid, cfg)
    counts = {"rows_in": rows_in, "wrong_year": wrong_year} | repaired | stamps | outliers | filled
    counts |= {"rows_out": len(out), "rows_dropped": sum(counts[k] for k in DROPPED),
               "rows_inserted": sum(counts[k] for k in INSERTED)}
    if rows_in - counts["rows_dropped"] + counts["rows_inserted"] != len(out):  # nothing vanishes unrecorded
        raise AssertionError(f"row accounting does not balance: {counts}")
    if counts["off_calendar"] > WARN_OFF_CALENDAR_SHARE * rows_in:
        logger.warning("%s: %d of %d bars are outside the sessions of %s (dropped): a feed with extended hours, or "
                       "a wrong market.calendars / market.bar_stamp?", symbol, counts["off_calendar"], rows_in,
                       calendar.label)
    return out[["timestamp", *OHLCV, "observed"]], counts


# --------------------------------------------------------------------------- scalers


class TooFewTrainingRows(BadAsset):
    """An asset has fewer observed rows before split.train_end than preprocess.min_train_rows.

    Its own type so that a caller with a different split (evaluate.lake_path's warm-up) can
    say which of its params to change; the message stays the main pipeline's."""


def fit_scaler(df: pd.DataFrame, split: SplitConfig, min_rows: int, symbol: str) -> dict[str, dict[str, Any]]:
    """Per-variate z-score fitted on observed training rows only (t < train_end)."""
    train = df[(df["timestamp"] < split.train_end_ts) & df["observed"]]
    if len(train) < min_rows:
        raise TooFewTrainingRows(
            symbol, f"{len(train)} observed training rows before {split.train_end} (of {len(df)} rows), "
                    f"need preprocess.min_train_rows={min_rows}")
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


SCORED_PERIODS = ("val", "test")  # the periods the main pipeline needs bars in (some asset's, at least)


def preprocess_one(asset: dict, in_dir: Path, out_dir: Path, split: SplitConfig, cfg: PreprocessConfig,
                   market: MarketConfig,
                   fitted: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, int], dict[str, Any]] | str:
    """Clean one extracted asset and write its parquet; returns (quality counts, scaler), or
    why the asset was left out (`preprocess.on_bad_asset: skip`). `fitted`: scalers from a
    trained model's folder, per symbol, used instead of fitting on the training period."""
    sym = asset["symbol"]
    try:
        with about_asset(sym):
            raw = pd.read_parquet(in_dir / f"{sym}.parquet")
            df, counts = clean_asset(raw, asset_calendar(market, asset), cfg, sym, asset.get("wrong_year", 0))
            scaler = fit_scaler(df, split, cfg.min_train_rows, sym) if fitted is None else fitted[sym]
    except BadAsset as e:
        if cfg.on_bad_asset == "skip":
            return e.reason
        raise
    write_parquet(df, out_dir / f"{sym}.parquet")
    return counts | split_counts(df["timestamp"], split), scaler


def preprocess(in_dir: str | Path, split: SplitConfig, cfg: PreprocessConfig, out_dir: str | Path,
               market: MarketConfig, metrics_path: str | Path | None = None,
               periods: tuple[str, ...] = SCORED_PERIODS, fitted: dict[str, dict] | None = None) -> dict:
    """Clean every extracted asset; write parquets, scalers.json, manifest.json, quality.json
    (raw counts per asset), quality_report.json (totals, actions, per-asset counts, what was
    left out) and, to `metrics_path` when given, the report's headline totals (DVC metrics:
    `dvc exp show`). `periods`: the split periods that some asset must have bars in;
    `fitted`: a trained model's scalers per symbol, applied instead of fitted (forecasting).

    Assets are independent, so they are processed one at a time per worker process
    (`cfg.workers`); memory is bounded by the assets in flight, never by the whole lake."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    extracted = json.loads((in_dir / "manifest.json").read_text())
    assets = extracted["assets"]
    unused = sorted(set(market.symbol_calendars) - {a["symbol"] for a in assets})
    if unused:
        logger.warning("market.symbol_calendars names symbol(s) not extracted: %s", ", ".join(unused))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    workers = resolve_workers(cfg.workers, len(assets))
    logger.info("preprocess: %d assets on %d process(es)", len(assets), workers)
    clean_one = functools.partial(preprocess_one, in_dir=in_dir, out_dir=out_dir, split=split, cfg=cfg, market=market,
                                  fitted=fitted)
    scalers, quality, manifest, skipped = {}, {}, [], {}
    results = map_assets(clean_one, assets, workers)
    for asset, (counts, scaler) in kept_assets(assets, results, "preprocess", skipped):
        sym = asset["symbol"]
        scalers[sym] = scaler
        _log_asset(sym, counts)
        quality[sym] = counts
        manifest.append({**asset, "calendar": asset_calendar(market, asset).name, "rows_out": counts["rows_out"]})
    require_kept(manifest, skipped, in_dir)
    split.require_bars(quality.values(), periods)
    write_json(out_dir / "scalers.json", scalers)
    write_json(out_dir / "manifest.json", {"assets": manifest} | ({"skipped_assets": skipped} if skipped else {}))
    write_json(out_dir / "quality.json", quality)
    report = quality_report(quality, skipped, extracted.get("skipped_partitions", []))
    write_json(out_dir / "quality_report.json", report)
    if metrics_path is not None:
        write_json(Path(metrics_path), quality_headline(report))
    return {"assets": manifest, "quality": quality, "scalers": scalers, "report": report}


def quality_report(quality: dict[str, dict[str, int]], skipped_assets: dict[str, str] | None = None,
                   skipped_partitions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The data-quality report: totals, what is done with each kind of bad bar, per-asset counts,
    and what was left out: assets (preprocess.on_bad_asset: skip) and lake partitions
    (lake.strict: false), each with the reason.

    Every row is accounted for: rows_out = rows_in - rows_dropped + rows_inserted per asset,
    rows_dropped being the sum of the kinds whose action is "dropped"."""
    skipped_assets, skipped_partitions = skipped_assets or {}, skipped_partitions or []
    keys = ["rows_in", "rows_out", "rows_dropped", "rows_inserted", *ACTIONS]
    per_asset = {sym: {k: int(counts[k]) for k in keys} for sym, counts in quality.items()}
    totals = {"assets": len(per_asset)} | {k: sum(counts[k] for counts in per_asset.values()) for k in keys}
    totals["assets_with_bad_bars"] = sum(
        any(counts[k] for k in ACTIONS if k not in ("gaps_filled", "long_gaps")) for counts in per_asset.values())
    totals["skipped_assets"], totals["skipped_partitions"] = len(skipped_assets), len(skipped_partitions)
    return {"totals": totals, "actions": ACTIONS, "assets": per_asset, "skipped_assets": skipped_assets,
            "skipped_partitions": skipped_partitions}


# high_below_low is also counted in inconsistent_high_low, so it is not a kind of its own here
BAD_BAR_KINDS = ("wrong_year", "null_timestamps", "unsorted", "duplicate_timestamps", "non_positive_price",
                 "inconsistent_high_low", "zero_volume", "off_grid", "off_calendar")


def quality_headline(report: dict[str, Any]) -> dict[str, int]:
    """The few totals `dvc exp show` carries: one column each. Per-kind and per-asset counts
    stay in quality_report.json and the evaluation report."""
    totals = report["totals"]
    return {"assets": totals["assets"], "rows_out": totals["rows_out"],
            "bad_bars": sum(totals[k] for k in BAD_BAR_KINDS), "outliers": totals["outliers"],
            "gaps_filled": totals["gaps_filled"], "skipped_assets": totals["skipped_assets"],
            "skipped_partitions": totals["skipped_partitions"]}


def _log_asset(sym: str, counts: dict[str, int]) -> None:
    logger.info(
        "%s: %d -> %d rows, %d gaps filled (%d long), %d outliers, %d bad high/low, %d bad price, "
        "%d zero volume, %d duplicates, %d unsorted, %d off-grid, %d off-calendar, %d null timestamps, %d outside "
        "their year partition; train/val/test %d/%d/%d",
        sym, *(counts[k] for k in ("rows_in", "rows_out", "gaps_filled", "long_gaps", "outliers",
                                   "inconsistent_high_low", "non_positive_price", "zero_volume", "duplicate_timestamps",
                                   "unsorted", "off_grid", "off_calendar", "null_timestamps", "wrong_year",
                                   "train_rows", "val_rows", "test_rows")),
    )
    if counts["test_rows"] == 0:
        logger.warning("%s has no test rows (data ends before the test period); it trains but cannot be scored", sym)


