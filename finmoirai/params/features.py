"""The features section: pandas-ta indicators (checked against pandas-ta itself: the name, its
category, and no option that reads future bars), market proxies and the regime settings."""

from __future__ import annotations

import inspect
from typing import Any

import pandas_ta as ta

from finmoirai.params.base import Section, require

REQUIRED_CATEGORIES = ("trend", "momentum", "volatility", "volume")


def indicator_category(name: str) -> str | None:
    """The pandas-ta category of indicator `name`, or None if pandas-ta has no such indicator."""
    if not callable(getattr(ta, name, None)):
        return None
    return next((cat for cat, names in ta.Category.items() if name in names), None)


def indicator_kwargs(spec: dict) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "name"}


class FeaturesConfig(Section):
    """Indicator list (pandas-ta names + kwargs), market proxies and regime settings."""

    indicators: list[dict]
    market_proxy: dict[str, str]
    cross_window: int
    regime_window: int
    regime_vol_quantile: float
    regime_adx_threshold: float
    workers: int  # processes across assets; 0 = all cores when there are enough assets
    max_return_gap: int | None  # a return after more unobserved bars than this is missing (None: one bar's move)

    def rules(self) -> None:
        require(self.max_return_gap is None or self.max_return_gap >= 0,
                f"param features.max_return_gap: null or a number of bars >= 0, got {self.max_return_gap!r}")
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


