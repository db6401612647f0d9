"""Features stage: causal technical indicators, cross-asset features against a market proxy,
a volatility/trend regime indicator, all z-scored with training-period statistics.

Every feature at bar t uses only bars <= t, and every normalisation statistic uses only
observed bars before split.train_end, so nothing from validation or test leaks backwards.
Warm-up NaNs are kept: uni2ts treats NaN as unobserved.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandas_ta as ta

from finmoirai import write_parquet
from finmoirai.data.lake import extract
from finmoirai.data.parallel import kept_assets, map_assets, require_kept, resolve_workers
from finmoirai.data.preprocessing import apply_scaler, preprocess, safe_std
from finmoirai.data.targets import log_returns
from finmoirai.errors import BadAsset, DataError, about_asset
from finmoirai.params.base import ParamsError
from finmoirai.params.data import ExtractConfig, MarketConfig, PreprocessConfig, SplitConfig
from finmoirai.params.features import FeaturesConfig, indicator_kwargs

logger = logging.getLogger(__name__)

OHLCV_ARGS = {"open_": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}
CROSS_COLUMNS = ["mkt_corr", "mkt_beta", "mkt_relstr"]
REGIME_COLUMNS = ["regime_trending", "regime_ranging", "regime_volatile"]
VOL_THRESHOLD = "vol_threshold"  # saved in regime_volatile's scaler entry: the fitted regime threshold
BASE_COLUMNS = ["open", "high", "low", "log_volume"]
ADX_LENGTH = 14
# Under the `log_return` target the covariates must be stationary too. pandas-ta columns are
# recognised by prefix: price levels become percent log distances to close, price differences
# become percent of close, cumulative sums are left out (log_volume carries volume); every other
# column (oscillators, ratios, cross-asset, regime) is already stationary and is kept as is.
PRICE_LEVEL_PREFIXES = ("open", "high", "low", "EMA_", "SMA_", "WMA_", "DEMA_", "TEMA_", "HMA_", "KAMA_", "ALMA_",
                        "ZLMA_", "T3_", "TRIMA_", "VWMA_", "LINREG_", "MIDPOINT_", "MIDPRICE_", "SUPERT_", "BBL_",
                        "BBM_", "BBU_", "KCL", "KCB", "KCU", "DCL_", "DCM_", "DCU_", "ACCBL_", "ACCBM_", "ACCBU_",
                        "VWAP")
PRICE_DIFF_PREFIXES = ("ATR_", "ATRr_", "ATRe_", "ATRs_", "MACD_", "MACDh_", "MACDs_", "APO_", "MOM_")
CUMULATIVE_PREFIXES = ("OBV", "AD_", "ADOSC_", "PVT", "NVI_", "PVI_")  # and pandas-ta's `ad`, named plain "AD"


# --------------------------------------------------------------------------- indicators


def compute_indicators(df: pd.DataFrame, indicators: list[dict]) -> pd.DataFrame:
    """Run each pandas-ta indicator on the OHLCV columns it needs; keep every output column."""
    out: dict[str, pd.Series] = {}
    for spec in indicators:
        name = spec["name"]
        fn = getattr(ta, name)
        params = inspect.signature(fn).parameters
        args = {arg: df[col] for arg, col in OHLCV_ARGS.items() if arg in params}
        result = fn(**args, **indicator_kwargs(spec))
        for col, series in _as_columns(name, result).items():
            if col in out:
                raise ValueError(f"indicator {name}: output column {col} already produced by another indicator")
            out[col] = series.astype(float)
    return pd.DataFrame(out, index=df.index)


def _as_columns(name: str, result: Any) -> dict[str, pd.Series]:
    if isinstance(result, pd.Series):
        return {str(result.name): result}
    if isinstance(result, pd.DataFrame):
        return {str(c): result[c] for c in result.columns}
    raise DataError(f"indicator {name}: returned {type(result).__name__} (too few bars, or not a series indicator)")


# --------------------------------------------------------------------------- cross-asset


def cross_asset(close: pd.Series, proxy_close: pd.Series, window: int) -> pd.DataFrame:
    """Rolling correlation, beta and relative strength of log returns vs the proxy.

    Both series are indexed by timestamp; the proxy is aligned to the asset's timestamps,
    so a timestamp where the proxy has no bar gets NaN features.
    """
    proxy = proxy_close.reindex(close.index)
    la, lp = np.log(close), np.log(proxy)
    ra, rp = la.diff(), lp.diff()
    min_periods = max(2, window // 2)
    corr = ra.rolling(window, min_periods=min_periods).corr(rp)
    beta = ra.rolling(window, min_periods=min_periods).cov(rp) / rp.rolling(window, min_periods=min_periods).var()
    rel = la.diff(window) - lp.diff(window)
    out = pd.DataFrame({"mkt_corr": corr, "mkt_beta": beta, "mkt_relstr": rel}, index=close.index)
    out[proxy.isna().to_numpy()] = np.nan
    return out.replace([np.inf, -np.inf], np.nan)


# --------------------------------------------------------------------------- regime


def realised_vol(df: pd.DataFrame, cfg: FeaturesConfig) -> pd.Series:
    """Rolling std of log-close returns over `features.regime_window` bars (trailing)."""
    return np.log(df["close"]).diff().rolling(cfg.regime_window).std()


def fit_regime_threshold(vol: pd.Series, split: SplitConfig, cfg: FeaturesConfig) -> float:
    """The volatile regime's threshold: the training period's `regime_vol_quantile` of realised
    vol (`realised_vol`, indexed by timestamp)."""
    train_vol = vol[(vol.index < split.train_end_ts)].dropna()
    if train_vol.empty:
        raise DataError(f"no training-period bars to fit the regime volatility threshold (its first "
                        f"features.regime_window={cfg.regime_window} bars before split.train_end={split.train_end} "
                        "are the window's warm-up)")
    return float(train_vol.quantile(cfg.regime_vol_quantile))


def regime(df: pd.DataFrame, split: SplitConfig, cfg: FeaturesConfig, adx: pd.Series | None = None,
           threshold: float | None = None, vol: pd.Series | None = None) -> pd.DataFrame:
    """One-hot regime: volatile (realised vol above its training quantile), else trending
    (ADX above threshold), else ranging. NaN while vol or ADX is still warming up.
    `adx`, `vol`: the ADX_14 and realised-vol series when the caller already computed them
    (same numbers); `threshold`: the vol threshold already fitted (a trained model's, when
    forecasting)."""
    if vol is None:
        vol = realised_vol(df, cfg)
    if threshold is None:
        threshold = fit_regime_threshold(vol, split, cfg)
    if adx is None:
        adx = ta.adx(df["high"], df["low"], df["close"], length=ADX_LENGTH)[f"ADX_{ADX_LENGTH}"]
    volatile = vol > threshold
    trending = ~volatile & (adx > cfg.regime_adx_threshold)
    ranging = ~volatile & ~trending
    out = pd.DataFrame({"regime_trending": trending, "regime_ranging": ranging, "regime_volatile": volatile},
                       index=df.index).astype(float)
    out[(vol.isna() | adx.isna()).to_numpy()] = np.nan
    return out


# --------------------------------------------------------------------------- normalisation


def fit_zscore(values: np.ndarray, train_mask: np.ndarray) -> dict[str, Any]:
    """Mean/std on training rows (NaN skipped); degenerate std -> 1, undefined mean -> 0."""
    x = np.asarray(values, dtype=float)[np.asarray(train_mask, dtype=bool)]
    x = x[~np.isnan(x)]
    mean = float(x.mean()) if len(x) else 0.0
    mean = mean if np.isfinite(mean) else 0.0
    std = safe_std(float(x.std()) if len(x) else 1.0, mean)
    return {"mean": mean, "std": std, "transform": "identity"}


def stationary_columns(raw: pd.DataFrame, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The `log_return` target's covariates from the raw (unscaled) indicator and OHLC columns:
    `<col>_rel` for price levels and price differences (see PRICE_*_PREFIXES), the rest as is.
    A ratio that is undefined (a non-positive band, say) is NaN, which uni2ts masks."""
    close = df["close"].to_numpy(dtype=float)
    unobserved = ~df["observed"].to_numpy(dtype=bool)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for col in ("open", "high", "low"):  # a filled bar's O/H/L are not measurements
            out[f"{col}_rel"] = np.where(unobserved, np.nan, 100.0 * np.log(df[col].to_numpy(dtype=float) / close))
        for col in raw.columns:
            values = raw[col].to_numpy(dtype=float)
            if col == "AD" or col.startswith(CUMULATIVE_PREFIXES):
                continue
            if col.startswith(PRICE_LEVEL_PREFIXES):
                out[f"{col}_rel"] = 100.0 * np.log(values / close)
            elif col.startswith(PRICE_DIFF_PREFIXES):
                out[f"{col}_rel"] = 100.0 * values / close
            else:
                out[col] = values
    return {k: np.where(np.isfinite(v), v, np.nan) for k, v in out.items()}


