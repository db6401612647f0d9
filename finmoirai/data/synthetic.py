"""A seeded synthetic market written as a hive-partitioned OHLCV lake, for scale tests.

The lake has the same layout as the demo lake (``asset_class=/frequency=<f>/symbol=/year=``),
at any bar frequency (``extract.frequency``: 5m, 1h, 1d, ...),
and the stylised facts a quant checks before trusting a generator:

* fat tails and volatility clustering: returns are GARCH(1,1) with Student-t innovations,
  times a slow (multi-day) log-AR(1) volatility regime;
* cross-asset correlation: each asset class has a common factor (itself GARCH-t) that every
  asset of the class loads on with its own beta; classes are independent of each other;
* intraday seasonality: an hour-of-day (exchanges: position-in-session) volatility profile;
* volume correlated with absolute returns, with the same intraday profile;
* each class trades on its calendar of ``market.calendars`` (crypto 24/7, fx 24/5, equity an
  exchange such as XNYS or XLON, with its holidays and early closes);
* occasional gaps (single bars and short runs) and bad bars planted at a known rate:
  high < low, non-positive prices, zero volume, duplicate and out-of-order timestamps, spikes.

Everything is drawn from ``numpy.random.SeedSequence([seed, class, asset])``, so an asset's
series depends only on the seed, its class, its index in the class and the date range, not on
how many assets are generated: the 50-asset lake is a subset of the 800-asset one. One asset
is in memory at a time (plus one factor series per class), so any size can be written.

Written by the lake stage with `lake.source: synthetic`, and by `bench/synthetic_lake.py`.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal

from finmoirai.data.calendars import DAY, ROUND_THE_CLOCK, BarCalendar, calendar_of, session_position
from finmoirai.data.lake import write_partitions
from finmoirai.params.data import CLASSES, MarketConfig, SyntheticConfig, bar_period

logger = logging.getLogger(__name__)

PREFIX = {"crypto": "CRY", "fx": "FXS", "equity": "EQT"}
# hourly return vol of the class factor, idiosyncratic vol, price level, base volume
LEVELS = {
    "crypto": {"factor_vol": 0.008, "idio_vol": 0.007, "price": 100.0, "volume": 5_000.0},
    "fx": {"factor_vol": 0.0012, "idio_vol": 0.0009, "price": 1.2, "volume": 20_000.0},
    "equity": {"factor_vol": 0.004, "idio_vol": 0.004, "price": 50.0, "volume": 100_000.0},
}
BAD_KINDS = ("high_below_low", "non_positive_price", "zero_volume", "duplicate_timestamp", "unsorted", "spike")


def class_counts(cfg: SyntheticConfig) -> dict[str, int]:
    """Assets per class: proportional to class_mix (largest remainder), every weighted class >= 1."""
    weights = {c: cfg.class_mix.get(c, 0.0) for c in CLASSES if cfg.class_mix.get(c, 0.0) > 0}
    total = sum(weights.values())
    exact = {c: cfg.assets * w / total for c, w in weights.items()}
    counts = {c: int(math.floor(x)) for c, x in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - counts[c], reverse=True)[: cfg.assets - sum(counts.values())]:
        counts[c] += 1
    for c in counts:  # a class that is asked for gets at least its proxy, taken from the largest
        if counts[c] == 0 and cfg.assets >= len(counts):
            donor = max(counts, key=counts.get)
            counts[donor] -= 1
            counts[c] = 1
    return {c: n for c, n in counts.items() if n > 0}


def symbol(asset_class: str, index: int) -> str:
    return f"{PREFIX[asset_class]}{index:04d}"


def market_proxy(cfg: SyntheticConfig) -> dict[str, str]:
    """The `features.market_proxy` for a synthetic lake: asset 0 of each class."""
    return {c: symbol(c, 0) for c in class_counts(cfg)}


def years_covered(cfg: SyntheticConfig) -> list[int]:
    start, end = _span(cfg)
    return list(range(start.year, (end - pd.Timedelta("1h")).year + 1))


def _span(cfg: SyntheticConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(cfg.start, tz="UTC").floor("h")
    return start, start + pd.DateOffset(years=cfg.years)


# --------------------------------------------------------------------------- calendars


def class_grid(bars: BarCalendar, cfg: SyntheticConfig) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(UTC bar timestamps, volatility multiplier of each bar) on a class's bar calendar: the
    intraday profile at the bar's time (hour of day for round-the-clock markets, position in
    the session for an exchange), scaled from hourly to the bar's period."""
    start, end = _span(cfg)
    ts = bars.grid(start, end - pd.Timedelta(microseconds=1))
    if bars.period >= DAY:  # a daily bar carries a whole session's variance
        hours = 24.0 if bars.name in ROUND_THE_CLOCK else 6.5
        return ts, np.full(len(ts), math.sqrt(hours))
    scale = math.sqrt(bars.period / pd.Timedelta(hours=1))
    if bars.name in ROUND_THE_CLOCK:
        hour = ts.hour.to_numpy() + ts.minute.to_numpy() / 60.0
        return ts, scale * clock_profile(bars.name, hour)
    return ts, scale * session_profile(session_position(ts, bars.name))


