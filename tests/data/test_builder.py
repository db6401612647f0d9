
import numpy as np
import pandas as pd
import pytest

from finmoirai.data.builder import IterativeFinancialDatasetBuilder, split_bounds, window_plan
from finmoirai.data.targets import CALENDAR_COLUMNS, calendar_features
from finmoirai.params import SplitConfig, tokens_per_window
from tests.helpers import COVARIATES, RETURN_COVARIATES, write_feature_dir

SPLIT = SplitConfig("2018-10-01", "2018-10-15")


@pytest.fixture
def built(tmp_path):
    features = write_feature_dir(tmp_path / "features", {"AAA": 1500, "BBB": 1200, "CCC": 900})
    builder = IterativeFinancialDatasetBuilder(tmp_path / "datasets", batch_size=2)
    summary = builder.build_dataset(features, SPLIT)
    return builder.for_target("level"), summary["level"], features


def test_schema_and_shards(built):
    builder, summary, _ = built
    assert summary["shards"] == 2  # 3 assets in batches of 2
    train = builder.hf_dataset("train")
    assert sorted(train["item_id"]) == ["AAA", "BBB", "CCC"]
    row = train[0]
    assert set(row) == {"item_id", "start", "freq", "split_start", "target", "past_feat_dynamic_real",
                        "feat_dynamic_real"}
    assert row["freq"] == "h"
    assert len(row["past_feat_dynamic_real"]) == len(COVARIATES)
    assert len(row["past_feat_dynamic_real"][0]) == len(row["target"])
    assert len(row["feat_dynamic_real"]) == len(CALENDAR_COLUMNS)
    assert len(row["feat_dynamic_real"][0]) == len(row["target"])


def test_every_target_representation_is_built(tmp_path):
    """One dataset per target: the log_return one holds the percent log returns of close with
    their own covariates, both hold the calendar of every bar."""
    features = write_feature_dir(tmp_path / "features", {"AAA": 1500})
    root = IterativeFinancialDatasetBuilder(tmp_path / "datasets")
    summaries = root.build_dataset(features, SPLIT)
    assert summaries["level"]["covariates"] == COVARIATES
    assert summaries["log_return"]["covariates"] == RETURN_COVARIATES
    frame = pd.read_parquet(features / "AAA.parquet")
    row = root.for_target("log_return").hf_dataset("test")[0]
    observed = frame["observed"].to_numpy()
    expected = 100 * np.diff(np.log(frame["close_raw"].to_numpy()), prepend=np.nan)
    target = np.asarray(row["target"], dtype=float)
    assert np.array_equal(np.isnan(target[1:]), ~observed[1:])
    np.testing.assert_allclose(target[1:][observed[1:]], expected[1:][observed[1:]], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(row["past_feat_dynamic_real"][0]), frame["open_rel"], rtol=1e-6)
    calendar = calendar_features(frame["timestamp"], "crypto")
    np.testing.assert_allclose(np.asarray(row["feat_dynamic_real"], dtype=float)[:4], calendar[:, :4].T, atol=1e-6)
    with pytest.raises(ValueError, match="param target"):
        root.for_target("price")


def test_splits_have_no_future_bars(built):
    builder, _, features = built
    for name, end in (("train", SPLIT.train_end_ts), ("val", SPLIT.val_end_ts)):
        for row in builder.hf_dataset(name):
            frame = pd.read_parquet(features / f"{row['item_id']}.parquet")
            assert len(row["target"]) == int((frame["timestamp"] < end).sum())
    test = {r["item_id"]: r for r in builder.hf_dataset("test")}
    frame = pd.read_parquet(features / "AAA.parquet")
    assert test["AAA"]["split_start"] == int((frame["timestamp"] < SPLIT.val_end_ts).sum())


def test_unobserved_bars_become_nan_targets(built):
    builder, _, features = built
    row = next(r for r in builder.hf_dataset("test") if r["item_id"] == "AAA")
    frame = pd.read_parquet(features / "AAA.parquet")
    target = np.asarray(row["target"], dtype=float)
    assert np.array_equal(np.isnan(target), ~frame["observed"].to_numpy())
    observed = frame["observed"].to_numpy()
    np.testing.assert_allclose(target[observed], frame["target"].to_numpy()[observed], rtol=1e-6)


