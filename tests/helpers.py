"""Tiny synthetic inputs shared by the builder, model and evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

COVARIATES = ["open", "rsi_14", "regime_volatile"]


def write_feature_dir(out: Path, lengths: dict[str, int], start: str = "2018-09-01", seed: int = 0) -> Path:
    """Per-asset feature files in the layout the features stage writes."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assets = []
    for symbol, n in lengths.items():
        ts = pd.date_range(start, periods=n, freq="h", tz="UTC")
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frame = pd.DataFrame(
            {"timestamp": ts, "observed": rng.random(n) > 0.02, "close_raw": close, "target": (close - 100) / 10}
        )
        for c in COVARIATES:
            frame[c] = rng.normal(size=n)
        frame.loc[:20, "rsi_14"] = np.nan
        frame.to_parquet(out / f"{symbol}.parquet")
        assets.append({"symbol": symbol, "asset_class": "crypto"})
    (out / "manifest.json").write_text(json.dumps({"target": "close", "covariates": COVARIATES, "assets": assets}))
    return out


def price_series(price: np.ndarray, observed: np.ndarray | None = None, start: str = "2019-01-01", test_start: int = 0):
    """An hourly crypto AssetSeries over `price`, for baseline and trading tests."""
    from finmoirai.evaluation import AssetSeries

    n = len(price)
    return AssetSeries(
        symbol="AAA",
        timestamps=pd.date_range(start, periods=n, freq="h", tz="UTC"),
        target_z=np.zeros(n),
        covariates=np.zeros((n, 1)),
        price=np.asarray(price, dtype=np.float64),
        observed=np.ones(n, dtype=bool) if observed is None else observed,
        test_start=test_start,
        to_price=lambda z: z,
        asset_class="crypto",
    )
