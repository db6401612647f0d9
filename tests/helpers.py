"""Tiny synthetic inputs shared by the builder, model and evaluation tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from finmoirai.config import stage_command
from finmoirai.data.calendars import BarCalendar
from finmoirai.data.lake import write_partitions
from finmoirai.data.targets import log_returns
from finmoirai.evaluation.series import AssetSeries
from finmoirai.params.data import LakeConfig, MarketConfig, PreprocessConfig, SyntheticConfig

REPO = Path(__file__).resolve().parents[1]
DATA_STAGES = ("lake", "extract", "preprocess", "features", "build")
# A 4-asset, 1-year synthetic lake (one asset per class and the crypto proxy) and its selection
SMALL_LAKE = {
    "lake": {"path": "data/lake", "source": "synthetic",
             "synthetic": {"assets": 4, "start": "2018-01-01", "years": 1, "seed": 3}},
    "extract": {"asset_classes": ["crypto", "fx", "equity"], "frequency": "1h", "years": [2018], "symbols": []},
    "split": {"train_end": "2018-09-01", "val_end": "2018-11-01"},
    "features": {"market_proxy": {"crypto": "CRY0000", "fx": "FXS0000", "equity": "EQT0000"}},
}


def run_small_data_stages(work: Path, env: dict[str, str] | None = None) -> Path:
    """The repo's params with SMALL_LAKE merged in, written to `work`/params.yaml, and the five
    data stage scripts run on them in `work`, in one fresh interpreter (as DVC runs them, with
    their dvc.yaml command lines). Returns `work`, whose data/ then holds every data output."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    synthetic = {**params["lake"]["synthetic"], **SMALL_LAKE["lake"]["synthetic"]}
    for key, value in SMALL_LAKE.items():
        params[key] = {**params[key], **value}
    params["lake"]["synthetic"] = synthetic
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    script = "import runpy, sys\n"
    for stage in DATA_STAGES:
        argv = stage_command(stage, REPO / "dvc.yaml")[1:]
        script += f"sys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True, timeout=600,
                          env=env if env is not None else dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    return work


def synthetic_config(**overrides) -> SyntheticConfig:
    """The shipped `lake.synthetic` generator settings with `overrides`."""
    return LakeConfig.shipped("lake").synthetic.replace(**overrides)


def preprocess_config(**overrides) -> PreprocessConfig:
    """The shipped `preprocess` section with `overrides`."""
    return PreprocessConfig.shipped("preprocess", **overrides)

COVARIATES = ["open", "rsi_14", "regime_volatile"]
RETURN_COVARIATES = ["open_rel", "rsi_14", "regime_volatile"]


def write_feature_dir(out: Path, lengths: dict[str, int], start: str = "2018-09-01", seed: int = 0) -> Path:
    """Per-asset feature files in the layout the features stage writes."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assets = []
    for symbol, n in lengths.items():
        ts = pd.date_range(start, periods=n, freq="h", tz="UTC")
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        observed = rng.random(n) > 0.02
        frame = pd.DataFrame({"timestamp": ts, "observed": observed, "close_raw": close, "target": (close - 100) / 10,
                              "log_return": log_returns(close, observed)})
        for c in dict.fromkeys(COVARIATES + RETURN_COVARIATES):
            frame[c] = rng.normal(size=n)
        frame.loc[:20, "rsi_14"] = np.nan
        frame.to_parquet(out / f"{symbol}.parquet")
        assets.append({"symbol": symbol, "asset_class": "crypto", "frequency": "1h", "calendar": "24/7"})
    (out / "manifest.json").write_text(json.dumps({"target": "close", "covariates": COVARIATES,
                                                   "return_covariates": RETURN_COVARIATES, "assets": assets}))
    return out


def price_series(price: np.ndarray, observed: np.ndarray | None = None, start: str = "2019-01-01", test_start: int = 0):
    """An hourly crypto AssetSeries over `price`, for baseline and trading tests."""
    n = len(price)
    return AssetSeries(
        symbol="AAA",
        timestamps=pd.date_range(start, periods=n, freq="h", tz="UTC"),
        target_z=np.zeros(n),
        covariates=np.zeros((n, 1)),
        price=np.asarray(price, dtype=np.float64),
        observed=np.ones(n, dtype=bool) if observed is None else observed,
        test_start=test_start,
        to_price=lambda z, origins: z,
        asset_class="crypto",
        bars=BarCalendar("24/7", pd.Timedelta(hours=1)),
    )


def write_hourly_lake(out: Path, symbols: dict[str, str], start: str, end: str, seed: int = 0) -> Path:
    """A hive-partitioned lake (the layout `lake.write_partitions` writes) of hourly random-walk
    OHLCV bars in [start, end): `symbols` maps symbol -> asset class (24/7 classes such as
    crypto: every hour is a bar). For lakes of other years than the demo's."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, end, freq="h", tz="UTC", inclusive="left")
    for n, (symbol, asset_class) in enumerate(symbols.items()):
        close = 100.0 * (n + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, len(ts))))
        open_ = np.concatenate([[close[0]], close[:-1]])
        wick = np.abs(rng.normal(0, 0.003, (2, len(ts))))
        frame = pd.DataFrame({"timestamp": ts, "open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
                              "low": np.minimum(open_, close) * (1 - wick[1]),
                              "close": close, "volume": rng.lognormal(10, 0.5, len(ts))})
        write_partitions(Path(out), asset_class, symbol, frame)
    return Path(out)


MARKET = MarketConfig.shipped("market")  # the shipped calendars: crypto 24/7, fx 24/5, equity XNYS
