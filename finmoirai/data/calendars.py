"""Trading calendars and the bar grid of a frequency on them.

A calendar is `24/7` (crypto), `24/5` (fx: Sunday 17:00 to Friday 17:00 New York time), or
any exchange that the `exchange-calendars` library knows by its ISO MIC (XNYS, XLON, XETR,
XTKS, ...), with its sessions, holidays, early closes and lunch breaks. `market.calendars`
maps an asset class to one, `market.symbol_calendars` a symbol.

The grid of a frequency is every bar the market trades:
* intraday bars (a period under a day) start at the session's open and every period after it
  while the session lasts; the last bar of a session may be shorter (the 15:30 bar of an
  hourly New York session ends at the 16:00 close, and the 12:30 bar of a half-day at 13:00).
  `market.bar_stamp: end` stamps each bar at its end instead (the short bar at the close).
  Round-the-clock calendars have bars at whole multiples of the period from midnight UTC.
* daily bars are stamped at 00:00 UTC of their session's date, whatever `bar_stamp` says.

So a holiday is not a gap (it has no bar), and an early close is not a run of missing bars.
The library computes the calendars from rules; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import functools

import exchange_calendars
import numpy as np
import pandas as pd

from finmoirai.errors import DataError
from finmoirai.params.data import MarketConfig, bar_period, period_label

DAY = pd.Timedelta(days=1)
ROUND_THE_CLOCK = ("24/7", "24/5")
FX_ZONE = "America/New_York"  # fx trades from Sunday 17:00 to Friday 17:00 in this zone
REFERENCE_YEAR = 2019  # bars per year and per session: the year counted when none is given


def calendar_of(market: MarketConfig, asset_class: str, symbol: str) -> str:
    """The calendar an asset trades on: its symbol's, else its asset class's."""
    if symbol in market.symbol_calendars:
        return market.symbol_calendars[symbol]
    if asset_class not in market.calendars:
        raise ValueError(f"{symbol}: no calendar for asset class {asset_class!r} in market.calendars "
                         f"({', '.join(market.calendars) or 'empty'}); add one, e.g. {asset_class}: XNYS")
    return market.calendars[asset_class]


@functools.lru_cache(maxsize=64)
def exchange(name: str, first_year: int, last_year: int) -> exchange_calendars.ExchangeCalendar:
    """An exchange's calendar covering whole years, from its first date where the library's
    history starts later (cached: building one takes ~0.1 s)."""
    first = max(pd.Timestamp(f"{first_year}-01-01"), _bound_min(name))
    if first > pd.Timestamp(f"{last_year}-12-31"):
        raise DataError(f"calendar {name} starts on {first.date()}, after the data ({first_year}-{last_year}): "
                        f"choose another calendar in market.calendars / market.symbol_calendars")
    return exchange_calendars.get_calendar(name, start=first, end=f"{last_year}-12-31")


@functools.lru_cache(maxsize=64)
def _bound_min(name: str) -> pd.Timestamp:
    """The first date exchange-calendars can give `name`'s sessions for (its class's bound;
    asked of a one-month calendar: the library's default instance builds 20 years, 0.5 s)."""
    bound = exchange_calendars.get_calendar(name, start="2024-01-01", end="2024-01-31").bound_min()
    return pd.Timestamp.min if bound is None else pd.Timestamp(bound).tz_localize(None)


def require_history(calendar: str, first: pd.Timestamp) -> None:
    """Bars before the calendar's first date cannot be put on its grid: one line, not the library's."""
    if calendar not in ROUND_THE_CLOCK and first.tz_localize(None) < _bound_min(calendar):
        raise DataError(f"bars from {first.date()}, but calendar {calendar} starts on {_bound_min(calendar).date()} "
                        f"(exchange-calendars' history); set extract.years from {_bound_min(calendar).year}, or map "
                        f"the asset to another calendar (market.calendars / market.symbol_calendars)")


def bar_grid(calendar: str, period: pd.Timedelta, start: pd.Timestamp, end: pd.Timestamp,
             stamp: str = "start") -> pd.DatetimeIndex:
    """Every bar of `period` that `calendar` trades with a stamp in [start, end] (UTC), as
    datetime64[us, UTC] named `timestamp`. `stamp`: the bar is stamped at its start or end."""
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    require_history(calendar, start)
    if calendar in ROUND_THE_CLOCK:
        grid = _round_the_clock(calendar, period, start, end, stamp)
    else:
        grid = _exchange_grid(calendar, period, start, end, stamp)
    grid = pd.DatetimeIndex(grid, name="timestamp").as_unit("us")
    return grid[(grid >= start) & (grid <= end)]


def _round_the_clock(calendar: str, period: pd.Timedelta, start: pd.Timestamp, end: pd.Timestamp,
                     stamp: str) -> pd.DatetimeIndex:
    unit = DAY if period >= DAY else period
    bars = pd.date_range(start.ceil(unit), end.floor(unit), freq=unit, unit="us")
    if calendar == "24/7":
        return bars
    if period >= DAY:  # daily fx bars: Monday to Friday
        return bars[bars.dayofweek < 5]
    starts = bars - period if stamp == "end" else bars
    local = starts.tz_convert(FX_ZONE)
    dow, hour = local.dayofweek, local.hour
    closed = (dow == 5) | ((dow == 4) & (hour >= 17)) | ((dow == 6) & (hour < 17))
    return bars[~np.asarray(closed)]