def asset_features(df: pd.DataFrame, proxy: pd.DataFrame, split: SplitConfig, cfg: FeaturesConfig,
                   ohlcv_scaler: dict[str, dict], fitted: dict[str, dict] | None = None,
                   ) -> tuple[pd.DataFrame, dict[str, dict], dict[str, list[str]]]:
    """Normalised feature frame, scalers and covariates per target representation of one asset:
    the frame holds timestamp, observed, close_raw, target (z-scored
    close), log_return (percent), then the `level` covariates, then the `log_return` target's
    stationary covariates that are not already among them.

    `fitted`: this asset's statistics from a trained model's folder (its features scalers,
    the regime threshold among them), applied as they are instead of fitted on `split`'s
    training period: a forecast sees the numbers the model was trained with."""
    df = df.set_index("timestamp")
    train = (df.index < split.train_end_ts) & df["observed"].to_numpy()

    def zscore(col: str, values: np.ndarray) -> dict[str, Any]:
        return fitted[col] if fitted is not None else fit_zscore(values, train)

    indicators = compute_indicators(df, cfg.indicators)
    raw = pd.concat([indicators,
                     cross_asset(df["close"], proxy.set_index("timestamp")["close"], cfg.cross_window)], axis=1)
    scalers = {c: ohlcv_scaler[c] for c in ("open", "high", "low")}
    scalers["log_volume"] = ohlcv_scaler["volume"]
    cov = {c: apply_scaler(df[c], scalers[c]) for c in ("open", "high", "low")}
    cov["log_volume"] = apply_scaler(df["volume"], scalers["log_volume"])
    # A filled bar's O/H/L and zero volume are not measurements: NaN lets uni2ts mask them
    # (its log-volume would otherwise sit tens of standard deviations below the mean).
    unobserved = ~df["observed"].to_numpy(dtype=bool)
    for col in BASE_COLUMNS:
        cov[col] = np.where(unobserved, np.nan, cov[col])
    values = raw.to_numpy(dtype=float)  # one block: column slices instead of pandas masks per column
    for j, col in enumerate(raw.columns):
        scalers[col] = zscore(col, values[:, j])
        cov[col] = apply_scaler(values[:, j], scalers[col])
    same_adx = any(spec["name"] == "adx" and indicator_kwargs(spec) == {"length": ADX_LENGTH}
                   for spec in cfg.indicators)
    adx = indicators[f"ADX_{ADX_LENGTH}"] if same_adx else None
    vol = realised_vol(df, cfg)
    threshold = (fitted[REGIME_COLUMNS[-1]][VOL_THRESHOLD] if fitted is not None
                 else fit_regime_threshold(vol, split, cfg))
    for col, series in regime(df, split, cfg, adx, threshold, vol).items():
        scalers[col] = {"mean": 0.0, "std": 1.0, "transform": "identity"}  # one-hot stays 0/1
        cov[col] = series.to_numpy()
    scalers[REGIME_COLUMNS[-1]] = scalers[REGIME_COLUMNS[-1]] | {VOL_THRESHOLD: threshold}
    stationary = stationary_columns(raw, df)
    for col, values in stationary.items():
        if col not in cov:
            scalers[col] = zscore(col, values)
            cov[col] = apply_scaler(values, scalers[col])
    sets = {"level": [c for c in cov if not c.endswith("_rel")],
            "log_return": ["log_volume", *stationary, *REGIME_COLUMNS]}
    out = pd.DataFrame({"timestamp": df.index, "observed": df["observed"].to_numpy(),
                        "close_raw": df["close"].to_numpy(),
                        "target": apply_scaler(df["close"], ohlcv_scaler["close"]),
                        "log_return": log_returns(df["close"].to_numpy(), ~unobserved, cfg.max_return_gap)})
    out = pd.concat([out, pd.DataFrame(cov)], axis=1)
    return out, scalers, sets


