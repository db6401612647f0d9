"""Typed access to params.yaml: one frozen dataclass per section, at the bottom of the package.

Parsing is strict (unknown or missing keys, wrong types) so a typo in params.yaml or in
`dvc exp run -S` fails before any expensive work starts, naming the offending key. The
dataclasses carry no defaults: every value comes from params.yaml, the single copy
(tests take the shipped file and override what they need, `shipped_section`).
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import math
import re
import types
import typing
import zoneinfo
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pandas_ta as ta
import yaml

from finmoirai.errors import DataError, FinMoiraiError

T = TypeVar("T")


class ParamsError(FinMoiraiError):
    """A parameter in params.yaml is missing, unknown or has a bad value."""


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open() as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return params


def _check_type(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _check_type(value, arg, key)
            except ParamsError:
                continue
        raise ParamsError(f"param {key}: {value!r} is not of type {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise ParamsError(f"param {key}: expected null, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"param {key}: expected a list, got {value!r}")
        return [_check_type(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"param {key}: expected a mapping, got {value!r}")
        if not args:
            return value
        return {
            _check_type(k, args[0], f"{key}.<key>"): _check_type(v, args[1], f"{key}.{k}")
            for k, v in value.items()
        }
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"param {key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"param {key}: expected an integer, got {value!r}")
        return value
    if hint is str:
        if isinstance(value, datetime.date):  # YAML reads an unquoted 2019-01-01 as a date
            return value.isoformat()
        if not isinstance(value, str):
            raise ParamsError(f"param {key}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return parse_section(hint, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"param {key}: expected true or false, got {value!r}")
        return value
    return value


def parse_section(cls: type[T], raw: Any, name: str) -> T:
    """Build dataclass `cls` from mapping `raw`, rejecting unknown keys and bad types."""
    if not isinstance(raw, dict):
        raise ParamsError(f"param {name}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"param {name}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ParamsError(f"param {name}.{missing[0]} is missing")
    values = {fname: _check_type(raw[fname], hints[fname], f"{name}.{fname}") for fname in fields}
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def section(params: dict[str, Any], cls: type[T], name: str) -> T:
    """Parse section `name` of the loaded params into `cls`."""
    if name not in params:
        raise ParamsError(f"param section {name} is missing from params.yaml")
    return parse_section(cls, params[name], name)


def shipped_section(cls: type[T], name: str, params_file: str | Path | None = None, **overrides: Any) -> T:
    """Section `name` of the shipped params.yaml (the repo's, by default) with `overrides`:
    how tests and benchmarks get a config without a second copy of the defaults."""
    params = load_params(params_file or Path(__file__).resolve().parents[1] / "params.yaml")
    return parse_section(cls, {**params[name], **overrides}, name)


def require(condition: bool, message: str) -> None:
    """Raise ParamsError(message) unless condition holds; for dataclass validate() methods."""
    if not condition:
        raise ParamsError(message)


TARGETS = ("level", "log_return")  # what Moirai forecasts (finmoirai/data/targets.py)
CLASSES = ("crypto", "fx", "equity")  # the asset classes with a trading calendar
SOURCES = ("demo", "synthetic")  # what the lake stage writes
BAD_ASSET_POLICIES = ("fail", "skip")  # preprocess.on_bad_asset
OUTLIER_ACTIONS = ("flag", "replace")  # preprocess.outlier_action
# Lightning's names (tests/training/test_loops.py checks them against the installed Lightning),
# listed here so that validating params.yaml does not import torch.
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_find_unused_parameters_true", "fsdp", "deepspeed_stage_1",
              "deepspeed_stage_2", "deepspeed_stage_3", "single_device")
SINGLE_PROCESS_STRATEGIES = ("single_device",)
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")
REQUIRED_CATEGORIES = ("trend", "momentum", "volatility", "volume")
MIXTURE_COMPONENT_NAMES = ("student_t", "normal", "normal_fixed_scale", "laplace", "log_normal", "negative_binomial")
BASELINES = ("random_walk", "rw_ewma", "garch_t", "seasonal_naive", "auto_ets")


def tokens_per_window(context_length: int, prediction_length: int, patch_size: int, num_variates: int) -> int:
    """Sequence length (in patches) of one window once every variate is patchified: uni2ts
    patches the context and the horizon separately."""
    return (math.ceil(context_length / patch_size) + math.ceil(prediction_length / patch_size)) * num_variates


def _date(value: str, key: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise ParamsError(f"param {key}: {value!r} is not a date ({e})") from None
    require(not pd.isna(ts), f"param {key}: {value!r} is not a date")
    return ts


# --------------------------------------------------------------------------- top level


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The top-level experiment knobs (settable with `dvc exp run -S patch_size=64`)."""

    seed: int
    patch_size: int
    context_length: int
    prediction_length: int
    target: str
    calendar: bool

    def validate(self) -> None:
        require(self.target in TARGETS, f"param target: {self.target!r} is not one of {', '.join(TARGETS)}")
        require(self.patch_size in (8, 16, 32, 64, 128),
                f"param patch_size: {self.patch_size} is not one of 8, 16, 32, 64, 128")
        require(self.context_length > 0, f"param context_length: must be positive, got {self.context_length}")
        require(self.prediction_length > 0,
                f"param prediction_length: must be positive, got {self.prediction_length}")


def knobs(params: dict[str, Any]) -> Knobs:
    names = [f.name for f in dataclasses.fields(Knobs)]
    raw = {k: params[k] for k in names if k in params}
    return parse_section(Knobs, raw, "top-level")


# --------------------------------------------------------------------------- data sections


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size, date range, class mix, seed and defect rates of a synthetic lake."""

    assets: int
    start: str
    years: int
    seed: int
    class_mix: dict[str, float]
    gap_rate: float       # fraction of bars removed (single bars and short runs)
    bad_bar_rate: float   # per kind of bad bar, fraction of bars affected

    def validate(self) -> None:
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
        _date(self.start, "lake.synthetic.start")


@dataclasses.dataclass(frozen=True)
class LakeConfig:
    """Where extract reads the lake from; the default is the demo lake the lake stage writes.

    `source` says what the lake stage writes to the default location: the embedded real
    `demo` lake, or a `synthetic` market (finmoirai.data.synthetic, sized by `synthetic`)."""

    path: str
    source: str
    synthetic: SyntheticConfig
    strict: bool  # a partition extract cannot parse: an error (true) or skipped and reported (false)
    naive_timezone: str | None  # the zone of timestamps stored without one; null: such a file is an error

    def validate(self) -> None:
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


@dataclasses.dataclass(frozen=True)
class MarketConfig:
    """How the lake's bars sit in time: where a bar is stamped, and the trading calendar of
    each asset class (and of single symbols): 24/7, 24/5, or an exchange that the
    exchange-calendars library knows (XNYS, XLON, XETR, XTKS, ...)."""

    bar_stamp: str  # start: a bar is stamped when it opens; end: when it closes
    calendars: dict[str, str]  # asset class -> calendar
    symbol_calendars: dict[str, str]  # symbol -> calendar, before its class's

    def validate(self) -> None:
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


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Which partitions of the lake to extract; empty `symbols` means every symbol found."""

    asset_classes: list[str]
    frequency: str
    years: list[int]
    symbols: list[str]

    @property
    def period(self) -> pd.Timedelta:
        return bar_period(self.frequency, "extract.frequency")

    def validate(self) -> None:
        require(len(self.asset_classes) > 0, "param extract.asset_classes: must not be empty")
        require(len(self.years) > 0, "param extract.years: must not be empty")
        require(bool(self.frequency.strip()), "param extract.frequency: must not be empty")
        bar_period(self.frequency, "extract.frequency")
        dup = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
        require(not dup, f"param extract.symbols: duplicate symbol(s) {', '.join(dup)}")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Time split: train t < train_end <= validation < val_end <= test."""

    train_end: str
    val_end: str

    def validate(self) -> None:
        train_end, val_end = _date(self.train_end, "split.train_end"), _date(self.val_end, "split.val_end")
        require(train_end < val_end, f"param split: train_end {self.train_end} must be before val_end {self.val_end}")

    @classmethod
    def warmup_then_test(cls, test_start: str) -> SplitConfig:
        """The split of a lake that is only scored (`evaluate.lake_path`): every bar before
        `test_start` is the warm-up that scalers and indicator statistics are fitted on (the
        data stages' "training" rows), there is no validation period, the test starts at
        `test_start`. Built directly rather than parsed, so the user's `split` section keeps
        its strict train_end < val_end check."""
        return cls(train_end=test_start, val_end=test_start)

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


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Gap, outlier and scaler settings for the preprocess stage."""

    max_fill_bars: int
    outlier_window: int
    outlier_threshold: float
    outlier_action: str  # flag: count the trailing Hampel filter's outliers; replace: also replace them
    min_train_rows: int
    workers: int  # processes across assets; 0 = all cores when there are enough assets
    on_bad_asset: str  # fail: a bad asset stops the stage; skip: it is left out and reported

    def validate(self) -> None:
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


def indicator_category(name: str) -> str | None:
    """The pandas-ta category of indicator `name`, or None if pandas-ta has no such indicator."""
    if not callable(getattr(ta, name, None)):
        return None
    return next((cat for cat, names in ta.Category.items() if name in names), None)


def indicator_kwargs(spec: dict) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "name"}


@dataclasses.dataclass(frozen=True)
class FeaturesConfig:
    """Indicator list (pandas-ta names + kwargs), market proxies and regime settings."""

    indicators: list[dict]
    market_proxy: dict[str, str]
    cross_window: int
    regime_window: int
    regime_vol_quantile: float
    regime_adx_threshold: float
    workers: int  # processes across assets; 0 = all cores when there are enough assets

    def validate(self) -> None:
        require(self.workers >= 0, f"param features.workers: must be >= 0, got {self.workers}")
        covered = {self._check_indicator(i, spec) for i, spec in enumerate(self.indicators)}
        missing = [c for c in REQUIRED_CATEGORIES if c not in covered]
        require(not missing, f"param features.indicators: no indicator of category {', '.join(missing)} "
                             f"(need each of {', '.join(REQUIRED_CATEGORIES)})")
        require(self.cross_window >= 2, f"param features.cross_window: must be >= 2, got {self.cross_window}")
        require(self.regime_window >= 2, f"param features.regime_window: must be >= 2, got {self.regime_window}")
        require(0 < self.regime_vol_quantile < 1,
                f"param features.regime_vol_quantile: must be in (0, 1), got {self.regime_vol_quantile}")
        require(self.regime_adx_threshold >= 0,
                f"param features.regime_adx_threshold: must be >= 0, got {self.regime_adx_threshold}")

    @staticmethod
    def _check_indicator(i: int, spec: dict) -> str:
        key = f"param features.indicators[{i}]"
        require(isinstance(spec, dict) and isinstance(spec.get("name"), str),
                f"{key}: needs a 'name' (a pandas-ta function)")
        name = spec["name"]
        category = indicator_category(name)
        require(category is not None, f"{key}: {name!r} is not a pandas-ta indicator")
        kwargs = indicator_kwargs(spec)
        params = inspect.signature(getattr(ta, name)).parameters
        for flag in ("centered", "lookahead"):
            require(not kwargs.get(flag, False), f"{key}: {name} with {flag}=True uses future bars")
            require(flag not in params or kwargs.get(flag) is False,
                    f"{key}: {name} may use future bars; set {flag}: false explicitly")
        require(kwargs.get("offset", 0) >= 0, f"{key}: {name} with a negative offset uses future bars")
        return category


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    batch_size: int
    synthetic_assets: int  # extra synthetic assets in the train split only (0: none)
    synthetic_years: int   # ... of this many years, ending at split.train_end
    synthetic_seed: int

    def validate(self) -> None:
        require(self.batch_size >= 1, f"param build.batch_size: must be >= 1, got {self.batch_size}")
        require(self.synthetic_assets >= 0,
                f"param build.synthetic_assets: must be >= 0, got {self.synthetic_assets}")
        require(self.synthetic_years >= 1, f"param build.synthetic_years: must be >= 1, got {self.synthetic_years}")


# --------------------------------------------------------------------------- training sections


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    d_model: int
    num_layers: int
    max_seq_len: int
    dropout: float
    mixture: list[str]
    scaler: str  # per-window scaler: std (uni2ts's) or zero_mean (no shift; see PackedZeroMeanScaler)

    def validate(self) -> None:
        require(self.d_model >= 64 and self.d_model % 64 == 0,
                f"param model.d_model: must be a positive multiple of 64 (heads = d_model // 64), got {self.d_model}")
        require(self.num_layers >= 1, f"param model.num_layers: must be >= 1, got {self.num_layers}")
        require(self.max_seq_len >= 8, f"param model.max_seq_len: must be >= 8, got {self.max_seq_len}")
        require(0.0 <= self.dropout < 1.0, f"param model.dropout: must be in [0, 1), got {self.dropout}")
        unknown = [c for c in self.mixture if c not in MIXTURE_COMPONENT_NAMES]
        require(self.scaler in ("std", "zero_mean"), f"param model.scaler: 'std' or 'zero_mean', got {self.scaler!r}")
        require(len(self.mixture) > 0 and not unknown,
                f"param model.mixture: unknown component(s) {unknown}; known: {', '.join(MIXTURE_COMPONENT_NAMES)}")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What every training stage shares: Lightning hardware settings and torch's thread count."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: str  # Lightning's distributed strategy: auto, ddp, fsdp, ... (devices x num_nodes processes)
    precision: str  # 32-true, bf16-mixed (GPU or CPU), 16-mixed (GPU), ...
    accumulate_grad_batches: int  # optimiser step every this many batches (a bigger effective batch)
    num_workers: int  # DataLoader worker processes per training process; 0 = in the training process
    threads: int  # torch intra-op threads: fixed, because the result depends on it

    def validate_trainer(self, section: str) -> None:
        require(self.accelerator in ACCELERATORS,
                f"param {section}.accelerator: {self.accelerator!r} is not one of {', '.join(ACCELERATORS)}")
        require(self.devices >= 1, f"param {section}.devices: must be >= 1, got {self.devices}")
        require(self.num_nodes >= 1, f"param {section}.num_nodes: must be >= 1, got {self.num_nodes}")
        require(self.strategy in STRATEGIES,
                f"param {section}.strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        require(self.precision in PRECISIONS,
                f"param {section}.precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        require(not (self.precision.startswith("16") and self.accelerator == "cpu"),
                f"param {section}.precision: {self.precision} needs a GPU; on CPU use bf16-mixed or 32-true")
        require(self.devices * self.num_nodes == 1 or self.strategy not in SINGLE_PROCESS_STRATEGIES,
                f"param {section}.strategy: {self.strategy} runs one process, but devices x num_nodes = "
                f"{self.devices * self.num_nodes}; use auto or ddp")
        require(self.accumulate_grad_batches >= 1,
                f"param {section}.accumulate_grad_batches: must be >= 1, got {self.accumulate_grad_batches}")
        require(self.num_workers >= 0, f"param {section}.num_workers: must be >= 0, got {self.num_workers}")
        require(self.threads >= 1, f"param {section}.threads: must be >= 1, got {self.threads}")


@dataclasses.dataclass(frozen=True)
class PretrainConfig(TrainerConfig):
    max_steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    min_patches: int
    min_mask_ratio: float
    max_mask_ratio: float
    max_dim: int
    val_check_interval: int
    synthetic_share: float | None  # share of draws from the synthetic corpus (None: one pool with the real assets)

    def validate(self) -> None:
        self.validate_trainer("pretrain")
        require(self.synthetic_share is None or 0 <= self.synthetic_share <= 1,
                f"param pretrain.synthetic_share: null or a number in [0, 1], got {self.synthetic_share!r}")
        require(self.max_steps >= 1, f"param pretrain.max_steps: must be >= 1, got {self.max_steps}")
        require(0 <= self.warmup_steps <= self.max_steps,
                f"param pretrain.warmup_steps: must be in [0, max_steps={self.max_steps}], got {self.warmup_steps}")
        require(self.batch_size >= 1, f"param pretrain.batch_size: must be >= 1, got {self.batch_size}")
        require(self.lr > 0, f"param pretrain.lr: must be > 0, got {self.lr}")
        require(0 < self.min_mask_ratio <= self.max_mask_ratio < 1,
                "param pretrain.min_mask_ratio/max_mask_ratio: need 0 < min <= max < 1")
        require(self.min_patches >= 2, f"param pretrain.min_patches: must be >= 2, got {self.min_patches}")
        require(self.val_check_interval >= 1,
                f"param pretrain.val_check_interval: must be >= 1, got {self.val_check_interval}")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(TrainerConfig):
    init_from: str
    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    train_distance: int
    patience: int

    def validate(self) -> None:
        self.validate_trainer("finetune")
        require(self.max_epochs >= 1, f"param finetune.max_epochs: must be >= 1, got {self.max_epochs}")
        require(self.batch_size >= 1, f"param finetune.batch_size: must be >= 1, got {self.batch_size}")
        require(self.lr > 0, f"param finetune.lr: must be > 0, got {self.lr}")
        require(self.train_distance >= 1, f"param finetune.train_distance: must be >= 1, got {self.train_distance}")
        require(self.patience >= 1, f"param finetune.patience: must be >= 1, got {self.patience}")
        require(bool(self.init_from), "param finetune.init_from: must name a local model folder or a hub id")


# --------------------------------------------------------------------------- evaluation section


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
    """The baselines stage: what a quant would use instead of the model, scored on the windows
    evaluate scores, with a seed of their own so that the yardstick never moves with the
    model's `seed`."""

    models: list[str]
    seed: int  # the baselines' own sampling seed (not the top-level seed)
    num_samples: int  # sample paths per window: more than the model's, their Monte-Carlo noise is in every skill
    lookback: int  # bars of history the statistical baselines fit on
    ewma_halflife: float  # bars: RW-EWMA's volatility memory (its lambda = 0.5 ** (1 / ewma_halflife))
    season_length: dict[str, int]

    def validate(self) -> None:
        unknown = [b for b in self.models if b not in BASELINES]
        require(not unknown, f"param baselines.models: unknown {unknown}; known: {', '.join(BASELINES)}")
        require(bool(self.models), "param baselines.models: name at least the reference (evaluate.reference)")
        require(self.num_samples >= 10, f"param baselines.num_samples: must be >= 10, got {self.num_samples}")
        require(self.lookback >= 50, f"param baselines.lookback: must be >= 50, got {self.lookback}")
        require(self.ewma_halflife > 0, f"param baselines.ewma_halflife: must be > 0 bars, got {self.ewma_halflife}")
        require(all(v >= 1 for v in self.season_length.values()), "param baselines.season_length: lengths must be >= 1")


DEMO_LAKE = "data/lake"  # where the lake stage writes the demo lake (lake.path's default)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    stride: int
    num_samples: int
    batch_size: int
    threads: int  # torch intra-op threads for the models' forecasts (fixed: the result depends on it)
    plot_assets: int
    reference: str  # the baseline that the headline skill is measured against
    transaction_cost_bps: dict[str, float]  # per asset class, per unit of turnover
    sizing: str
    split: str  # the period scored: test, or val to choose recipes without looking at test
    lake_path: str  # the lake scored: lake.path (the pipeline's own data) or another lake, a DVC dependency
    symbols: list[str]
    asset_classes: list[str]
    years: list[int]  # the other lake's years (empty: extract.years)
    test_start: str | None  # the other lake's test start (null: split.val_end)
    market_proxy: dict[str, str]  # the other lake's proxy symbol per asset class where its names differ

    def validate(self) -> None:
        require(self.stride >= 1, f"param evaluate.stride: must be >= 1, got {self.stride}")
        require(self.num_samples >= 10, f"param evaluate.num_samples: must be >= 10, got {self.num_samples}")
        require(self.batch_size >= 1, f"param evaluate.batch_size: must be >= 1, got {self.batch_size}")
        require(self.plot_assets >= 0, f"param evaluate.plot_assets: must be >= 0, got {self.plot_assets}")
        require(self.threads >= 1, f"param evaluate.threads: must be >= 1, got {self.threads}")
        require(self.reference in BASELINES,
                f"param evaluate.reference: {self.reference!r} is not a baseline; known: {', '.join(BASELINES)}")
        negative = {k: v for k, v in self.transaction_cost_bps.items() if v < 0}
        require(not negative, f"param evaluate.transaction_cost_bps: must be >= 0, got {negative}")
        require(self.sizing in ("sign", "confidence"),
                f"param evaluate.sizing: 'sign' or 'confidence', got {self.sizing!r}")
        require(self.split in ("test", "val"), f"param evaluate.split: 'test' or 'val', got {self.split!r}")
        require(bool(self.lake_path.strip()),
                "param evaluate.lake_path: must name a lake (lake.path, the default, scores the pipeline's own data)")
        dup = sorted({y for y in self.years if self.years.count(y) > 1})
        require(not dup, f"param evaluate.years: duplicate year(s) {', '.join(map(str, dup))}")
        if self.test_start is not None:
            _date(self.test_start, "evaluate.test_start")
        empty = sorted(c for c, symbol in self.market_proxy.items() if not symbol.strip())
        require(not empty, f"param evaluate.market_proxy: empty symbol for asset class(es) {', '.join(empty)}")

    def selects(self) -> bool:
        """Whether a selection of its own (symbols, classes, years, test start) is set."""
        return bool(self.symbols or self.asset_classes or self.years or self.test_start is not None)

    def scores_other_lake(self, lake: LakeConfig) -> bool:
        """Whether evaluate runs the data stages on `lake_path` itself (another lake, or a
        selection of the pipeline's own) rather than reading the pipeline's features."""
        return Path(self.lake_path) != Path(lake.path) or self.selects()
