"""A deliberately simple trading rule on sample forecasts: does a better forecast make money?

Rule, at each forecast origin o (decided with bars < o only), from the per-window signal that
scoring computed (finmoirai.evaluation.scores.trading_signal):
  * forecast return r_hat = the median sample return to the last held step; spread iqr = its
    interquartile range; se = the Monte-Carlo standard error of that median;
  * flat where |r_hat| <= se: a median that its own sampling noise could flip says nothing
    (with 100 paths, the noise of a random walk's median is several times its drift);
  * otherwise position = sign(r_hat) (sizing "sign"), or clip(r_hat / iqr, -1, 1) ("confidence");
  * the position is held over bars o .. o+hold-1 with hold = min(stride, H), so positions of
    origins `stride` apart never overlap (the strategy is flat in between if stride > H);
  * each bar earns position * the bar's simple return of the observed close (filled bars
    carry the last observed close, so they earn zero and the next observed bar the move);
  * every change of position costs cost_bps basis points per unit changed (per asset class,
    `evaluate.transaction_cost_bps`), charged on the bar it happens (the origin when
    stride <= H). The final position is not liquidated.

Buy-and-hold (long 1 unit over the same bars, one entry cost) is the line every rule is read
against, and every Sharpe ratio comes with its standard error, from a circular block
bootstrap of the bar returns (arch; block length from the data).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from arch.bootstrap import CircularBlockBootstrap

from finmoirai.data.calendars import bars_per_year
from finmoirai.evaluation.series import AssetSeries, carry_forward, usable_prices
from finmoirai.evaluation.significance import block_length

SIZINGS = ("sign", "confidence")


def periods_per_year(series: AssetSeries) -> int:
    """Bars a year on the asset's calendar at its bar period, counted on the calendar of the
    series' last year (2019: 8,760 hourly bars 24/7, 6,264 on 24/5, 1,755 on XNYS with its
    half-days; 252 daily XNYS bars)."""
    if series.bars is None:
        raise ValueError(f"{series.symbol}: no trading calendar, so no annualisation")
    return bars_per_year(series.bars.name, series.bars.period, series.timestamps[-1].year)


def filled_close(series: AssetSeries) -> np.ndarray:
    """Close with the last observed value carried over unobserved bars (NaN before the first)."""
    return carry_forward(series.price, usable_prices(series))


def bar_returns(close: np.ndarray) -> np.ndarray:
    """Simple return of every bar (zero where undefined, i.e. before the first observed close)."""
    out = np.zeros(len(close))
    out[1:] = close[1:] / close[:-1] - 1.0
    return np.nan_to_num(out, nan=0.0)


def size_positions(r_hat: np.ndarray, iqr: np.ndarray, se: np.ndarray, sizing: str) -> np.ndarray:
    """Long/short unit positions ("sign") or scaled by the forecast's signal-to-spread
    ("confidence"); flat where the forecast is within its Monte-Carlo standard error."""
    if sizing == "sign":
        position = np.sign(r_hat)
    elif sizing == "confidence":
        ratio = np.divide(r_hat, iqr, out=np.sign(r_hat).astype(np.float64), where=iqr > 0)  # no spread: full size
        position = np.clip(ratio, -1.0, 1.0)
    else:
        raise ValueError(f"sizing must be one of {SIZINGS}, got {sizing!r}")
    return np.where(np.abs(r_hat) > se, position, 0.0)


def strategy_returns(
    series: AssetSeries,
    origins: np.ndarray,
    signal: pd.DataFrame,
    hold: int,
    cost_bps: float = 0.0,
    sizing: str = "sign",
) -> tuple[pd.Series, pd.DataFrame, dict[str, Any]]:
    """Net per-bar returns of the rule (module docstring), the per-origin trade book and totals.

    `signal` has one row per origin: signal_return, signal_iqr, signal_se (simple returns to
    the holding step, `hold` = min(stride, H) bars). Returns (returns, book, info): `returns`
    is indexed by bar timestamp from the first origin to the last held bar; `book` by origin
    timestamp with columns position, forecast_return, iqr_return, realised_return (over the
    held bars) and turnover (|position changes| from this origin to the next); `info` has
    hold, cost_bps, sizing, gross_return and cost."""
    r_hat, iqr, se = (signal[c].to_numpy(dtype=np.float64) for c in ("signal_return", "signal_iqr", "signal_se"))
    returns, book, info = held_returns(series, origins, size_positions(r_hat, iqr, se, sizing), hold, cost_bps)
    book.insert(1, "forecast_return", r_hat)
    book.insert(2, "iqr_return", iqr)
    return returns, book, info | {"sizing": sizing}


def buy_and_hold(series: AssetSeries, origins: np.ndarray, hold: int, cost_bps: float = 0.0) -> tuple[
        pd.Series, pd.DataFrame, dict[str, Any]]:
    """Long one unit from the first origin over the same held bars as the rule (one entry cost)."""
    return held_returns(series, origins, np.ones(len(origins)), hold, cost_bps)


def held_returns(series: AssetSeries, origins: np.ndarray, position: np.ndarray, hold: int,
                 cost_bps: float) -> tuple[pd.Series, pd.DataFrame, dict[str, Any]]:
    """Per-bar net returns of holding `position[i]` over bars origin_i .. origin_i + hold - 1."""
    origins = np.asarray(origins, dtype=int)
    _check_origins(series, origins, len(position), hold)
    close = filled_close(series)
    last, end = close[origins - 1], close[origins + hold - 1]
    if not np.all(np.isfinite(last)):
        raise ValueError(f"{series.symbol}: no observed close before origin {origins[~np.isfinite(last)][0]}")
    first = int(origins[0])
    held = np.zeros(int(origins[-1]) + hold - first)
    for o, p in zip(origins - first, position):
        held[o : o + hold] = p
    change = np.abs(np.diff(held, prepend=0.0))
    cost = cost_bps * 1e-4 * change
    gross = held * bar_returns(close)[first : first + len(held)]
    returns = pd.Series(gross - cost, index=series.timestamps[first : first + len(held)], name="net_return")
    book = pd.DataFrame({"position": position, "realised_return": end / last - 1.0,
                         "turnover": np.add.reduceat(change, origins - first)},
                        index=pd.Index(series.timestamps[origins], name="origin"))
    info = {"hold": hold, "cost_bps": float(cost_bps), "gross_return": float(np.prod(1 + gross) - 1),
            "cost": float(cost.sum())}
    return returns, book, info


def _check_origins(series: AssetSeries, origins: np.ndarray, n_signals: int, hold: int) -> None:
    if n_signals != len(origins) or len(origins) == 0:
        raise ValueError(f"{series.symbol}: need one signal per origin for W >= 1 origins, got {n_signals} signals "
                         f"for {len(origins)} origins")
    if np.any(np.diff(origins) < hold):
        raise ValueError(f"{series.symbol}: origins closer than the holding period ({hold} bars) would overlap")
    if origins[0] < 1 or origins[-1] + hold > len(series.price):
        raise ValueError(f"{series.symbol}: origins must leave one bar before and {hold} bars after them")


def trading_metrics(
    returns: pd.Series, positions: pd.DataFrame, periods_per_year: float, info: dict[str, Any] | None = None
) -> dict[str, float]:
    """Directional accuracy, annualised Sharpe, max drawdown, turnover, total return, trades.

    `positions` is the trade book of `strategy_returns`. Accuracy counts windows whose realised
    return is nonzero (a zero forecast counts as wrong); Sharpe uses per-bar returns (std
    ddof 1); drawdown is of compounded equity from 1, as a positive fraction; turnover is the
    mean |position change| per origin; a trade is an origin whose position changed.
    """
    r = np.asarray(returns, dtype=np.float64)
    forecast = positions["forecast_return"] if "forecast_return" in positions else positions["position"]
    metrics = {
        "directional_accuracy": directional_accuracy(forecast, positions["realised_return"]),
        "sharpe": sharpe_ratio(r, periods_per_year),
        "sharpe_se": sharpe_standard_error(r, periods_per_year),
        "exposure": float(np.mean(positions["position"] != 0)),
        "max_drawdown": max_drawdown(r),
        "turnover": float(positions["turnover"].mean()),
        "total_return": float(np.prod(1.0 + r) - 1.0),
        "n_trades": int((positions["turnover"] > 0).sum()),
    }
    if info is not None:
        metrics["cost"] = float(info.get("cost", np.nan))
    return metrics


def directional_accuracy(forecast: Any, realised: Any) -> float:
    """Share of windows with a nonzero realised return whose forecast has its sign."""
    f, r = np.asarray(forecast, dtype=np.float64), np.asarray(realised, dtype=np.float64)
    moved = np.isfinite(r) & (r != 0)
    return float(np.mean(np.sign(f[moved]) == np.sign(r[moved]))) if moved.any() else float("nan")


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """mean / std (ddof 1) * sqrt(periods per year); NaN if the returns do not vary."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return float("nan")
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r) / sd * np.sqrt(periods_per_year)) if sd > 0 else float("nan")


SHARPE_BOOTSTRAP_REPLICATES = 500


def sharpe_standard_error(returns: np.ndarray, periods_per_year: float, seed: int = 0) -> float:
    """Standard error of the annualised Sharpe ratio: the spread of `sharpe_ratio` over a
    circular block bootstrap of the bar returns (arch), blocks as long as the data's
    autocorrelation asks (a held position makes neighbouring bars' returns move together)."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 10 or np.std(r) == 0:
        return float("nan")
    block = block_length(r)
    draws = CircularBlockBootstrap(block, r, seed=seed).apply(
        lambda x: np.array([sharpe_ratio(x, periods_per_year)]), reps=SHARPE_BOOTSTRAP_REPLICATES)[:, 0]
    draws = draws[np.isfinite(draws)]
    return float(np.std(draws, ddof=1)) if len(draws) > 1 else float("nan")


def max_drawdown(returns: np.ndarray) -> float:
    """Largest fall of compounded equity (starting at 1) from its running peak, as a fraction."""
    equity = np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))])
    return float(np.max(1.0 - equity / np.maximum.accumulate(equity)))
