"""Forecasts as a table: the quantiles of every forecast window, the schema that the forecast
command writes (finmoirai.forecasting.forecast) and evaluate writes for every window it scores
(data/evaluate/forecasts.parquet), so the two can be joined and compared.

Output schema (one row per asset and horizon step; FORECAST_COLUMNS, then per level q of
`quantiles`, `price_q<q>` and `return_q<q>`):
    symbol (str), asset_class (str), model (str), asof (timestamp[UTC]: the last bar used),
    origin (timestamp[UTC]: the first bar forecast), step (int, 1..prediction_length),
    timestamp (timestamp[UTC]: that step's bar on the asset's calendar), last_close (float: the
    last observed close, where the paths start), price_q<q> (float: quantile of the close at
    that step), return_q<q> (float: quantile of 100 x log(close / last_close), percent),
    mean_price (float), then evaluate's files add actual_price (float, NaN where unobserved).
Sample paths (optional): symbol, origin, sample, step, timestamp, price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finmoirai.evaluation.series import AssetSeries, carry_forward, usable_prices

TIMESTAMP = "datetime64[us, UTC]"  # the data stages' timestamps
FORECAST_COLUMNS = ["symbol", "asset_class", "model", "asof", "origin", "step", "timestamp", "last_close"]


def last_close(series: AssetSeries, origins: np.ndarray) -> np.ndarray:
    """The last observed close before each origin: where a forecast's paths start."""
    return carry_forward(series.price, usable_prices(series))[np.asarray(origins) - 1]


def quantile_column(kind: str, level: float) -> str:
    return f"{kind}_q{round(level * 100):02d}" if round(level * 100, 6) == round(level * 100) else f"{kind}_q{level:g}"


def forecast_frame(symbol: str, asset_class: str, model: str, origins_at: pd.DatetimeIndex, asof: pd.DatetimeIndex,
                   step_times: list[pd.DatetimeIndex], last_close: np.ndarray, samples: np.ndarray,
                   quantiles: tuple[float, ...] | list[float]) -> pd.DataFrame:
    """The schema of the module docstring for one asset's windows: `samples` (W, S, H) price paths."""
    w, _, h = samples.shape
    levels = np.quantile(samples, quantiles, axis=1)  # (Q, W, H)
    anchor = np.repeat(last_close, h)
    frame = pd.DataFrame({
        "symbol": symbol, "asset_class": asset_class, "model": model,
        "asof": np.repeat(asof, h), "origin": np.repeat(origins_at, h),
        "step": np.tile(np.arange(1, h + 1), w), "timestamp": step_times[0].append(list(step_times[1:])),
        "last_close": anchor,
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        for q, values in zip(quantiles, levels):
            frame[quantile_column("price", q)] = values.reshape(-1)
            frame[quantile_column("return", q)] = 100.0 * np.log(values.reshape(-1) / anchor)
    frame["mean_price"] = samples.mean(axis=1).reshape(-1)
    return frame.astype({column: TIMESTAMP for column in ("asof", "origin", "timestamp")})


