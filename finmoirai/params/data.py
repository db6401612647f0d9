"""The data stages' sections: the lake, the market calendars, extract, the split,
preprocess and build, and what a bar frequency label means."""

from __future__ import annotations

import re
import typing
import zoneinfo

import pandas as pd

from finmoirai.errors import DataError
from finmoirai.params.base import ParamsError, Section, date_param, require

CLASSES = ("crypto", "fx", "equity")  # the asset classes with a trading calendar
SOURCES = ("demo", "synthetic")  # what the lake stage writes
BAD_ASSET_POLICIES = ("fail", "skip")  # preprocess.on_bad_asset
OUTLIER_ACTIONS = ("flag", "replace")  # preprocess.outlier_action
DEMO_LAKE = "data/lake"  # where the lake stage writes the demo lake (lake.path's default)


class SyntheticConfig(Section):
    """Size, date range, class mix, seed and defect rates of a synthetic lake."""

    assets: int
    start: str
    years: int
    seed: int
    class_mix: dict[str, float]
    gap_rate: float       # fraction of bars removed (single bars and short runs)
    bad_bar_rate: float   # per kind of bad bar, fraction of bars affected

    def rules(self) -> None:
        require(self.assets >= 1, f"param lake.synthetic.assets: must be >= 1, got {self.assets}")
        require(self.years >= 1, f"param lake.synthetic.years: must be >= 1, got {self.years}")
        unknown = sorted(set(self.class_mix) - set(CLASSES))
        require(not unknown, f"param lake.synthetic.class_mix: unknown class(es) {', '.join(unknown)}; "
                             f"known: {', '.join(CLASSES)}")
        require(all(v >= 0 for v in self.class_mix.values()) and sum(self.class_mix.values()) > 0,
                "param lake.synthetic.class_mix: weights must be >= 0 and not all zero")
        require(0 <= self.gap_rate < 0.5, f"param lake.synthetic.gap_rate: must be in [0, 0.5), got {self.gap_rate}")
        require(0 <= self.bad_bar_rate < 0.05,
                f"param lake.synthetic.bad_bar_rate: must be in [0, 0.05), got {self.bad_bar_rate}")
        date_param(self.start, "lake.synthetic.start")