# --------------------------------------------------------------------------- stage


def check_proxies(assets: list[dict], cfg: FeaturesConfig, skipped: dict[str, str] | None = None) -> None:
    """Every asset class needs a proxy in market_proxy, and that proxy must be extracted (and
    not skipped by preprocess: `skipped` maps the symbols it left out to why)."""
    skipped = skipped or {}
    symbols = {a["symbol"] for a in assets}
    for cls in sorted({a["asset_class"] for a in assets}):
        if cls not in cfg.market_proxy:
            raise ParamsError(f"param features.market_proxy: no proxy for asset class {cls} "
                              f"(have {', '.join(cfg.market_proxy) or 'none'})")
        if cfg.market_proxy[cls] in skipped:
            raise DataError(f"market proxy {cfg.market_proxy[cls]} of asset class {cls} was skipped by preprocess "
                            f"({skipped[cfg.market_proxy[cls]]}); every {cls} asset needs it: fix its data, or "
                            f"set features.market_proxy.{cls} to another {cls} asset")
        if cfg.market_proxy[cls] not in symbols:
            raise DataError(f"market proxy {cfg.market_proxy[cls]} of asset class {cls} was not extracted "
                            f"(assets: {', '.join(sorted(symbols))})")
    calendars = {a["symbol"]: a.get("calendar") for a in assets}
    for asset in assets:  # cross-asset features join on timestamps: another calendar's bars would not line up,
        proxy = cfg.market_proxy[asset["asset_class"]]  # or (daily bars) join a close printed hours later
        if calendars[asset["symbol"]] != calendars[proxy]:
            raise DataError(f"asset {asset['symbol']} trades on {calendars[asset['symbol']]} but its market proxy "
                            f"{proxy} (features.market_proxy.{asset['asset_class']}) on {calendars[proxy]}: their "
                            f"bars do not line up; score assets of another calendar in a run of their own, or "
                            f"leave {asset['symbol']} out of market.symbol_calendars")


