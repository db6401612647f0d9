
import numpy as np
import pandas as pd
import pytest
import torch

from finmoirai.data.builder import IterativeFinancialDatasetBuilder, split_bounds, window_plan
from finmoirai.data.calendars import BarCalendar
from finmoirai.data.targets import CALENDAR_COLUMNS, calendar_features
from finmoirai.errors import DataError
from finmoirai.params.data import SplitConfig
from finmoirai.params.training import tokens_per_window
from tests.helpers import COVARIATES, RETURN_COVARIATES, write_feature_dir

SPLIT = SplitConfig(train_end="2018-10-01", val_end="2018-10-15")


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
    calendar = calendar_features(frame["timestamp"], BarCalendar("24/7", pd.Timedelta(hours=1)))
    assert row["freq"] == "h"
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
    bounds = split_bounds(ts, SplitConfig(train_end="2018-10-01", val_end="2018-10-01 05:00"))
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


@pytest.fixture
def with_corpus(tmp_path):
    """Two real assets and, merged in by the build stage's own code, a train-only synthetic corpus
    of two assets (named syn_*)."""
    from finmoirai.data.corpus import merge_features

    real = write_feature_dir(tmp_path / "real", {"AAA": 1500, "BBB": 1200})
    corpus = write_feature_dir(tmp_path / "corpus", {"AAA": 700, "CCC": 300}, start="2018-08-01", seed=5)
    builder = IterativeFinancialDatasetBuilder(tmp_path / "datasets", batch_size=2)
    builder.build_dataset(merge_features(real, corpus, tmp_path / "merged"), SPLIT)
    return builder.for_target("log_return")


IDENTITY = {"train": lambda: (lambda entry: entry)}  # keeps item_id, to see which series was drawn


def drawn_items(dataset, draws: int, seed: int = 0) -> list[str]:
    """Items drawn the way pre-training's loader draws them: a shuffled index, then uni2ts's own draw."""
    np.random.seed(seed)
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=draws, generator=torch.Generator().manual_seed(seed))
    return [str(dataset[i]["item_id"]) for i in sampler]


def test_synthetic_corpus_is_flagged_in_the_manifest(with_corpus):
    assert with_corpus.synthetic_items() == {"syn_AAA", "syn_CCC"}
    flags = {a["symbol"]: a.get("synthetic", False) for a in with_corpus.manifest()["assets"]}
    assert flags == {"AAA": False, "BBB": False, "syn_AAA": True, "syn_CCC": True}


@pytest.mark.parametrize("share", [0.0, 0.25, 0.6, 1.0])
def test_synthetic_share_is_the_share_of_pretraining_draws(with_corpus, share):
    """pretrain.synthetic_share sets the probability that a draw is synthetic, whatever the
    corpus's size; within each part uni2ts still draws in proportion to length."""
    items = drawn_items(with_corpus.load_dataset(IDENTITY, synthetic_share=share), 1500)
    synthetic = [i for i in items if i.startswith("syn_")]
    assert len(synthetic) / len(items) == pytest.approx(share, abs=0.04)
    if 0 < share < 1:  # syn_AAA is 700 bars, syn_CCC 300: drawn 70 : 30
        assert synthetic.count("syn_AAA") / len(synthetic) == pytest.approx(0.7, abs=0.06)


def test_without_a_share_the_corpus_joins_the_length_weighted_pool(with_corpus):
    items = drawn_items(with_corpus.load_dataset(IDENTITY), 1500)
    train_rows = {a["symbol"]: a["train_rows"] for a in with_corpus.manifest()["assets"]}
    expected = (train_rows["syn_AAA"] + train_rows["syn_CCC"]) / sum(train_rows.values())  # 1000 / 1682
    assert sum(i.startswith("syn_") for i in items) / len(items) == pytest.approx(expected, abs=0.04)


def test_fine_tuning_windows_are_real_only(with_corpus, tmp_path):
    plain = IterativeFinancialDatasetBuilder(tmp_path / "plain", batch_size=2)
    plain.build_dataset(tmp_path / "real", SPLIT)
    transform = {"train": lambda **kwargs: (lambda entry: entry)}
    windows = [b.load_window_dataset("train", transform, context_length=64, prediction_length=16, patch_size=16,
                                     distance=16) for b in (with_corpus, plain.for_target("log_return"))]
    assert len(windows[0]) == len(windows[1])
    assert {str(w["item_id"]) for w in windows[0]} == {"AAA", "BBB"}


def test_synthetic_share_without_a_corpus_is_named(built):
    builder, _, _ = built
    with pytest.raises(DataError, match=r"pretrain.synthetic_share: 0.3 .* no synthetic assets"):
        builder.load_dataset(IDENTITY, synthetic_share=0.3)
    assert len(builder.load_dataset(IDENTITY, synthetic_share=0.0)) == 3


def test_pretrain_symbols_hold_the_other_real_assets_out_and_keep_the_corpus(with_corpus):
    """pretrain.symbols (the scaling study's data axis): only the named real assets and the
    synthetic corpus are drawn; a name the build does not have is one line listing those it has."""
    items = set(drawn_items(with_corpus.load_dataset(IDENTITY, symbols=["BBB"]), 400))
    assert items == {"BBB", "syn_AAA", "syn_CCC"}
    assert set(drawn_items(with_corpus.load_dataset(IDENTITY, synthetic_share=0.0, symbols=["AAA"]), 200)) == {"AAA"}
    assert set(drawn_items(with_corpus.load_dataset(IDENTITY, symbols=[]), 400)) >= {"AAA", "BBB"}
    with pytest.raises(DataError, match=r"pretrain.symbols: ZZZ not among the built assets \(AAA, BBB\)"):
        with_corpus.load_dataset(IDENTITY, symbols=["AAA", "ZZZ"])
