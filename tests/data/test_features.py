"""Features stage: indicator validation, causality, cross-asset features, regime, normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finmoirai.data.features import (
    asset_features,
    check_proxies,
    compute_indicators,
    cross_asset,
    features,
    regime,
)
from finmoirai.data.preprocessing import apply_scaler, fit_scaler
from finmoirai.errors import DataError
from finmoirai.params.base import ParamsError
from finmoirai.params.data import SplitConfig
from finmoirai.params.features import FeaturesConfig

INDICATORS = [
    {"name": "ema", "length": 10},
    {"name": "adx", "length": 14},
    {"name": "macd"},
    {"name": "rsi", "length": 14},
    {"name": "bbands", "length": 20},
    {"name": "atr", "length": 14},
    {"name": "obv"},
    {"name": "mfi", "length": 14},
]
RAW = {"indicators": INDICATORS, "market_proxy": {"crypto": "AAA"}, "cross_window": 24, "regime_window": 12,
       "regime_vol_quantile": 0.8, "regime_adx_threshold": 25.0, "workers": 1,
       "max_return_gap": None}
CFG = FeaturesConfig.parse(RAW, "features")
N = 400
SPLIT = SplitConfig(train_end="2018-01-09", val_end="2018-01-12")  # train = first 192 bars
CHANGE_AT = 300  # rows from here on are "the future" in causality tests


def frame(seed: int, n: int = N) -> pd.DataFrame:
    """A preprocessed-style asset: consistent random-walk OHLCV on an hourly grid."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2018-01-01", periods=n, freq="1h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = rng.uniform(0.001, 0.01, n)
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": np.maximum(open_, close) * (1 + spread),
                         "low": np.minimum(open_, close) * (1 - spread), "close": close,
                         "volume": rng.uniform(10, 100, n), "observed": np.ones(n, dtype=bool)})