_PROXIES: dict[str, pd.DataFrame] = {}  # per process: each market proxy is read once


def _proxy(path: Path) -> pd.DataFrame:
    key = str(path)
    if key not in _PROXIES:
        _PROXIES[key] = pd.read_parquet(path, columns=["timestamp", "close"])
    return _PROXIES[key]


def features_one(asset: dict, in_dir: Path, out_dir: Path, split: SplitConfig, cfg: FeaturesConfig,
                 ohlcv_scaler: dict[str, dict], on_bad_asset: str,
                 fitted: dict[str, dict] | None = None) -> tuple[dict[str, list[str]], dict[str, dict], str] | str:
    """Features of one asset written to `out_dir`; returns (covariates per target, scalers, first
    complete row), or why the asset was left out (too short for a window, on_bad_asset: skip)."""
    sym = asset["symbol"]
    try:
        with about_asset(sym):
            df = pd.read_parquet(in_dir / f"{sym}.parquet")
            proxy = _proxy(in_dir / f"{cfg.market_proxy[asset['asset_class']]}.parquet")
            try:
                out, scalers, sets = asset_features(df, proxy, split, cfg, ohlcv_scaler, fitted)
            except DataError as e:  # too few bars for a window
                raise BadAsset(sym, f"{e}; extend its data, or set preprocess.on_bad_asset: skip") from e
            names = list(out.columns[5:])
            missing = np.isnan(out[names].to_numpy(dtype=float))
            empty = [c for c, gone in zip(names, missing.all(axis=0)) if gone]
            if empty:
                raise BadAsset(sym, _too_short(empty[0], df, proxy, cfg))
    except BadAsset as e:
        if on_bad_asset == "skip":
            return e.reason
        raise
    write_parquet(out, out_dir / f"{sym}.parquet")
    return sets, scalers, _first_complete(out["timestamp"], missing[:, [names.index(c) for c in sets["level"]]])