def _exchange_grid(calendar: str, period: pd.Timedelta, start: pd.Timestamp, end: pd.Timestamp,
                   stamp: str) -> pd.DatetimeIndex:
    cal = exchange(calendar, (start - DAY).year, (end + DAY).year)
    first = max(start.tz_localize(None).normalize() - DAY, cal.first_session)
    last = min(end.tz_localize(None).normalize() + DAY, cal.last_session)
    sessions = cal.sessions_in_range(first, last) if first <= last else []
    if not len(sessions):
        return pd.DatetimeIndex([], tz="UTC")
    if period >= DAY:
        return sessions.tz_localize("UTC")
    bars = cal.trading_index(sessions[0], sessions[-1], period, intervals=stamp == "end", closed="left", force=True)
    return bars.right if stamp == "end" else bars


def bars_per_session(calendar: str, period: pd.Timedelta, year: int = REFERENCE_YEAR) -> int:
    """The usual number of bars in one trading day (one week of sessions for daily bars): the
    season of the seasonal baselines. Counted on `year`'s calendar (the data's last year: an
    exchange's hours change, Tokyo's close moved to 15:30 in November 2024), by session (a
    session may span midnight), the mode, so half-days do not lower it."""
    if period >= DAY:
        return 7 if calendar == "24/7" else 5
    if calendar in ROUND_THE_CLOCK:
        return DAY // period
    grid = _year_grid(calendar, period, year)
    opens = pd.DatetimeIndex(exchange(calendar, year - 1, year + 1).schedule["open"]).tz_convert("UTC")
    session = opens.searchsorted(grid, side="right")
    return int(pd.Series(session).value_counts().mode().iloc[0])


def bars_per_year(calendar: str, period: pd.Timedelta, year: int = REFERENCE_YEAR) -> int:
    """Bars the calendar trades in `year` (the data's last year): what annualises a per-bar Sharpe."""
    return len(_year_grid(calendar, period, year))


def _year_grid(calendar: str, period: pd.Timedelta, year: int) -> pd.DatetimeIndex:
    start = pd.Timestamp(f"{year}-01-01", tz="UTC")
    return bar_grid(calendar, period, start, start + pd.DateOffset(years=1) - pd.Timedelta(microseconds=1))


def session_position(timestamps: pd.DatetimeIndex, calendar: str) -> np.ndarray:
    """Where each bar's stamp lies in its exchange session: 0 at the open, 1 at the close
    (clipped outside), from the calendar alone, so known in advance: a future covariate. The
    time since the open over the session's length (a 13:00 early close shortens the day; a
    session across midnight, as CME's, stays one). NaN for round-the-clock calendars."""
    ts = pd.DatetimeIndex(timestamps).tz_convert("UTC")
    if calendar in ROUND_THE_CLOCK or not len(ts):
        return np.full(len(ts), np.nan)
    cal = exchange(calendar, (ts.min() - DAY).year, (ts.max() + DAY).year)
    opens = pd.DatetimeIndex(cal.schedule["open"]).tz_convert("UTC")
    closes = pd.DatetimeIndex(cal.schedule["close"]).tz_convert("UTC")
    index = np.clip(opens.searchsorted(ts, side="right") - 1, 0, len(opens) - 1)
    elapsed = np.asarray((ts - opens[index]) / pd.Timedelta(microseconds=1), dtype=np.float64)
    length = np.asarray((closes[index] - opens[index]) / pd.Timedelta(microseconds=1), dtype=np.float64)
    return np.clip(elapsed / length, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class BarCalendar:
    """The bars one asset trades: its calendar, the bar period, and where a bar is stamped."""

    name: str
    period: pd.Timedelta
    stamp: str = "start"

    def grid(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        return bar_grid(self.name, self.period, start, end, self.stamp)

    @property
    def label(self) -> str:
        return f"{period_label(self.period)} bars on {self.name}"


def asset_calendar(market: MarketConfig, asset: dict) -> BarCalendar:
    """The bar calendar of an extracted asset (its manifest entry: symbol, asset_class, frequency)."""
    period = bar_period(asset["frequency"], "extract.frequency")
    return BarCalendar(calendar_of(market, asset["asset_class"], asset["symbol"]), period, market.bar_stamp)


def manifest_calendar(asset: dict) -> BarCalendar:
    """The bar calendar preprocess recorded in an asset's manifest entry (calendar, frequency)."""
    for key in ("calendar", "frequency"):
        if key not in asset:
            raise ValueError(f"{asset.get('symbol')}: manifest entry without {key!r}; rerun preprocess (dvc repro)")
    return BarCalendar(asset["calendar"], bar_period(asset["frequency"], "extract.frequency"))