def future_changed(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    cols = ["open", "high", "low", "close", "volume"]
    out.loc[CHANGE_AT:, cols] = out.loc[CHANGE_AT:, cols] * 3.0
    return out


# --------------------------------------------------------------------------- config


def test_config_accepts_defaults_and_rejects_unknown_indicator() -> None:
    assert [i["name"] for i in CFG.indicators][0] == "ema"
    bad = {**RAW, "indicators": [*INDICATORS, {"name": "not_an_indicator"}]}
    with pytest.raises(ParamsError, match=r"indicators\[8\].*not_an_indicator"):
        FeaturesConfig.parse(bad, "features")


@pytest.mark.parametrize("drop, category", [({"obv", "mfi"}, "volume"), ({"atr", "bbands"}, "volatility"),
                                            ({"adx"}, "trend"), ({"macd", "rsi"}, "momentum")])
def test_config_requires_each_category(drop: set[str], category: str) -> None:
    raw = {**RAW, "indicators": [i for i in INDICATORS if i["name"] not in drop]}
    with pytest.raises(ParamsError, match=f"category {category}"):
        FeaturesConfig.parse(raw, "features")


def test_config_rejects_non_causal_and_nameless_indicators() -> None:
    with pytest.raises(ParamsError, match="dpo.*future"):
        FeaturesConfig.parse({**RAW, "indicators": [*INDICATORS, {"name": "dpo"}]}, "features")
    with pytest.raises(ParamsError, match="future"):
        FeaturesConfig.parse({**RAW, "indicators": [*INDICATORS, {"name": "rsi", "offset": -2}]}, "features")
    with pytest.raises(ParamsError, match="needs a 'name'"):
        FeaturesConfig.parse({**RAW, "indicators": [*INDICATORS, {"length": 3}]}, "features")
    with pytest.raises(ParamsError, match="regime_vol_quantile"):
        FeaturesConfig.parse({**RAW, "regime_vol_quantile": 1.5}, "features")


# --------------------------------------------------------------------------- indicators


def test_indicators_keep_every_pandas_ta_column() -> None:
    ind = compute_indicators(frame(0).set_index("timestamp"), INDICATORS)
    for col in ("EMA_10", "ADX_14", "DMP_14", "DMN_14", "MACD_12_26_9", "MACDh_12_26_9", "MACDs_12_26_9",
                "RSI_14", "BBL_20_2.0_2.0", "BBU_20_2.0_2.0", "ATRr_14", "OBV", "MFI_14"):
        assert col in ind.columns
    assert ind["EMA_10"].iloc[:9].isna().all() and ind["EMA_10"].iloc[9:].notna().all()


def test_indicators_are_causal() -> None:
    df = frame(0).set_index("timestamp")
    before = compute_indicators(df, INDICATORS)
    after = compute_indicators(future_changed(df.reset_index()).set_index("timestamp"), INDICATORS)
    pd.testing.assert_frame_equal(before.iloc[:CHANGE_AT], after.iloc[:CHANGE_AT])
    assert not before.iloc[CHANGE_AT:].equals(after.iloc[CHANGE_AT:])


def test_asset_features_are_causal_end_to_end() -> None:
    df, proxy = frame(0), frame(1)
    scaler = fit_scaler(df, SPLIT, 10, "X")
    before, _, _ = asset_features(df, proxy, SPLIT, CFG, scaler)
    after, _, _ = asset_features(future_changed(df), future_changed(proxy), SPLIT, CFG, scaler)
    pd.testing.assert_frame_equal(before.iloc[:CHANGE_AT], after.iloc[:CHANGE_AT])
    assert not before.iloc[CHANGE_AT:].equals(after.iloc[CHANGE_AT:])


# --------------------------------------------------------------------------- cross-asset and regime


def test_correlation_with_itself_is_one() -> None:
    close = frame(0).set_index("timestamp")["close"]
    x = cross_asset(close, close, 24).iloc[30:]
    np.testing.assert_allclose(x["mkt_corr"], 1.0, atol=1e-9)
    np.testing.assert_allclose(x["mkt_beta"], 1.0, atol=1e-9)
    np.testing.assert_allclose(x["mkt_relstr"], 0.0, atol=1e-12)


def test_cross_asset_values_and_missing_proxy() -> None:
    a, p = frame(0).set_index("timestamp")["close"], frame(1).set_index("timestamp")["close"]
    x = cross_asset(a, p.drop(p.index[100]), 24)
    assert x.loc[a.index[100]].isna().all()
    ra, rp = np.log(a).diff(), np.log(p).diff()
    window = slice(200 - 23, 201)
    assert x["mkt_corr"].iloc[200] == pytest.approx(np.corrcoef(ra.iloc[window], rp.iloc[window])[0, 1])
    expected_rs = np.log(a.iloc[200] / a.iloc[176]) - np.log(p.iloc[200] / p.iloc[176])
    assert x["mkt_relstr"].iloc[200] == pytest.approx(expected_rs)


def test_regime_one_hot_sums_to_one_after_warm_up() -> None:
    df = frame(0).set_index("timestamp")
    r = regime(df, SPLIT, CFG)
    warm = r.isna().any(axis=1)
    assert warm.iloc[:12].all() and not warm.iloc[40:].any()
    assert r[~warm].sum(axis=1).eq(1.0).all()
    assert r.loc[warm].isna().all(axis=None)
    assert set(np.unique(r[~warm].to_numpy())) == {0.0, 1.0}
    assert r["regime_volatile"].sum() > 0 and r["regime_trending"].sum() + r["regime_ranging"].sum() > 0


# --------------------------------------------------------------------------- stage


def write_preprocessed(root: Path, frames: dict[str, pd.DataFrame], asset_class: str = "crypto") -> Path:
    root.mkdir()
    assets, scalers = [], {}
    for sym, df in frames.items():
        df.to_parquet(root / f"{sym}.parquet", index=False)
        scalers[sym] = fit_scaler(df, SPLIT, 10, sym)
        assets.append({"symbol": sym, "asset_class": asset_class, "frequency": "1h", "calendar": "24/7",
                       "rows": len(df), "rows_out": len(df)})
    (root / "manifest.json").write_text(json.dumps({"assets": assets}))
    (root / "scalers.json").write_text(json.dumps(scalers))
    return root


def test_features_stage_outputs(tmp_path: Path) -> None:
    src = write_preprocessed(tmp_path / "pre", {"AAA": frame(0), "BBB": frame(1)})
    manifest = features(src, SPLIT, CFG, tmp_path / "feat", "fail")
    cov = manifest["covariates"]
    assert cov[:5] == ["open", "high", "low", "log_volume", "EMA_10"]
    assert cov[-6:] == ["mkt_corr", "mkt_beta", "mkt_relstr", "regime_trending", "regime_ranging", "regime_volatile"]
    assert manifest["target"] == "close" and [a["asset_class"] for a in manifest["assets"]] == ["crypto"] * 2
    bbb = pd.read_parquet(tmp_path / "feat/BBB.parquet")
    extra = [c for c in manifest["return_covariates"] if c not in cov]
    assert list(bbb.columns) == ["timestamp", "observed", "close_raw", "target", "log_return", *cov, *extra]
    assert len(bbb) == N
    # the log_return target's covariates: no raw price level, volume sum or price difference
    assert manifest["return_covariates"][:4] == ["log_volume", "open_rel", "high_rel", "low_rel"]
    assert not {"open", "high", "low", "EMA_10", "OBV"} & set(manifest["return_covariates"])
    assert {"ADX_14", "RSI_14", "EMA_10_rel", "ATRr_14_rel"} <= set(manifest["return_covariates"])  # "AD" is not "ADX"
    raw = frame(1)
    np.testing.assert_allclose(bbb["close_raw"], raw["close"])
    scalers = json.loads((src / "scalers.json").read_text())["BBB"]
    np.testing.assert_allclose(bbb["target"], apply_scaler(raw["close"], scalers["close"]))
    train = bbb[bbb["timestamp"] < SPLIT.train_end_ts]
    for col in ("RSI_14", "ATRr_14", "mkt_corr", "log_volume"):
        assert train[col].mean() == pytest.approx(0.0, abs=1e-9)
        assert train[col].std(ddof=0) == pytest.approx(1.0, rel=1e-6)
    assert bbb["EMA_10"].iloc[:9].isna().all()  # warm-up NaNs are kept, rows are not dropped
    saved = json.loads((tmp_path / "feat/scalers.json").read_text())
    assert set(saved["BBB"]) == set(cov) | set(extra)


def test_features_stage_proxy_errors(tmp_path: Path) -> None:
    src = write_preprocessed(tmp_path / "pre", {"BBB": frame(1)})
    with pytest.raises(ValueError, match="AAA.*crypto.*not extracted"):
        features(src, SPLIT, CFG, tmp_path / "feat", "fail")
    no_class = FeaturesConfig(**{**RAW, "market_proxy": {"fx": "EURUSD"}})
    with pytest.raises(ParamsError, match="no proxy for asset class crypto"):
        features(src, SPLIT, no_class, tmp_path / "feat", "fail")


def test_features_stage_all_nan_covariate_is_an_error(tmp_path: Path) -> None:
    src = write_preprocessed(tmp_path / "pre", {"AAA": frame(0, n=250)})
    wide = FeaturesConfig(**{**RAW, "cross_window": 600})
    with pytest.raises(ValueError, match="asset AAA: covariate mkt_corr is all NaN: the asset has 250 bars, "
                                         "too few for features.cross_window=600"):
        features(src, SPLIT, wide, tmp_path / "feat", "fail")


def test_features_task_pickles_for_worker_processes(tmp_path: Path) -> None:
    import functools
    import pickle

    from finmoirai.data.features import _features_task

    src = write_preprocessed(tmp_path / "pre", {"AAA": frame(0), "BBB": frame(1)})
    (tmp_path / "feat").mkdir()
    task = functools.partial(_features_task, in_dir=src, out_dir=tmp_path / "feat", split=SPLIT, cfg=CFG,
                             on_bad_asset="fail")
    scalers = json.loads((src / "scalers.json").read_text())
    sets, _, _ = pickle.loads(pickle.dumps(task))(({"symbol": "BBB", "asset_class": "crypto"}, scalers["BBB"], None))
    inline = features(src, SPLIT, CFG, tmp_path / "inline", "fail")
    assert sets == {"level": inline["covariates"], "log_return": inline["return_covariates"]}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "feat/BBB.parquet"),
                                  pd.read_parquet(tmp_path / "inline/BBB.parquet"))