def _too_short(column: str, df: pd.DataFrame, proxy: pd.DataFrame, cfg: FeaturesConfig) -> str:
    """Why covariate `column` has no value at all: the asset is shorter than the window that
    computes it. Names the window's param, so the user knows what to change."""
    bars = f"the asset has {len(df)} bars"
    base = column.removesuffix("_rel")
    if base in CROSS_COLUMNS:
        overlap = int(df["timestamp"].isin(proxy["timestamp"]).sum())
        window = f"features.cross_window={cfg.cross_window} (bars shared with the market proxy: {overlap})"
    elif base in REGIME_COLUMNS:
        window = f"features.regime_window={cfg.regime_window} and ADX_{ADX_LENGTH}"
    else:
        specs = [spec for spec in cfg.indicators if base in _indicator_columns(spec)]
        window = f"features.indicators {specs[0]}" if specs else "its indicator window"
    return (f"covariate {column} is all NaN: {bars}, too few for {window}; lower that window, extend the asset's "
            "data, or set preprocess.on_bad_asset: skip")


def _indicator_columns(spec: dict) -> list[str]:
    """The output columns of one indicator spec, found by running it on a random walk."""
    try:
        return list(compute_indicators(random_walk_bars(500), [spec]).columns)
    except Exception:  # noqa: BLE001 - only used to name a window in an error message
        return []


def _features_task(item: tuple[dict, dict, dict | None],
                   **kw: Any) -> tuple[dict[str, list[str]], dict[str, dict], str] | str:
    asset, scaler, fitted = item
    return features_one(asset, ohlcv_scaler=scaler, fitted=fitted, **kw)


