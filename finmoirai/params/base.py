"""What every params section shares: strict, frozen pydantic models, one-line errors, and
params.yaml read the way DVC reads it.

Parsing is strict (unknown or missing keys, wrong types: no "1" for 1, no 1 for true) so a
typo in params.yaml or in `dvc exp run -S` fails before any expensive work starts, with one
line naming the key. The sections carry no defaults: every value comes from conf/ through
params.yaml, the single copy (tests take the shipped file and override what they need,
`Section.shipped`).
"""

from __future__ import annotations

import datetime
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Self

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from finmoirai.errors import FinMoiraiError

SHIPPED_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


class ParamsError(FinMoiraiError):
    """A parameter in params.yaml is missing, unknown or has a bad value."""


def require(condition: bool, message: str) -> None:
    """Raise ParamsError(message) unless condition holds; for the sections' `rules`."""
    if not condition:
        raise ParamsError(message)


def date_param(value: str, key: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise ParamsError(f"param {key}: {value!r} is not a date ({e})") from None
    require(not pd.isna(ts), f"param {key}: {value!r} is not a date")
    return ts


WANTED = {"int_type": "an integer", "string_type": "a string", "float_type": "a number", "bool_type": "true or false",
          "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}


def one_line(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> FinMoiraiError:
    """The first problem of a pydantic ValidationError as the project's one line naming the
    key (`model`: the class validated, to name a section's keys): a section's own rule keeps
    its message; a type, an unknown or a missing key is said in the words of the YAML file."""
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo: its name, not a gap
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, FinMoiraiError):
        return cause
    key, section, union = prefix, model, None
    for part in first["loc"]:  # walk the models: field names, list indices, mapping keys, a union's member tag
        if isinstance(part, int):
            key += f"[{part}]"
        elif section is not None and part in section.model_fields:
            annotation = section.model_fields[part].annotation
            key = f"{key}.{part}" if key else str(part)
            union = annotation if typing.get_origin(annotation) in (typing.Union, types.UnionType) else None
            section = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        elif union is not None:
            break  # pydantic's tag of the union member it tried: the key is complete
        else:
            key = f"{key}.{part}" if key else str(part)  # a key of a mapping param, or a key no section has
    value, kind = first.get("input"), first["type"]
    if kind == "extra_forbidden":
        parent, _, leaf = key.rpartition(".")
        fields = list(section.model_fields) if section is not None else []
        close = difflib.get_close_matches(leaf, fields, n=1)
        known = f" (a typo of {close[0]}?)" if close else " (a typo?)"
        known += f"; known: {', '.join(fields)}" if fields else ""
        if not parent:
            return ParamsError(f"params.yaml: unknown top-level key {leaf}{known}")
        return ParamsError(f"param {parent}: unknown key {leaf}{known}")
    if kind == "missing":
        return ParamsError(f"param {key} is missing")
    if isinstance(value, datetime.date):
        return ParamsError(f"param {key}: {value} is an unquoted date; quote it: \"{value}\"")
    if union is not None:
        return ParamsError(f"param {key}: {value!r} is not of type {union}")
    return ParamsError(f"param {key}: expected {WANTED.get(kind, first['msg'])}, got {value!r}")


class Section(BaseModel):
    """One section of params.yaml (or the whole file): strict types, no unknown keys, frozen,
    and the section's own `rules` checked on construction."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        self.rules()
        return self

    def rules(self) -> None:
        """The section's own rules beyond types (each raises ParamsError naming the key)."""

    @classmethod
    def parse(cls, raw: Any, name: str = "") -> Self:
        """`raw` (a mapping from YAML) as this section, or one ParamsError line naming the key."""
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise one_line(e, name, cls) from None

    @classmethod
    def shipped(cls, name: str, params_file: str | Path | None = None, **overrides: Any) -> Self:
        """Section `name` of the shipped params.yaml (the repo's, by default) with `overrides`:
        how tests and benchmarks get a section without a second copy of the defaults."""
        params = load_yaml(params_file or SHIPPED_PARAMS)
        return cls.parse({**params[name], **overrides}, name)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes`, validated again (pydantic's model_copy would not check them)."""
        return type(self).model_validate({**dict(self), **changes})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """params.yaml as a mapping, or one line: missing, not YAML, or a value DVC cannot read
    (an unquoted date: DVC stops every `dvc repro` with 'Unsupported value of type date')."""
    path = Path(path)
    try:
        with path.open() as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    found = _first_date(params)
    if found:
        key, value = found
        raise ParamsError(f"param {key}: {value} is an unquoted date, which DVC cannot read (its 'Unsupported value "
                          f"of type date'); write it quoted in {path}: \"{value}\" (conf/ may leave dates unquoted)")
    return params


def _first_date(tree: Any, key: str = "") -> tuple[str, datetime.date] | None:
    """(dotted key, value) of the first YAML date or timestamp in a parsed params tree."""
    if isinstance(tree, datetime.date):
        return key, tree
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for name, value in items:
        found = _first_date(value, f"{key}.{name}" if key else str(name))
        if found:
            return found
    return None