class LakeConfig(Section):
    """Where extract reads the lake from; the default is the demo lake the lake stage writes.

    `source` says what the lake stage writes to the default location: the embedded real
    `demo` lake, or a `synthetic` market (finmoirai.data.synthetic, sized by `synthetic`)."""

    path: str
    source: str
    synthetic: SyntheticConfig
    strict: bool  # a partition extract cannot parse: an error (true) or skipped and reported (false)
    naive_timezone: str | None  # the zone of timestamps stored without one; null: such a file is an error

    def rules(self) -> None:
        require(bool(self.path.strip()), "param lake.path: must not be empty")
        require(self.source in SOURCES, f"param lake.source: {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.naive_timezone is not None:
            try:
                zoneinfo.ZoneInfo(self.naive_timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ParamsError(f"param lake.naive_timezone: {self.naive_timezone!r} is not a time zone name "
                                  "(such as UTC or America/New_York)") from None


FREQUENCY_UNITS = {"m": "min", "min": "min", "h": "h", "d": "D"}  # lake label -> pandas unit
DAY = pd.Timedelta(days=1)
BAR_STAMPS = ("start", "end")  # market.bar_stamp


def bar_period(frequency: str, key: str) -> pd.Timedelta:
    """The bar period a `frequency=` label names: a count and a unit (1m, 5m, 15min, 1h, 4h,
    1d). An intraday period must divide a day, so every day's bars fall on the same clock
    times; above it only 1d has a calendar (weeks and months are not fixed sessions)."""
    match = re.fullmatch(r"([1-9][0-9]*)([a-z]+)", frequency)
    if match is None or match[2] not in FREQUENCY_UNITS:
        raise ParamsError(f"param {key}: {frequency!r} is not a bar frequency; write a count and a unit, "
                          f"one of {', '.join(FREQUENCY_UNITS)} (e.g. 5m, 1h, 1d)")
    period = pd.Timedelta(int(match[1]), unit=FREQUENCY_UNITS[match[2]])
    if period > DAY or (period < DAY and DAY % period):
        raise ParamsError(f"param {key}: {frequency} bars do not fit a trading day; use a period that divides "
                          f"24 hours (1m, 5m, 15m, 30m, 1h, 2h, 4h, ...) or 1d")
    return period


def period_label(period: pd.Timedelta) -> str:
    """A period as a lake's frequency label (30m, 1h, 1d, 1w; bar_period's inverse), or pandas'
    text when it is none."""
    for unit, size in (("w", pd.Timedelta(weeks=1)), ("d", pd.Timedelta(days=1)), ("h", pd.Timedelta(hours=1)),
                       ("m", pd.Timedelta(minutes=1))):
        if period >= size and period % size == pd.Timedelta(0):
            return f"{period // size}{unit}"
    return str(period)


class MarketConfig(Section):
    """How the lake's bars sit in time: where a bar is stamped, and the trading calendar of
    each asset class (and of single symbols): 24/7, 24/5, or an exchange that the
    exchange-calendars library knows (XNYS, XLON, XETR, XTKS, ...)."""

    bar_stamp: str  # start: a bar is stamped when it opens; end: when it closes
    calendars: dict[str, str]  # asset class -> calendar
    symbol_calendars: dict[str, str]  # symbol -> calendar, before its class's

    def rules(self) -> None:
        import exchange_calendars  # deferred: 0.5 s to import, and only this check needs it here

        require(self.bar_stamp in BAR_STAMPS,
                f"param market.bar_stamp: {self.bar_stamp!r} is not one of {', '.join(BAR_STAMPS)}")
        unknown_classes = sorted(set(self.calendars) - set(CLASSES))
        require(not unknown_classes, f"param market.calendars: unknown asset class(es) {', '.join(unknown_classes)}; "
                                     f"known: {', '.join(CLASSES)}")
        known = set(exchange_calendars.get_calendar_names()) | {"24/7", "24/5"}
        for key, mapping in (("market.calendars", self.calendars), ("market.symbol_calendars", self.symbol_calendars)):
            for name, calendar in mapping.items():
                require(calendar in known, f"param {key}: {name}: {calendar!r} is not a calendar; use 24/7, 24/5 or "
                                           f"an exchange's ISO MIC known to exchange-calendars (XNYS, XLON, XTKS, ...)")


class ExtractConfig(Section):
    """Which partitions of the lake to extract; empty `symbols` means every symbol found."""

    asset_classes: list[str]
    frequency: str
    years: list[int]
    symbols: list[str]

    @property
    def period(self) -> pd.Timedelta:
        return bar_period(self.frequency, "extract.frequency")

    def rules(self) -> None:
        require(len(self.asset_classes) > 0, "param extract.asset_classes: must not be empty")
        require(len(self.years) > 0, "param extract.years: must not be empty")
        require(bool(self.frequency.strip()), "param extract.frequency: must not be empty")
        bar_period(self.frequency, "extract.frequency")
        dup = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
        require(not dup, f"param extract.symbols: duplicate symbol(s) {', '.join(dup)}")


class SplitConfig(Section):
    """Time split: train t < train_end <= validation < val_end <= test."""

    train_end: str
    val_end: str

    def rules(self) -> None:
        train_end, val_end = date_param(self.train_end, "split.train_end"), date_param(self.val_end, "split.val_end")
        require(train_end < val_end, f"param split: train_end {self.train_end} must be before val_end {self.val_end}")

    @classmethod
    def warmup_then_test(cls, test_start: str) -> SplitConfig:
        """The split of a lake that is only scored (`evaluate.lake_path`): every bar before
        `test_start` is the warm-up that scalers and indicator statistics are fitted on (the
        data stages' "training" rows), there is no validation period, the test starts at
        `test_start`. Built directly rather than parsed, so the user's `split` section keeps
        its strict train_end < val_end check."""
        return cls.model_construct(train_end=test_start, val_end=test_start)

    def require_bars(self, rows: typing.Iterable[dict[str, int]], periods: tuple[str, ...]) -> None:
        """Validation picks the recipe and test scores it: when no asset (`rows`: per asset, its
        `val_rows` and `test_rows`) has a bar in one of `periods`, stop with the period's dates,
        not at training time with a missing dataset. An empty validation period (evaluate's
        warm-up split) asks for nothing."""
        rows = list(rows)
        names = {"val": f"validation period {self.train_end} .. {self.val_end} (split.train_end .. split.val_end)",
                 "test": f"test period from {self.val_end} (split.val_end)"}
        for period in periods:
            if period == "val" and not self.train_end_ts < self.val_end_ts:
                continue
            if not sum(r[f"{period}_rows"] for r in rows):
                raise DataError(f"no asset has bars in the {names[period]}; move the split dates inside the data, "
                                "or extract other years")

    @property
    def train_end_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.train_end, tz="UTC")

    @property
    def val_end_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.val_end, tz="UTC")


class PreprocessConfig(Section):
    """Gap, outlier and scaler settings for the preprocess stage."""

    max_fill_bars: int
    outlier_window: int
    outlier_threshold: float
    outlier_action: str  # flag: count the trailing Hampel filter's outliers; replace: also replace them
    min_train_rows: int
    workers: int  # processes across assets; 0 = all cores when there are enough assets
    on_bad_asset: str  # fail: a bad asset stops the stage; skip: it is left out and reported

    def rules(self) -> None:
        require(self.workers >= 0, f"param preprocess.workers: must be >= 0, got {self.workers}")
        require(self.max_fill_bars >= 0, f"param preprocess.max_fill_bars: must be >= 0, got {self.max_fill_bars}")
        require(self.outlier_window >= 3, f"param preprocess.outlier_window: must be >= 3, got {self.outlier_window}")
        require(self.outlier_threshold > 0,
                f"param preprocess.outlier_threshold: must be positive, got {self.outlier_threshold}")
        require(self.outlier_action in OUTLIER_ACTIONS,
                f"param preprocess.outlier_action: {self.outlier_action!r} is not one of {', '.join(OUTLIER_ACTIONS)}")
        require(self.min_train_rows >= 1, f"param preprocess.min_train_rows: must be >= 1, got {self.min_train_rows}")
        require(self.on_bad_asset in BAD_ASSET_POLICIES,
                f"param preprocess.on_bad_asset: {self.on_bad_asset!r} is not one of {', '.join(BAD_ASSET_POLICIES)}")




class BuildConfig(Section):
    batch_size: int
    synthetic_assets: int  # extra synthetic assets in the train split only (0: none)
    synthetic_years: int   # ... of this many years, ending at split.train_end
    synthetic_seed: int

    def rules(self) -> None:
        require(self.batch_size >= 1, f"param build.batch_size: must be >= 1, got {self.batch_size}")
        require(self.synthetic_assets >= 0,
                f"param build.synthetic_assets: must be >= 0, got {self.synthetic_assets}")
        require(self.synthetic_years >= 1, f"param build.synthetic_years: must be >= 1, got {self.synthetic_years}")


