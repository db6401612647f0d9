"""`finmoirai forecast`: a packaged model folder and a lake in, the next bars' quantiles out.

    lake --(extract up to asof)--> bars --(preprocess, features with the folder's statistics)-->
    model inputs --(Moirai, one window per asset, evaluate's seeding)--> sample paths --> Parquet

The data code is the stages' own (finmoirai.data), with every statistic taken from the folder's
forecast.json instead of fitted, and the window is drawn exactly as evaluate draws the window
with the same origin (finmoirai.evaluation.forecasters.window_seed): as of the bar before one
of evaluate's origins, on the same lake, the forecast is the one evaluate scored.

The output's schema is finmoirai.evaluation.forecast_table's (evaluate writes the same).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from finmoirai import write_parquet
from finmoirai.data.calendars import BarCalendar, asset_calendar
from finmoirai.data.features import features_from_lake
from finmoirai.data.lake import lake_years
from finmoirai.data.targets import calendar_features
from finmoirai.errors import BadAsset, FinMoiraiError
from finmoirai.evaluation.forecast_table import forecast_frame, last_close
from finmoirai.evaluation.forecasters import moirai_samples
from finmoirai.evaluation.plots import plot_fan_chart
from finmoirai.evaluation.series import AssetSeries, Windows, load_series
from finmoirai.forecasting.bundle import Recipe
from finmoirai.params.data import ExtractConfig
from finmoirai.training.module import load_module

logger = logging.getLogger(__name__)

DEFAULT_QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


class ForecastError(FinMoiraiError):
    """What the forecast command cannot do with the lake or the options it was given."""


def next_bars(bars: BarCalendar, last: pd.Timestamp, count: int) -> pd.DatetimeIndex:
    """The `count` bars after `last` on the asset's trading calendar."""
    span = bars.period * count * 4 + pd.Timedelta(days=10)
    while True:
        grid = bars.grid(last, last + span)
        after = grid[grid > last]
        if len(after) >= count:
            return after[:count]
        span *= 2


def with_horizon(series: AssetSeries, future: pd.DatetimeIndex, bars: BarCalendar) -> AssetSeries:
    """`series` extended by the bars to forecast: no data there, only their calendar covariates."""
    h = len(future)
    timestamps = series.timestamps.append(future)
    nan = np.full(h, np.nan)
    return AssetSeries(
        symbol=series.symbol, timestamps=timestamps, target_z=np.concatenate([series.target_z, nan]),
        covariates=np.concatenate([series.covariates, np.full((h, series.covariates.shape[1]), np.nan)]),
        price=np.concatenate([series.price, nan]), observed=np.concatenate([series.observed, np.zeros(h, bool)]),
        test_start=len(series.price), to_price=series.to_price, asset_class=series.asset_class,
        calendar=calendar_features(timestamps, bars), bars=bars)


def _selection(recipe: Recipe, lake: Path, symbols: list[str],
               asof: pd.Timestamp | None) -> tuple[ExtractConfig, dict[str, dict[str, dict]]]:
    """extract's selection: the symbols and their market proxies, every year of the lake from
    the first the model trained on (an indicator's warm-up starts where training's did) to
    asof; and the folder's statistics of those assets."""
    unknown = [s for s in symbols if s not in recipe.symbols]
    if unknown:
        raise ForecastError(f"--symbols {', '.join(unknown)}: the model has no statistics for it (it was trained "
                            f"on {', '.join(recipe.symbols)}); forecast those, or train on the new asset")
    classes = sorted({recipe.asset(s)["asset_class"] for s in symbols})
    needed = sorted({*symbols, *(recipe.features.market_proxy[c] for c in classes)})
    selection = recipe.extract.replace(symbols=needed, asset_classes=classes)
    absent = [s for s in needed if not lake_years(lake, selection.replace(symbols=[s]))]
    if absent:
        raise ForecastError(f"--lake {lake}: no {recipe.extract.frequency} partitions of {', '.join(absent)} "
                            f"(classes {', '.join(classes)}); a symbol to forecast and its market proxy must both "
                            "be in the lake")
    have, first = lake_years(lake, selection), min(recipe.extract.years)
    years = [y for y in have if y >= first and (asof is None or y <= asof.year)]
    if not years:
        when = f" up to {asof}" if asof is not None else ""
        raise ForecastError(f"--lake {lake}: no {recipe.extract.frequency} bars of {', '.join(needed)} from "
                            f"{first}{when} (the lake has years {have} for them)")
    fitted = {stage: {s: recipe.statistics[stage][s] for s in needed} for stage in ("preprocess", "features")}
    return selection.replace(years=years), fitted


