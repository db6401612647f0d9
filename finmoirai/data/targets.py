"""What the model forecasts: the target representation and the known-future calendar.

Two representations of `close` are written by the data stages, so switching between them is
a model knob (`target` in params.yaml) that never reruns a data stage:

* `level`: close z-scored with the training-period scaler, the project's first recipe. Moirai's
  own scaler standardises each window by its context mean, so the network has to learn to
  carry the last price forward.
* `log_return`: 100 x the bar's log return of close (percent). Sample paths are cumulated from
  the last observed close into prices, so every forecast is anchored at the last price by
  construction. Percent, not raw: uni2ts's scaler divides by sqrt(var + 1e-5), a floor that
  would flatten the ~1e-3 hourly returns of FX and equities.

Calendar covariates (hour of day, day of week, position in the equity session) are functions
of the bar timestamps, which the trading calendar fixes in advance: they are fed to Moirai as
known-future `feat_dynamic_real` (visible over the horizon), when `calendar: true`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The features stage's column of each target representation, and its manifest key of covariates.
TARGET_COLUMNS = {"level": ("target", "covariates"), "log_return": ("log_return", "return_covariates")}
RETURN_SCALE = 100.0  # log returns are stored and modelled in percent
CALENDAR_COLUMNS = ("hour_sin", "hour_cos", "dow_sin", "dow_cos", "session_pos")
SESSION_ZONE = "America/New_York"


def log_returns(close: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Percent log return of every bar; NaN on unobserved (filled) bars and on the first bar.

    Filled bars carry the last observed close forward, so the first observed bar after a gap
    holds the whole move since the last observation and the returns still sum to the price."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(len(close), np.nan)
    out[1:] = RETURN_SCALE * np.diff(np.log(close))
    out[~np.asarray(observed, dtype=bool)] = np.nan
    return out


def returns_to_prices(last_price: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Price paths from percent log-return paths: last_price (W,) x returns (W, S, H) -> (W, S, H).

    Step h of a path is last_price * exp(sum of its first h+1 returns): the forecast starts at
    the last observed price whatever the network outputs."""
    last = np.asarray(last_price, dtype=np.float64).reshape(-1, 1, 1)
    return last * np.exp(np.cumsum(np.asarray(returns, dtype=np.float64), axis=-1) / RETURN_SCALE)


def calendar_features(timestamps: pd.DatetimeIndex | pd.Series, asset_class: str) -> np.ndarray:
    """(T, 5) known-future calendar covariates of each bar.

    Hour of day and day of week as sin/cos (UTC, the lake's clock); for equities the bar's
    position in its New York session (0 at the open, 1 at the close), and
    NaN (unobserved, masked by uni2ts) for classes that trade around the clock."""
    ts = pd.DatetimeIndex(timestamps)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    hour = ts.hour.to_numpy() + ts.minute.to_numpy() / 60.0
    dow = ts.dayofweek.to_numpy() + hour / 24.0
    out = np.empty((len(ts), len(CALENDAR_COLUMNS)))
    out[:, 0] = np.sin(2 * np.pi * hour / 24.0)
    out[:, 1] = np.cos(2 * np.pi * hour / 24.0)
    out[:, 2] = np.sin(2 * np.pi * dow / 7.0)
    out[:, 3] = np.cos(2 * np.pi * dow / 7.0)
    out[:, 4] = session_position(ts) if asset_class == "equity" else np.nan
    return out


SESSION_OPEN_HOURS, SESSION_HOURS = 9.5, 6.5  # New York regular session, 09:30 to 16:00


def session_position(ts: pd.DatetimeIndex) -> np.ndarray:
    """Where each bar starts in its New York regular session: 0 at the 09:30 open, 1 at the
    16:00 close, clipped outside it. From the clock alone, so a bar's value never depends on
    which other bars of its day are in the data."""
    local = ts.tz_convert(SESSION_ZONE)
    hours = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    return np.clip((hours - SESSION_OPEN_HOURS) / SESSION_HOURS, 0.0, 1.0)