def test_no_temp_dir_left_and_stale_one_removed(tmp_path):
    features = write_feature_dir(tmp_path / "features", {"AAA": 1200})
    out = tmp_path / "datasets"
    (out / ".tmp" / "batch-00000-dead").mkdir(parents=True)  # left by a killed run
    IterativeFinancialDatasetBuilder(out).build_dataset(features, SPLIT)
    assert not (out / ".tmp").exists()


def test_temp_dir_removed_on_error(tmp_path):
    features = write_feature_dir(tmp_path / "features", {"AAA": 1200, "BBB": 1200})
    (features / "BBB.parquet").write_bytes(b"not a parquet file")
    out = tmp_path / "datasets"
    with pytest.raises(ValueError, match="BBB.parquet"):
        IterativeFinancialDatasetBuilder(out, batch_size=1).build_dataset(features, SPLIT)
    assert not (out / ".tmp").exists()


def test_missing_covariate_column_is_named(tmp_path):
    features = write_feature_dir(tmp_path / "features", {"AAA": 1200})
    frame = pd.read_parquet(features / "AAA.parquet").drop(columns=["rsi_14"])
    frame.to_parquet(features / "AAA.parquet")
    with pytest.raises(ValueError, match="rsi_14"):
        IterativeFinancialDatasetBuilder(tmp_path / "out").build_dataset(features, SPLIT)


def test_split_bounds_and_window_plan():
    ts = pd.Series(pd.date_range("2018-09-30 22:00", periods=10, freq="h", tz="UTC"))
    bounds = split_bounds(ts, SplitConfig("2018-10-01", "2018-10-01 05:00"))
    assert bounds == {"train": (0, 2), "val": (2, 7), "test": (7, 10)}
    assert window_plan(split_start=100, length=200, context_length=50, prediction_length=10, distance=10) == (100, 10)
    assert window_plan(split_start=0, length=200, context_length=50, prediction_length=10, distance=10) == (50, 15)
    assert window_plan(split_start=195, length=200, context_length=50, prediction_length=10, distance=10)[1] == 0
    assert tokens_per_window(168, 24, 32, 10) == (6 + 1) * 10


def test_test_period_never_reaches_training_or_validation_data(tmp_path):
    """Rewrite every test-period bar: the train and validation datasets must not change."""
    features = write_feature_dir(tmp_path / "features", {"AAA": 1500, "BBB": 1200})
    first = IterativeFinancialDatasetBuilder(tmp_path / "a")
    first.build_dataset(features, SPLIT)
    first = first.for_target("level")
    for path in features.glob("*.parquet"):
        frame = pd.read_parquet(path)
        future = frame["timestamp"] >= SPLIT.val_end_ts
        for col in ("target", "log_return", *COVARIATES, *RETURN_COVARIATES):
            frame.loc[future, col] = 1e6
        frame.to_parquet(path)
    second = IterativeFinancialDatasetBuilder(tmp_path / "b")
    second.build_dataset(features, SPLIT)
    second = second.for_target("level")
    for name in ("train", "val"):
        assert first.hf_dataset(name).to_pandas().equals(second.hf_dataset(name).to_pandas())
    changed = second.hf_dataset("test").to_pandas()
    assert not first.hf_dataset("test").to_pandas()["target"].apply(list).equals(changed["target"].apply(list))


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_temp_dir_removed_on_interrupt(tmp_path, monkeypatch, error):
    features = write_feature_dir(tmp_path / "features", {"AAA": 1200, "BBB": 1200, "CCC": 800})
    out = tmp_path / "datasets"
    calls = []
    real = IterativeFinancialDatasetBuilder._write_shard

    def interrupted(self, index, target, name, frames, bounds, covariates, tmp):
        calls.append(index)
        assert tmp.is_dir() and tmp.parent.name == ".tmp"  # the batch is being written through it
        if index == 1 and name == "val":  # Ctrl-C (or a crash) in the middle of the second batch
            (tmp / "cache").mkdir(exist_ok=True)
            (tmp / "cache" / "partial.arrow").write_bytes(b"half")
            raise error("stop")
        return real(self, index, target, name, frames, bounds, covariates, tmp)

    monkeypatch.setattr(IterativeFinancialDatasetBuilder, "_write_shard", interrupted)
    with pytest.raises(error):
        IterativeFinancialDatasetBuilder(out, batch_size=2).build_dataset(features, SPLIT)
    assert 1 in calls
    assert not (out / ".tmp").exists()
    assert list(out.glob("level/train/part-*"))  # the first batch was written before the interrupt