def test_regime_reuses_the_indicator_adx_without_changing_it() -> None:
    df = frame(0).set_index("timestamp")
    adx = compute_indicators(df, INDICATORS)["ADX_14"]
    pd.testing.assert_frame_equal(regime(df, SPLIT, CFG), regime(df, SPLIT, CFG, adx))


def test_a_proxy_on_another_calendar_is_refused() -> None:
    """Cross-asset features join the proxy on timestamps: a London stock against a New York
    proxy would line up no hourly bar, and on daily bars would see a close printed hours later."""
    cfg = FeaturesConfig.shipped("features").replace(market_proxy={"equity": "SPY"})
    assets = [{"symbol": "SPY", "asset_class": "equity", "calendar": "XNYS"},
              {"symbol": "VOD", "asset_class": "equity", "calendar": "XLON"}]
    with pytest.raises(DataError, match=r"asset VOD trades on XLON but its market proxy SPY "
                                        r"\(features.market_proxy.equity\) on XNYS: their bars do not line up"):
        check_proxies(assets, cfg)
    check_proxies([{**a, "calendar": "XNYS"} for a in assets], cfg)


def test_the_fitted_statistics_on_bars_up_to_t_give_the_full_runs_rows_up_to_t(tmp_path: Path) -> None:
    """What the forecast command relies on: features of the bars up to some t, with the
    statistics a full run fitted (the folder's), are that run's rows up to t, bit for bit
    (every feature is causal, the regime threshold and z-scores are applied, not refitted)."""
    frames = {"AAA": frame(0), "BBB": frame(1)}
    full_src = write_preprocessed(tmp_path / "pre", frames)
    features(full_src, SPLIT, CFG, tmp_path / "full", "fail")
    fitted = json.loads((tmp_path / "full" / "scalers.json").read_text())
    cut = N - 37
    cut_src = write_preprocessed(tmp_path / "cut", {sym: df.iloc[:cut] for sym, df in frames.items()})
    (cut_src / "scalers.json").write_text((full_src / "scalers.json").read_text())  # the folder's, as forecast does
    later = SplitConfig(train_end="2018-01-11", val_end="2018-01-12")  # a split that would fit other numbers
    features(cut_src, later, CFG, tmp_path / "prefix", "fail", fitted=fitted)
    assert json.loads((tmp_path / "prefix" / "scalers.json").read_text()) == fitted
    assert "vol_threshold" in fitted["AAA"]["regime_volatile"]
    for sym in frames:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "prefix" / f"{sym}.parquet"),
                                      pd.read_parquet(tmp_path / "full" / f"{sym}.parquet").iloc[:cut],
                                      check_exact=True)
