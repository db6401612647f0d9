"""The evaluation's first step, below everything else in this package: one asset's series
(model inputs in the model's units, truth in prices), its forecast windows, and how samples
become prices.

Forecast origins start at the first scored bar and move by `stride` bars; each forecast sees
`context_length` bars before its origin (history, possibly from earlier splits) and predicts
`prediction_length` bars, all of which lie in the scored period.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmoirai.data.calendars import BarCalendar, manifest_calendar
from finmoirai.data.preprocessing import invert_scaler
from finmoirai.data.targets import TARGET_COLUMNS, calendar_features, returns_to_prices

logger = logging.getLogger(__name__)


@dataclass
class AssetSeries:
    """One asset's full series: model inputs (the model's units) and truth (price units).

    Forecasts are scored for origins in [test_start, end - horizon]: the scored period is the
    test split by default, the validation split with `evaluate.split: val`."""

    symbol: str
    timestamps: pd.DatetimeIndex
    target_z: np.ndarray  # (T,) the model's target variate (z-scored level or % log return), NaN unobserved
    covariates: np.ndarray  # (T, k) past-only covariates of that target representation
    price: np.ndarray  # (T,), cleaned close in original units
    observed: np.ndarray  # (T,) bool
    test_start: int
    to_price: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (samples (W, S, H), origins (W,)) -> prices
    asset_class: str = ""
    calendar: np.ndarray | None = None  # (T, 5) known-future calendar covariates
    bars: BarCalendar | None = None  # its trading calendar and bar period (seasons, annualisation)
    end: int | None = None  # first bar after the scored period (None: the series' end)

    @property
    def scored_end(self) -> int:
        return len(self.price) if self.end is None else self.end


@dataclass
class Windows:
    """Forecast windows of one asset: the series and the origins every model forecasts from."""

    series: AssetSeries
    origins: np.ndarray


def origins_for(test_start: int, length: int, context_length: int, prediction_length: int, stride: int) -> np.ndarray:
    """Origins o with o >= test_start, o >= context_length and o + horizon <= length."""
    first = max(test_start, context_length)
    last = length - prediction_length
    if last < first:
        return np.empty(0, dtype=int)
    return np.arange(first, last + 1, stride)


def plan_windows(series_list: Sequence[AssetSeries], context_length: int, prediction_length: int,
                 stride: int) -> tuple[list[Windows], list[str]]:
    """Every asset's forecast windows in its scored period, and the assets without a full one
    (named in the log and the report, never dropped silently); none at all is an error."""
    windows, skipped = [], []
    for s in series_list:
        origins = origins_for(s.test_start, s.scored_end, context_length, prediction_length, stride)
        if len(origins):
            windows.append(Windows(series=s, origins=origins))
        else:
            skipped.append(s.symbol)
    if skipped:
        logger.warning("no full window (context %d + horizon %d) in the scored period for %s: not evaluated",
                       context_length, prediction_length, ", ".join(skipped))
    if not windows:
        raise ValueError(f"no asset has a full window of context_length={context_length} + "
                         f"prediction_length={prediction_length} in the scored period: shorten them, or widen the "
                         "period (test: an earlier split.val_end; val: an earlier split.train_end)")
    return windows, skipped


def usable_prices(series: AssetSeries) -> np.ndarray:
    """Mask of the bars whose price can be used as data: observed, finite and positive."""
    return series.observed & np.isfinite(series.price) & (series.price > 0)


def carry_forward(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """`values` with the last usable one carried over the others (NaN before the first)."""
    last_seen = np.maximum.accumulate(np.where(usable, np.arange(len(values)), -1))
    return np.where(last_seen >= 0, values[np.maximum(last_seen, 0)], np.nan)


def _prices_from_returns(returns: np.ndarray, origins: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Percent log-return paths (W, S, H) -> prices, from the (last observed) close before each origin."""
    return returns_to_prices(price[origins - 1], returns)


def _prices_from_levels(z: np.ndarray, origins: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """z-scored level paths -> prices with the training-period scaler (origins unused)."""
    return invert_scaler(z, entry)


def load_series(features_dir: Path, scalers: dict[str, Any], scored_from: pd.Timestamp,
                target: str, covariates: Sequence[str] | None = None,
                scored_until: pd.Timestamp | None = None) -> list[AssetSeries]:
    """Every asset of a features directory as model inputs and truth (prices), scored on bars
    in [scored_from, scored_until).

    `target` picks the representation the model was trained on (finmoirai.data.targets): its column
    and covariates, and how samples become prices (inverse scaler for `level`, cumulated from
    the last close for `log_return`). `covariates` is the variate list the model was trained
    with: a features directory built with different indicators cannot feed that model."""
    features_dir = Path(features_dir)
    manifest = json.loads((features_dir / "manifest.json").read_text())
    column, key = TARGET_COLUMNS[target]
    names = list(manifest[key])
    if covariates is not None and list(covariates) != names:
        raise ValueError(f"{features_dir}: covariates {names} differ from the model's training covariates "
                         f"{list(covariates)}")
    out = []
    for asset in manifest["assets"]:
        symbol = asset["symbol"]
        frame = pd.read_parquet(features_dir / f"{symbol}.parquet").sort_values("timestamp").reset_index(drop=True)
        if symbol not in scalers or "close" not in scalers[symbol]:
            raise ValueError(f"{symbol}: no close scaler in the preprocess scalers file")
        observed = frame["observed"].to_numpy(dtype=bool)
        values = frame[column].to_numpy(dtype=np.float64).copy()
        values[~observed] = np.nan
        price = frame["close_raw"].to_numpy(dtype=np.float64)
        timestamps = pd.DatetimeIndex(frame["timestamp"])
        if target == "log_return":  # paths start from the last observed close, as scoring's anchors
            anchor = carry_forward(price, observed & np.isfinite(price) & (price > 0))
            to_price = functools.partial(_prices_from_returns, price=anchor)
        else:
            to_price = functools.partial(_prices_from_levels, entry=scalers[symbol]["close"])
        out.append(
            AssetSeries(
                symbol=symbol,
                timestamps=timestamps,
                target_z=values,
                covariates=frame[names].to_numpy(dtype=np.float64),
                price=price,
                observed=observed,
                test_start=int(timestamps.searchsorted(scored_from)),
                to_price=to_price,
                asset_class=asset.get("asset_class", ""),
                calendar=calendar_features(timestamps, manifest_calendar(asset)),
                bars=manifest_calendar(asset),
                end=None if scored_until is None else int(timestamps.searchsorted(scored_until)),
            )
        )
    return out