SESSION_PROFILE = np.array([1.8, 1.2, 0.9, 0.8, 0.85, 1.0, 1.5])  # U shape: busy open and close, quiet lunch


def session_profile(position: np.ndarray) -> np.ndarray:
    """Volatility multiplier at a position in an exchange session (0 open, 1 close), mean square 1."""
    profile = SESSION_PROFILE / np.sqrt(np.mean(SESSION_PROFILE**2))
    return np.interp(position, np.linspace(0.0, 1.0, len(profile)), profile)


def clock_profile(calendar: str, hour: np.ndarray) -> np.ndarray:
    """Volatility multiplier at an hour of the UTC day for a round-the-clock market (24/7: a
    US-afternoon peak; 24/5: London/New York peak and a Tokyo bump), mean square 1 over the day."""
    return _clock_shape(calendar, hour) / np.sqrt(np.mean(_clock_shape(calendar, np.arange(24.0)) ** 2))


def _clock_shape(calendar: str, h: np.ndarray) -> np.ndarray:
    centre, width, floor = (15.0, 4.0, 0.55) if calendar == "24/7" else (14.0, 3.0, 0.35)
    s = floor + np.exp(-0.5 * ((h - centre) / width) ** 2)
    if calendar == "24/5":
        s += 0.35 * np.exp(-0.5 * ((h - 2.0) / 2.0) ** 2)
    return s


# --------------------------------------------------------------------------- processes


def garch_t(rng: np.random.Generator, n: int, alpha: float, beta: float, nu: float) -> np.ndarray:
    """Unit-variance GARCH(1,1) series with Student-t(nu) innovations (also unit variance)."""
    z = rng.standard_t(nu, n) * math.sqrt((nu - 2.0) / nu)
    omega = 1.0 - alpha - beta
    a = alpha * z * z + beta  # sigma2[t] = omega + a[t-1] * sigma2[t-1]
    sigma2 = np.empty(n)
    s = 1.0
    for t in range(n):  # 17.5k steps a year: a few ms, cheaper than any trick
        sigma2[t] = s
        s = omega + a[t] * s
    return np.sqrt(sigma2) * z


def slow_vol(rng: np.random.Generator, n: int, phi: float = 0.997, sd: float = 0.5) -> np.ndarray:
    """Multi-day volatility regimes: exp of a stationary AR(1) (std `sd`), mean square 1."""
    shocks = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), n)
    shocks[0] = rng.normal(0.0, sd)
    h = scipy.signal.lfilter([1.0], [1.0, -phi], shocks)
    return np.exp(h - sd * sd)


def _factor(asset_class: str, cfg: SyntheticConfig, n: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, CLASSES.index(asset_class), 0]))
    return garch_t(rng, n, alpha=0.1, beta=0.88, nu=6.0) * slow_vol(rng, n)