def features(in_dir: str | Path, split: SplitConfig, cfg: FeaturesConfig, out_dir: str | Path,
             on_bad_asset: str, fitted: dict[str, dict] | None = None) -> dict:
    """Write one normalised feature parquet per asset, manifest.json and scalers.json. An asset
    too short for a feature window stops the stage, or (`on_bad_asset: skip`) is left out and
    listed under `skipped_assets` in the manifest.

    Streams: each worker process holds one asset plus the (small) close series of the market
    proxies, read once per process; `cfg.workers` processes run side by side."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    preprocessed = json.loads((in_dir / "manifest.json").read_text())
    assets = preprocessed["assets"]
    ohlcv_scalers = json.loads((in_dir / "scalers.json").read_text())
    check_proxies(assets, cfg, preprocessed.get("skipped_assets"))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    workers = resolve_workers(cfg.workers, len(assets))
    logger.info("features: %d assets on %d process(es)", len(assets), workers)
    task = functools.partial(_features_task, in_dir=in_dir, out_dir=out_dir, split=split, cfg=cfg,
                             on_bad_asset=on_bad_asset)
    covariates: list[str] | None = None
    return_covariates: list[str] | None = None
    scalers, kept, skipped = {}, [], {}
    try:
        items = [(asset, ohlcv_scalers[asset["symbol"]], None if fitted is None else fitted[asset["symbol"]])
                 for asset in assets]
        results = map_assets(task, items, workers)
        for asset, (sets, scaler, first) in kept_assets(assets, results, "features", skipped):
            sym = asset["symbol"]
            kept.append(asset)
            covariates = _check_columns(sym, sets["level"], covariates)
            return_covariates = _check_columns(sym, sets["log_return"], return_covariates)
            scalers[sym] = scaler
            logger.info("%s: %d rows, %d covariates, first fully-defined row %s", sym, asset.get("rows_out", -1),
                        len(covariates), first)
    finally:
        _PROXIES.clear()
    require_kept(kept, skipped, in_dir)
    manifest = {"target": "close", "covariates": covariates, "return_covariates": return_covariates,
                "assets": kept} | ({"skipped_assets": skipped} if skipped else {})
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (out_dir / "scalers.json").write_text(json.dumps(scalers, indent=2))
    return manifest


def features_from_lake(lake: Path, selection: ExtractConfig, split: SplitConfig, preprocess_cfg: PreprocessConfig,
                       cfg: FeaturesConfig, work: Path, *, market: MarketConfig, strict: bool,
                       naive_timezone: str | None, fitted: dict[str, dict] | None = None,
                       until: pd.Timestamp | None = None) -> dict:
    """extract -> preprocess -> features of another lake, under `work` (extracted/,
    preprocessed/ with its scalers.json, features/): the same code as the stages, for build's
    synthetic corpus, evaluate's other-lake mode and the forecast command. Returns the
    features manifest.

    `fitted` ({"preprocess": scalers per symbol, "features": scalers per symbol}, a trained
    model's) replaces every statistic the stages fit on `split`'s training period; `until`
    drops the bars after that time before anything is computed (a forecast as of then)."""
    extract(lake, selection, work / "extracted", strict=strict, naive_timezone=naive_timezone, until=until)
    # Its assets need no validation or test bars: the synthetic corpus is train-only, and a
    # scored lake's test windows are checked by evaluate.
    preprocess(work / "extracted", split, preprocess_cfg, work / "preprocessed", market, periods=(),
               fitted=None if fitted is None else fitted["preprocess"])
    return features(work / "preprocessed", split, cfg, work / "features", preprocess_cfg.on_bad_asset,
                    fitted=None if fitted is None else fitted["features"])


def _check_columns(sym: str, names: list[str], expected: list[str] | None) -> list[str]:
    """Every asset has the first asset's covariates, in its order."""
    if expected is not None and names != expected:
        raise ValueError(f"asset {sym}: covariates {names} differ from the first asset's {expected}")
    return names


def _first_complete(timestamps: pd.Series, missing: np.ndarray) -> str:
    complete = ~missing.any(axis=1)
    return str(timestamps[complete].iloc[0]) if complete.any() else "none"


def random_walk_bars(n: int) -> pd.DataFrame:
    """n hourly bars of a seeded random walk, every bar observed: the features code is run on it
    to learn the columns a config produces, before (or without) any real data."""
    rng = np.random.default_rng(0)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    spread = close * 0.002
    return pd.DataFrame({"timestamp": pd.date_range("2000-01-01", periods=n, freq="h", tz="UTC"),
                         "open": close, "high": close + spread, "low": close - spread, "close": close,
                         "volume": rng.uniform(1.0, 2.0, n), "observed": True})


def covariate_sets(cfg: FeaturesConfig) -> dict[str, list[str]]:
    """The covariate columns the features stage will write for `cfg`, per target
    representation, found by running the real code on a synthetic random walk. The token
    budget check (model.max_seq_len) needs the variate count before the data stages ran."""
    n = 2000
    df = random_walk_bars(n)
    split = SplitConfig(train_end=str(df["timestamp"].iloc[n // 2]), val_end=str(df["timestamp"].iloc[-1]))
    identity = {"mean": 0.0, "std": 1.0, "transform": "identity"}
    _, _, sets = asset_features(df, df, split, cfg, {c: identity for c in ("open", "high", "low", "close", "volume")})
    return sets
