"""Synthetic market: layout, determinism, calendars, stylised facts, planted defects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.stats

from finmoirai.data.calendars import BarCalendar
from finmoirai.data.lake import extract
from finmoirai.data.preprocessing import clean_asset
from finmoirai.data.synthetic import class_counts, market_proxy, write_synthetic_lake, years_covered
from finmoirai.params.base import ParamsError
from finmoirai.params.data import ExtractConfig, LakeConfig, SyntheticConfig
from tests.helpers import MARKET, preprocess_config, synthetic_config

CLEAN = {"gap_rate": 0.0, "bad_bar_rate": 0.0}
HOUR = pd.Timedelta(hours=1)
CLEAN_CFG = preprocess_config(max_fill_bars=6, outlier_window=48, outlier_threshold=10.0, min_train_rows=10)


def read_lake(root: Path) -> pd.DataFrame:
    return pl.read_parquet(f"{root}/**/*.parquet", hive_partitioning=True).to_pandas()


def log_returns(df: pd.DataFrame) -> pd.DataFrame:
    """Wide frame of hourly log returns, one column per symbol."""
    close = df.pivot_table(index="timestamp", columns="symbol", values="close")
    return np.log(close).diff()


@pytest.fixture(scope="module")
def clean_lake(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("syn") / "lake"
    cfg = synthetic_config(assets=10, years=1, seed=3, class_mix={"crypto": 0.6, "fx": 0.4}, **CLEAN)
    write_synthetic_lake(root, cfg, "1h", MARKET)
    return read_lake(root)


def test_layout_counts_and_proxies(tmp_path: Path) -> None:
    cfg = synthetic_config(assets=7, start="2018-12-20", years=1, seed=1)
    summary = write_synthetic_lake(tmp_path / "lake", cfg, "1h", MARKET)
    assert class_counts(cfg) == {"crypto": 4, "fx": 2, "equity": 1} == summary["classes"]
    assert market_proxy(cfg) == {"crypto": "CRY0000", "fx": "FXS0000", "equity": "EQT0000"}
    assert years_covered(cfg) == [2018, 2019] == summary["years"]
    f = tmp_path / "lake/asset_class=crypto/frequency=1h/symbol=CRY0003/year=2018/data.parquet"
    df = pl.read_parquet(f)
    assert df.columns == ["timestamp", "open", "high", "low", "close", "volume"]
    assert df.schema["timestamp"] == pl.Datetime("us", "UTC") and df.height == 12 * 24
    assert summary["rows"] == read_lake(tmp_path / "lake").shape[0]


def test_seeded_deterministic_and_independent_of_size(tmp_path: Path) -> None:
    a = read_lake(Path(write_synthetic_lake(tmp_path / "a", synthetic_config(assets=5, years=1, seed=7), "1h", MARKET)
                       and tmp_path / "a"))
    b = read_lake(Path(write_synthetic_lake(tmp_path / "b", synthetic_config(assets=5, years=1, seed=7), "1h", MARKET)
                       and tmp_path / "b"))
    pd.testing.assert_frame_equal(a, b)
    write_synthetic_lake(tmp_path / "c", synthetic_config(assets=5, years=1, seed=8), "1h", MARKET)
    assert not a["close"].equals(read_lake(tmp_path / "c")["close"])
    write_synthetic_lake(tmp_path / "big", synthetic_config(assets=12, years=1, seed=7), "1h", MARKET)
    big = read_lake(tmp_path / "big")
    one = lambda d: d[d["symbol"] == "CRY0001"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(one(a), one(big))


def test_calendars(clean_lake: pd.DataFrame, tmp_path: Path) -> None:
    fx = clean_lake[clean_lake["symbol"] == "FXS0001"]["timestamp"].dt.tz_convert("America/New_York")
    assert not (fx.dt.dayofweek == 5).any()
    assert not ((fx.dt.dayofweek == 6) & (fx.dt.hour < 17)).any()
    cfg = synthetic_config(assets=3, years=1, seed=0, class_mix={"equity": 1.0}, **CLEAN)
    write_synthetic_lake(tmp_path / "eq", cfg, "1h", MARKET)
    eq = read_lake(tmp_path / "eq")["timestamp"].dt.tz_convert("America/New_York")
    assert set(eq.dt.strftime("%H:%M")) == {f"{h:02d}:30" for h in range(9, 16)}
    assert eq.dt.dayofweek.max() == 4
    days = set(eq.dt.strftime("%m-%d"))  # New York's holidays are not traded, its half-days end at 13:00
    assert "07-04" not in days and "12-25" not in days and "07-03" in days
    assert eq[eq.dt.strftime("%m-%d") == "07-03"].dt.hour.max() == 12


def test_ohlc_consistent_when_clean(clean_lake: pd.DataFrame) -> None:
    df = clean_lake
    assert (df["high"] >= df[["open", "close", "low"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close", "high"]].min(axis=1)).all()
    assert (df["low"] > 0).all() and (df["volume"] > 0).all()
    out, q = clean_asset(df[df["symbol"] == "CRY0002"].drop(columns=["symbol", "asset_class", "frequency", "year"]),
                         BarCalendar("24/7", HOUR), CLEAN_CFG)
    assert q["gaps_filled"] == q["inconsistent_high_low"] == q["duplicate_timestamps"] == 0


def test_fat_tails_and_volatility_clustering(clean_lake: pd.DataFrame) -> None:
    rets = log_returns(clean_lake[clean_lake["asset_class"] == "crypto"])
    for sym, r in rets.items():
        r = r.dropna().to_numpy()
        assert scipy.stats.kurtosis(r) > 3.0, sym  # excess kurtosis; Gaussian is 0
        assert abs(np.corrcoef(r[:-1], r[1:])[0, 1]) < 0.1, sym  # no momentum to speak of
    hour_mean = rets.abs().groupby(rets.index.hour).transform("mean")
    for sym, a in (rets.abs() / hour_mean).items():  # |r| without the intraday profile
        a = a.dropna().to_numpy()
        acf_abs = [np.corrcoef(a[:-lag], a[lag:])[0, 1] for lag in (1, 5, 24)]
        assert min(acf_abs) > 0.1, (sym, acf_abs)  # volatility clusters, returns barely autocorrelate


def test_volume_follows_absolute_returns(clean_lake: pd.DataFrame) -> None:
    for sym, g in clean_lake.groupby("symbol"):
        g = g.sort_values("timestamp")
        r = np.abs(np.log(g["close"]).diff()).to_numpy()[1:]
        v = np.log(g["volume"]).to_numpy()[1:]
        assert np.corrcoef(r, v)[0, 1] > 0.2, sym


def test_intraday_seasonality(clean_lake: pd.DataFrame) -> None:
    crypto = clean_lake[clean_lake["asset_class"] == "crypto"]
    rets = log_returns(crypto).abs()
    by_hour = rets.groupby(rets.index.hour).mean().mean(axis=1)
    assert by_hour.loc[13:17].mean() > 1.5 * by_hour.loc[0:5].mean()


def test_cross_asset_correlation_through_class_factors(clean_lake: pd.DataFrame) -> None:
    corr = log_returns(clean_lake).dropna().corr()
    crypto = [s for s in corr if s.startswith("CRY")]
    fx = [s for s in corr if s.startswith("FXS")]
    within = [corr.loc[a, b] for i, a in enumerate(crypto) for b in crypto[i + 1:]]
    across = [corr.loc[a, b] for a in crypto for b in fx]
    assert min(within) > 0.2, within
    assert max(abs(x) for x in across) < 0.1, across


def test_planted_defects_are_found_by_preprocess(tmp_path: Path) -> None:
    cfg = synthetic_config(assets=4, years=1, seed=2, class_mix={"crypto": 1.0}, gap_rate=0.01, bad_bar_rate=0.001)
    summary = write_synthetic_lake(tmp_path / "lake", cfg, "1h", MARKET)
    planted = summary["planted"]
    assert all(planted[k] > 0 for k in planted), planted
    ecfg = ExtractConfig(asset_classes=["crypto"], frequency="1h", years=years_covered(cfg), symbols=[])
    manifest = extract(tmp_path / "lake", ecfg, tmp_path / "ext", strict=True, naive_timezone=None)
    total: dict[str, int] = {}
    for asset in manifest:
        raw = pd.read_parquet(tmp_path / "ext" / f"{asset['symbol']}.parquet")
        _, q = clean_asset(raw, BarCalendar("24/7", HOUR), CLEAN_CFG)
        for k, v in q.items():
            total[k] = total.get(k, 0) + v
    assert total["duplicate_timestamps"] == planted["duplicate_timestamp"]
    assert total["unsorted"] == planted["unsorted"]
    assert total["non_positive_price"] == planted["non_positive_price"]
    assert total["zero_volume"] == planted["zero_volume"]
    assert total["high_below_low"] == planted["high_below_low"]
    assert total["outliers"] >= planted["spike"]
    assert total["gaps_filled"] == planted["gaps"] + planted["non_positive_price"]


def test_config_validation_and_lake_source() -> None:
    with pytest.raises(ParamsError, match="class_mix.*bonds"):
        LakeConfig.shipped("lake", synthetic={**_shipped_synthetic(), "class_mix": {"bonds": 1.0}})
    with pytest.raises(ParamsError, match="lake.source"):
        LakeConfig.shipped("lake", source="csv")
    with pytest.raises(ParamsError, match="lake.synthetic: unknown key"):
        LakeConfig.shipped("lake", synthetic={**_shipped_synthetic(), "n": 3})
    with pytest.raises(ParamsError, match="lake.synthetic.start is missing"):
        LakeConfig.parse({"path": "data/lake", "source": "synthetic", "synthetic": {"assets": 3},
                                   "strict": True, "naive_timezone": None}, "lake")
    lake = LakeConfig.shipped("lake", source="synthetic", synthetic={**_shipped_synthetic(), "assets": 3})
    assert isinstance(lake.synthetic, SyntheticConfig) and lake.synthetic.assets == 3


def _shipped_synthetic() -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())["lake"]["synthetic"]


def test_lake_stage_writes_a_synthetic_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from stages import lake as lake_stage

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    params["lake"].update(source="synthetic")
    params["lake"]["synthetic"].update(assets=3, start="2018-01-01", years=1, seed=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    lake_stage.main(["data/lake"])
    found = sorted(p.parent.name for p in (tmp_path / "data/lake").glob("*/*/*/year=2018"))
    assert found == ["symbol=CRY0000", "symbol=EQT0000", "symbol=FXS0000"]  # every class gets its proxy


def test_build_adds_synthetic_assets_to_the_train_split_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from finmoirai.data.builder import IterativeFinancialDatasetBuilder
    from finmoirai.data.features import features
    from finmoirai.data.preprocessing import preprocess
    from finmoirai.params import Params
    from finmoirai.params.base import load_yaml
    from stages import build as build_stage

    params = load_yaml(Path(__file__).resolve().parents[2] / "params.yaml")
    params["split"] = {"train_end": "2018-03-01", "val_end": "2018-03-15"}
    params["features"]["market_proxy"] = {"crypto": "CRY0000"}
    params["extract"]["asset_classes"] = ["crypto"]
    params["build"].update(synthetic_assets=3, synthetic_years=1, batch_size=2)
    split = Params.parse(params).split
    real = synthetic_config(assets=2, start="2018-01-01", years=1, seed=9, class_mix={"crypto": 1.0})
    write_synthetic_lake(tmp_path / "real", real, "1h", MARKET)
    extract(tmp_path / "real", ExtractConfig(asset_classes=["crypto"], frequency="1h", years=[2018], symbols=[]),
            tmp_path / "ext", strict=True,
            naive_timezone=None)
    preprocess(tmp_path / "ext", split, preprocess_config(max_fill_bars=6, outlier_window=48, outlier_threshold=10.0,
                                                          min_train_rows=500), tmp_path / "pre", MARKET)
    features(tmp_path / "pre", split, Params.parse(params).features, tmp_path / "data/features",
             "fail")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    build_stage.main(["data/features", "data/datasets"])
    built = IterativeFinancialDatasetBuilder(tmp_path / "data/datasets").for_target("log_return")
    train = sorted(built.hf_dataset("train")["item_id"])
    assert train == ["CRY0000", "CRY0001", "syn_CRY0000", "syn_EQT0000", "syn_FXS0000"]
    for name in ("val", "test"):
        assert sorted(built.hf_dataset(name)["item_id"]) == ["CRY0000", "CRY0001"]
    syn = {a["symbol"]: a for a in built.manifest()["assets"] if a["symbol"].startswith("syn_")}
    assert all(a["val_rows"] == a["test_rows"] == 0 and a["train_rows"] > 0 for a in syn.values())
    assert not (tmp_path / "data/.datasets-synthetic").exists()