def asset_bars(asset_class: str, index: int, cfg: SyntheticConfig, ts: pd.DatetimeIndex, season: np.ndarray,
               factor: np.ndarray) -> pd.DataFrame:
    """Clean OHLCV bars of one asset on its class grid (before gaps and bad bars)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, CLASSES.index(asset_class), index + 1]))
    lv = LEVELS[asset_class]
    n = len(ts)
    beta = 1.0 if index == 0 else rng.uniform(0.6, 1.4)
    idio_scale = lv["idio_vol"] * (0.5 if index == 0 else rng.uniform(0.7, 1.5))
    idio = garch_t(rng, n, alpha=rng.uniform(0.08, 0.12), beta=rng.uniform(0.85, 0.88), nu=rng.uniform(4.5, 7.0))
    idio *= slow_vol(rng, n)
    ret = season * (beta * lv["factor_vol"] * factor + idio_scale * idio)
    close = lv["price"] * rng.uniform(0.5, 2.0) * np.exp(np.cumsum(ret))
    open_ = np.empty(n)
    open_[0] = close[0] * math.exp(-ret[0])
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 0.05 * lv["idio_vol"], n - 1))
    local_vol = np.sqrt(np.convolve(ret**2, np.ones(24) / 24, mode="full")[:n]) + 1e-12
    wick = np.abs(rng.normal(0.0, 0.5, (2, n))) * local_vol
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    typical = np.sqrt(np.mean(ret**2))
    volume = (lv["volume"] * rng.uniform(0.2, 5.0) * season
              * np.exp(0.8 * np.abs(ret) / typical + rng.normal(0.0, 0.35, n)))
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close,
                         "volume": np.round(volume, 2)})


def plant_defects(df: pd.DataFrame, rng: np.random.Generator, gap_rate: float,
                  bad_bar_rate: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove bars (gaps) and plant bad bars; returns the frame and what was planted per kind.

    Bad bars land on distinct rows away from each other, so each is counted exactly once by
    preprocess (a spike next to a gap or another bad bar could hide in the Hampel window).
    """
    n = len(df)
    planted = {k: 0 for k in ("gaps", *BAD_KINDS)}
    k = int(round(n * bad_bar_rate))
    candidates = np.arange(50, n - 50, 50)
    rows = rng.choice(candidates, size=min(k * len(BAD_KINDS), len(candidates)), replace=False) if k else candidates[:0]
    for kind in BAD_KINDS:
        chunk = _kind_rows(rows, kind)
        planted[kind] = len(chunk)
        _plant(df, kind, chunk)
    dups = df.iloc[_kind_rows(rows, "duplicate_timestamp")]
    drop = np.zeros(n, dtype=bool)
    if gap_rate > 0:
        starts = rng.choice(n, size=max(1, int(n * gap_rate / 3)), replace=False)
        lengths = rng.choice([1, 1, 1, 2, 3, 8], size=len(starts))
        for s, length in zip(starts, lengths):
            drop[s : s + length] = True
        if len(rows):
            drop[np.clip(np.concatenate([rows + d for d in range(-25, 26)]), 0, n - 1)] = False
        planted["gaps"] = int(drop.sum())
    out = pd.concat([df[~drop], dups.assign(close=dups["close"] * 1.0001, high=dups["high"] * 1.0001)])
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if planted["unsorted"]:  # swap each chosen row with its successor in the written file
        idx = out.index[out["timestamp"].isin(df["timestamp"].iloc[_kind_rows(rows, "unsorted")])].to_numpy()
        order = np.arange(len(out))
        order[idx], order[idx + 1] = idx + 1, idx
        out = out.iloc[order].reset_index(drop=True)
    return out, planted


def _kind_rows(rows: np.ndarray, kind: str) -> np.ndarray:
    return np.array_split(rows, len(BAD_KINDS))[BAD_KINDS.index(kind)]


def _plant(df: pd.DataFrame, kind: str, rows: np.ndarray) -> None:
    if not len(rows):
        return
    if kind == "high_below_low":
        hi, lo = df.loc[rows, "high"].to_numpy(), df.loc[rows, "low"].to_numpy()
        df.loc[rows, "high"], df.loc[rows, "low"] = lo, hi
    elif kind == "non_positive_price":
        df.loc[rows, "low"] = 0.0
    elif kind == "zero_volume":
        df.loc[rows, "volume"] = 0.0
    elif kind == "spike":
        factor = np.exp(np.where(np.arange(len(rows)) % 2 == 0, 1.0, -1.0))
        df.loc[rows, "close"] = df.loc[rows, "close"].to_numpy() * factor
        df.loc[rows, "high"] = df.loc[rows, ["open", "high", "close"]].max(axis=1)
        df.loc[rows, "low"] = df.loc[rows, ["open", "low", "close"]].min(axis=1)
    # duplicate_timestamp and unsorted are planted by plant_defects on the whole frame


# --------------------------------------------------------------------------- writing


def write_synthetic_lake(out_dir: str | Path, cfg: SyntheticConfig, frequency: str, market: MarketConfig) -> dict:
    """Write the whole synthetic lake of `frequency` bars, each class on its calendar of
    `market`, under `out_dir` (replacing it); returns a summary."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    counts = class_counts(cfg)
    summary = {"assets": 0, "rows": 0, "planted": {k: 0 for k in ("gaps", *BAD_KINDS)},
               "market_proxy": market_proxy(cfg), "years": years_covered(cfg), "classes": counts}
    for asset_class, n_assets in counts.items():
        bars = BarCalendar(calendar_of(market, asset_class, ""), bar_period(frequency, "extract.frequency"),
                           market.bar_stamp)
        ts, season = class_grid(bars, cfg)
        factor = _factor(asset_class, cfg, len(ts))
        for i in range(n_assets):
            df = asset_bars(asset_class, i, cfg, ts, season, factor)
            rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, CLASSES.index(asset_class), i + 1, 1]))
            # the market proxy stays clean of gaps and bad bars, like a liquid benchmark
            rates = (0.0, 0.0) if i == 0 else (cfg.gap_rate, cfg.bad_bar_rate)
            df, planted = plant_defects(df, rng, *rates)
            written = write_partitions(out_dir, asset_class, symbol(asset_class, i), df, frequency=frequency,
                                       sort=False)
            summary["rows"] += sum(part["rows"] for part in written)
            summary["assets"] += 1
            for kind, v in planted.items():
                summary["planted"][kind] += v
    return summary
