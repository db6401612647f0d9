"""Typed access to params.yaml: every stage parses its own section into a dataclass.

Parsing is strict (unknown or missing keys, wrong types) so a typo in params.yaml or in
`dvc exp run -S` fails before any expensive work starts, naming the offending key.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from finmoirai.targets import TARGETS

T = TypeVar("T")


class ParamsError(ValueError):
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
    values = {}
    for fname, field in fields.items():
        key = f"{name}.{fname}"
        if fname in raw:
            values[fname] = _check_type(raw[fname], hints[fname], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"param {key} is missing")
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


def require(condition: bool, message: str) -> None:
    """Raise ParamsError(message) unless condition holds; for dataclass validate() methods."""
    if not condition:
        raise ParamsError(message)


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
        require(self.patch_size in (8, 16, 32, 64, 128), f"param patch_size: {self.patch_size} is not one of 8, 16, 32, 64, 128")
        require(self.context_length > 0, f"param context_length: must be positive, got {self.context_length}")
        require(self.prediction_length > 0, f"param prediction_length: must be positive, got {self.prediction_length}")


def knobs(params: dict[str, Any]) -> Knobs:
    names = [f.name for f in dataclasses.fields(Knobs)]
    raw = {k: params[k] for k in names if k in params}
    return parse_section(Knobs, raw, "top-level")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Time split: train t < train_end <= validation < val_end <= test."""

    train_end: str
    val_end: str

    def validate(self) -> None:
        import pandas as pd

        try:
            a, b = pd.Timestamp(self.train_end), pd.Timestamp(self.val_end)
        except ValueError as e:
            raise ParamsError(f"param split: bad date ({e})") from None
        require(a < b, f"param split: train_end {self.train_end} must be before val_end {self.val_end}")

    @classmethod
    def warmup_then_test(cls, test_start: str) -> SplitConfig:
        """The split of a lake that is only scored (`evaluate.lake_path`): every bar before
        `test_start` is the warm-up that scalers and indicator statistics are fitted on (the
        data stages' "training" rows), there is no validation period, the test starts at
        `test_start`. Built directly rather than parsed, so the user's `split` section keeps
        its strict train_end < val_end check."""
        return cls(train_end=test_start, val_end=test_start)

    @property
    def train_end_ts(self):
        import pandas as pd

        return pd.Timestamp(self.train_end, tz="UTC")

    @property
    def val_end_ts(self):
        import pandas as pd

        return pd.Timestamp(self.val_end, tz="UTC")
