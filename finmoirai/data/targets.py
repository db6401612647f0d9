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

Calendar covariates (hour of day, day of week, position in the exchange session) are functions
of the bar timestamps, which the trading calendar fixes in advance: they are fed to Moirai as
known-future `feat_dynamic_real` (visible over the horizon), when `calendar: true`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finmoirai.data.calendars import DAY, BarCalendar, session_position

# The features stage's column of each target representation, and its manifest key of covariates.
TARGET_COLUMNS = {"level": ("target", "covariates"), "log_return": ("log_return", "return_covariates")}
RETURN_SCALE = 100.0  # log returns are stored and modelled in percent
CALENDAR_COLUMNS = ("hour_sin", "hour_cos", "dow_sin", "dow_cos", "session_pos")


def num_variates(covariates: int, calendar: bool) -> int:
    """The variates of one window: the target, its past covariates, and the known-future
    calendar covariates when `calendar` is on."""
    return 1 + covariates + (len(CALENDAR_COLUMNS) if calendar else 0)


def log_returns(close: np.ndarray, observed: np.ndarray, max_gap: int | None = None) -> np.ndarray:
    """Percent log return of every bar; NaN on unobserved (filled) bars and on the first bar.

    Filled bars carry the last observed close forward, so the first observed bar after a gap
    holds the whole move since the last observation and the returns still sum to the price.
    With `max_gap`, that return is NaN too when more than `max_gap` unobserved bars precede it:
    a move of many bars is not one bar's return, and would fatten the tails the model learns."""
    close = np.asarray(close, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    out = np.full(len(close), np.nan)
    out[1:] = RETURN_SCALE * np.diff(np.log(close))
    out[~observed] = np.nan
    if max_gap is not None:
        out[observed & (unobserved_run_before(observed) > max_gap)] = np.nan
    return out


def unobserved_run_before(observed: np.ndarray) -> np.ndarray:
    """For each bar, how many unobserved bars immediately precede it."""
    index = np.arange(len(observed))
    last_observed = np.maximum.accumulate(np.where(observed, index, -1))
    previous = np.concatenate([[-1], last_observed[:-1]])
    return np.where(index > 0, index - 1 - previous, 0)


def returns_to_prices(last_price: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Price paths from percent log-return paths: last_price (W,) x returns (W, S, H) -> (W, S, H).

    Step h of a path is last_price * exp(sum of its first h+1 returns): the forecast starts at
    the last observed price whatever the network outputs."""
    last = np.asarray(last_price, dtype=np.float64).reshape(-1, 1, 1)
    return last * np.exp(np.cumsum(np.asarray(returns, dtype=np.float64), axis=-1) / RETURN_SCALE)


def calendar_features(timestamps: pd.DatetimeIndex | pd.Series, bars: BarCalendar) -> np.ndarray:
    """(T, 5) known-future calendar covariates of each bar.

    Hour of day and day of week as sin/cos (UTC, the lake's clock); on an exchange, the bar's
    position in its session (0 at the open, 1 at the close, from the calendar's schedule, so
    half-days and London or Tokyo hours are right). NaN (unobserved, masked by uni2ts) where a
    column means nothing: the session position of round-the-clock markets, and the hour and
    session position of daily bars."""
    ts = pd.DatetimeIndex(timestamps)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    hour = ts.hour.to_numpy() + ts.minute.to_numpy() / 60.0
    dow = ts.dayofweek.to_numpy() + hour / 24.0
    out = np.full((len(ts), len(CALENDAR_COLUMNS)), np.nan)
    out[:, 2] = np.sin(2 * np.pi * dow / 7.0)
    out[:, 3] = np.cos(2 * np.pi * dow / 7.0)
    if bars.period < DAY:
        out[:, 0] = np.sin(2 * np.pi * hour / 24.0)
        out[:, 1] = np.cos(2 * np.pi * hour / 24.0)
        out[:, 4] = session_position(ts, bars.name)
    return out