def model_inputs(recipe: Recipe, lake: Path, symbols: list[str], asof: pd.Timestamp | None) -> list[AssetSeries]:
    """Each asset's series up to asof through the stages' data code with the folder's
    statistics, extended by the bars to forecast (their calendar covariates only); every way
    the lake cannot give a window is one line, before anything is written."""
    selection, fitted = _selection(recipe, lake, symbols, asof)
    knobs = recipe.knobs
    with tempfile.TemporaryDirectory(prefix="finmoirai-forecast-") as tmp:
        work = Path(tmp)
        try:
            features_from_lake(lake, selection, recipe.split, recipe.preprocess.replace(on_bad_asset="fail"),
                               recipe.features, work, market=recipe.market, strict=recipe.strict,
                               naive_timezone=recipe.naive_timezone, fitted=fitted, until=asof)
        except BadAsset as e:  # the stages' advice (on_bad_asset, the windows' params) is not a forecast's
            raise ForecastError(f"{e.symbol}: too little history up to {asof or 'the end of the lake'} for the "
                                f"model's features ({e.reason.split(';')[0]}); forecast as of a later time, or add "
                                "history to the lake") from None
        by_symbol = {s.symbol: s for s in load_series(work / "features", fitted["preprocess"],
                                                      pd.Timestamp.max.tz_localize("UTC"), knobs.target,
                                                      recipe.covariates)}
    inputs = []
    for symbol in symbols:
        series = by_symbol[symbol]
        last = series.timestamps[-1]
        bars = asset_calendar(recipe.market, recipe.asset(symbol))
        future = next_bars(bars, last, knobs.prediction_length)
        if asof is not None and asof >= future[0]:
            raise ForecastError(f"--asof {asof}: beyond the lake's data: {symbol}'s last bar is {last} and its next "
                                f"bar ({future[0]}) is not in the lake; forecast as of {last} or earlier, or add the "
                                "missing bars")
        if len(series.price) < knobs.context_length:
            raise ForecastError(f"{symbol}: {len(series.price)} bars up to {last}, the model reads "
                                f"context_length={knobs.context_length}; forecast as of a later time, or add history")
        inputs.append(with_horizon(series, future, bars))
    latest = max(s.timestamps[-1] for s in by_symbol.values())
    for symbol in symbols:
        last = by_symbol[symbol].timestamps[-1]
        if latest - last > pd.Timedelta(days=7):
            logger.warning("%s: its last bar (%s) is %d days before the lake's latest (%s): its forecast starts "
                           "there", symbol, last, (latest - last).days, latest)
    return inputs


def forecast(model_dir: str | Path, lake: str | Path, out_dir: str | Path, symbols: list[str] | None = None,
             asof: str | pd.Timestamp | None = None, quantiles: tuple[float, ...] | list[float] = DEFAULT_QUANTILES,
             sample_paths: bool = False, num_samples: int | None = None, seed: int | None = None,
             plots: bool = True, device: str = "cpu") -> pd.DataFrame:
    """Forecast the next bars after `asof` (default: each asset's last bar) of `symbols`
    (default: every asset the model knows) from `lake`; writes forecast.parquet (and
    samples.parquet, fan charts under fan/) to `out_dir` once every asset is forecast, and
    returns the forecast frame."""
    recipe = Recipe.read(model_dir)
    lake, out_dir = Path(lake), Path(out_dir)
    if not lake.is_dir():
        raise ForecastError(f"--lake {lake}: no such folder (a hive-partitioned Parquet lake)")
    knobs = recipe.knobs
    inputs = model_inputs(recipe, lake, list(symbols or recipe.symbols), None if asof is None else _timestamp(asof))
    module = load_module(str(recipe.folder), "--model").eval().to(device)
    drawn = []
    for series in inputs:
        origin = np.array([series.test_start])  # the first bar to forecast
        samples = moirai_samples(module, series, origin, knobs.context_length, knobs.prediction_length,
                                 knobs.patch_size, num_samples or recipe.num_samples,
                                 knobs.seed if seed is None else seed, calendar=knobs.calendar, device=device)
        drawn.append((series, origin, samples))
        logger.info("%s: forecast from %s, median close at step %d: %.6g", series.symbol,
                    series.timestamps[origin[0] - 1], knobs.prediction_length, np.median(samples[0, :, -1]))
    frames, paths = [], []
    for series, origin, samples in drawn:
        future = series.timestamps[origin[0]:]
        frames.append(forecast_frame(series.symbol, series.asset_class, recipe.folder.name, future[:1],
                                     series.timestamps[origin - 1], [future], last_close(series, origin), samples,
                                     quantiles))
        if sample_paths:
            s, h = samples.shape[1:]
            steps = np.tile(np.arange(h), s)
            paths.append(pd.DataFrame({"symbol": series.symbol, "origin": future[0],
                                       "sample": np.repeat(np.arange(s), h), "step": steps + 1,
                                       "timestamp": future[steps], "price": samples[0].reshape(-1)}))
    table = pd.concat(frames, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(table, out_dir / "forecast.parquet")
    if sample_paths:
        write_parquet(pd.concat(paths, ignore_index=True), out_dir / "samples.parquet")
    if plots:
        for series, origin, samples in drawn:
            title = f"{series.symbol}: the {knobs.prediction_length} bars after {series.timestamps[origin[0] - 1]}"
            plot_fan_chart(Windows(series, origin), samples, recipe.folder.name,
                           out_dir / "fan" / f"{series.symbol}.png", title=title)
    return table


def _timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise ForecastError(f"--asof {value}: not a time (e.g. 2019-09-30T23:00:00Z)") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
