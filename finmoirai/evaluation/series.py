"""The evaluation's shared types, below everything else in this package: one asset's series
(model inputs in the model's units, truth in prices), its forecast windows, and how samples
become prices.

Forecast origins start at the first scored bar and move by `stride` bars; each forecast sees
`context_length` bars before its origin (history, possibly from earlier splits) and predicts
`prediction_length` bars, all of which lie in the scored period.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmoirai.data.preprocessing import invert_scaler
from finmoirai.data.targets import TARGET_COLUMNS, calendar_features, returns_to_prices


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
    end: int | None = None  # first bar after the scored period (None: the series' end)

    @property
    def scored_end(self) -> int:
        return len(self.price) if self.end is None else self.end


@dataclass
class Windows:
    """Forecast windows of one asset: origins and, per model, sample paths in prices."""

    series: AssetSeries
    origins: np.ndarray
    samples: dict[str, np.ndarray]  # model -> (W, S, H)


def origins_for(test_start: int, length: int, context_length: int, prediction_length: int, stride: int) -> np.ndarray:
    """Origins o with o >= test_start, o >= context_length and o + horizon <= length."""
    first = max(test_start, context_length)
    last = length - prediction_length
    if last < first:
        return np.empty(0, dtype=int)
    return np.arange(first, last + 1, stride)


def window_prices(w: Windows, start: int, stop: int) -> np.ndarray:
    """(W, stop - start) prices at bars origin+start .. origin+stop-1 of every window, NaN on
    filled bars: they are neither scored as truth nor counted in a baseline's scale."""
    idx = w.origins[:, None] + np.arange(start, stop)[None, :]
    return np.where(w.series.observed[idx], w.series.price[idx], np.nan)


def usable_prices(series: AssetSeries) -> np.ndarray:
    """Mask of the bars whose price can be used as data: observed, finite and positive."""
    return series.observed & np.isfinite(series.price) & (series.price > 0)


def carry_forward(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """`values` with the last usable one carried over the others (NaN before the first)."""
    last_seen = np.maximum.accumulate(np.where(usable, np.arange(len(values)), -1))
    return np.where(last_seen >= 0, values[np.maximum(last_seen, 0)], np.nan)


def _prices_from_returns(returns: np.ndarray, origins: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Percent log-return paths (W, S, H) -> prices, from the close before each origin."""
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
        if target == "log_return":
            to_price = functools.partial(_prices_from_returns, price=price)
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
                calendar=calendar_features(timestamps, asset.get("asset_class", "")),
                end=None if scored_until is None else int(timestamps.searchsorted(scored_until)),
            )
        )
    return out
