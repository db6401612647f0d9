"""Turn per-asset feature files into uni2ts-ready Hugging Face datasets, a batch at a time.

`IterativeFinancialDatasetBuilder` is a uni2ts `DatasetBuilder`. `build_dataset` never holds
more than `batch_size` assets in memory: each batch becomes one Arrow table per split (built
column by column from the NumPy arrays, no per-value Python conversion), is saved into a
private temporary directory and only then moved to its final `part-*` place, so an
interrupted run never leaves a half-written shard behind; the temporary directory is removed
whatever happens (exception, KeyboardInterrupt), and a stale one from a killed run is removed
by the next run. `load_dataset` hands uni2ts the datasets with
its own transformation maps, so pre-training and fine-tuning see exactly uni2ts's pipeline.

One dataset per target representation (finmoirai.data.targets), `data/datasets/<target>/`, so the
`target` knob is a model choice that never reruns this stage. Schema (uni2ts's): item_id,
start, freq, target = `close` as z-scored level or percent log return (NaN where the bar was
not observed so uni2ts masks it), past_feat_dynamic_real = that representation's covariates,
shape (k, T), feat_dynamic_real = the known-future calendar covariates, shape (5, T), which
the model stages use only with `calendar: true`.
Each split stores the history up to its end and `split_start`, the first index whose bar
belongs to the split: forecast windows start there, contexts may reach back into earlier
splits (that is the past, not leakage), and no split contains a bar from a later split.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from pandas.tseries.frequencies import to_offset
from torch.utils.data import ConcatDataset, Dataset
from tqdm import tqdm
from uni2ts.data.builder import DatasetBuilder
from uni2ts.data.dataset import EvalDataset, FinetuneDataset, SampleTimeSeriesType, TimeSeriesDataset
from uni2ts.data.indexer import HuggingFaceDatasetIndexer

from finmoirai.data.calendars import BarCalendar, manifest_calendar
from finmoirai.data.targets import CALENDAR_COLUMNS, TARGET_COLUMNS, calendar_features
from finmoirai.errors import DataError
from finmoirai.params.base import require
from finmoirai.params.data import SplitConfig
from finmoirai.params.training import TARGETS, check_target

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
TMP_DIR_NAME = ".tmp"
MIXTURE_DRAWS = 10_000  # size of a real + synthetic pre-training mix: its share is exact to 1 / MIXTURE_DRAWS


def hf_features(num_covariates: int) -> datasets.Features:
    def matrix(rows: int) -> datasets.Sequence:
        return datasets.Sequence(datasets.Sequence(datasets.Value("float32")), length=rows)

    return datasets.Features(
        {
            "item_id": datasets.Value("string"),
            "start": datasets.Value("timestamp[s]"),
            "freq": datasets.Value("string"),
            "split_start": datasets.Value("int64"),
            "target": datasets.Sequence(datasets.Value("float32")),
            "past_feat_dynamic_real": matrix(num_covariates),
            "feat_dynamic_real": matrix(len(CALENDAR_COLUMNS)),
        }
    )


def split_bounds(timestamps: pd.Series, split: SplitConfig) -> dict[str, tuple[int, int]]:
    """(split_start, end) row indices per split: train [0, a), val [a, b), test [b, n)."""
    ts = pd.DatetimeIndex(timestamps)
    a = int(ts.searchsorted(split.train_end_ts))
    b = int(ts.searchsorted(split.val_end_ts))
    return {"train": (0, a), "val": (a, b), "test": (b, len(ts))}


@dataclass(frozen=True)
class AssetArrays:
    """One asset's model inputs, converted to float32 once and then sliced for each split."""

    symbol: str
    start: datetime.datetime  # first bar, naive UTC
    timestamps: pd.Series
    target: np.ndarray  # (T,), NaN where the bar was not observed
    covariates: np.ndarray  # (k, T)
    calendar: np.ndarray  # (5, T), known-future
    freq: str  # the bar period as a pandas frequency string (h, 5min, D)


def asset_arrays(table: pa.Table, symbol: str, covariates: Sequence[str], bars: BarCalendar,
                 target_column: str = "target") -> AssetArrays:
    target = table[target_column].to_numpy().astype(np.float32)
    target[~table["observed"].to_numpy()] = np.nan
    covs = np.empty((len(covariates), table.num_rows), dtype=np.float32)
    for row, name in enumerate(covariates):
        covs[row] = table[name].to_numpy()
    timestamps = table["timestamp"].to_pandas()
    first = pd.Timestamp(timestamps.iloc[0]).tz_convert("UTC").tz_localize(None)
    calendar = calendar_features(timestamps, bars).T.astype(np.float32)
    return AssetArrays(symbol, first.to_pydatetime(), timestamps, target, covs, calendar, pandas_freq(bars.period))


def pandas_freq(period: pd.Timedelta) -> str:
    """The bar period as uni2ts's `freq` column: a pandas frequency string (h, 5min, 4h, D)."""
    return to_offset(period).freqstr


def asset_record(asset: AssetArrays, start: int, end: int) -> dict[str, Any]:
    """One uni2ts row: the asset's history up to `end`, forecasts allowed from `start`."""
    return {
        "item_id": asset.symbol,
        "start": asset.start,
        "freq": asset.freq,
        "split_start": start,
        "target": asset.target[:end],
        "past_feat_dynamic_real": asset.covariates[:, :end],
        "feat_dynamic_real": asset.calendar[:, :end],
    }


def records_table(records: Sequence[dict[str, Any]], features: datasets.Features) -> pa.Table:
    """Arrow table of uni2ts rows in `features`' schema, built from the arrays' buffers.

    Same values as `Dataset.from_generator` (NaN stays NaN, float32), without converting every
    value through Python and without hashing the batch to fingerprint it."""
    lengths = np.array([len(r["target"]) for r in records], dtype=np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    target = pa.ListArray.from_arrays(
        offsets, pa.array(np.concatenate([r["target"] for r in records]).astype(np.float32, copy=False)))

    def matrix(field: str) -> pa.FixedSizeListArray:
        k = features[field].length
        inner_offsets = pa.array(np.concatenate([[0], np.cumsum(np.repeat(lengths, k))]).astype(np.int32))
        values = np.concatenate([np.ascontiguousarray(r[field], dtype=np.float32).ravel() for r in records])
        return pa.FixedSizeListArray.from_arrays(pa.ListArray.from_arrays(inner_offsets, pa.array(values)), k)

    columns = {
        "item_id": pa.array([r["item_id"] for r in records], pa.string()),
        "start": pa.array([r["start"] for r in records], pa.timestamp("s")),
        "freq": pa.array([r["freq"] for r in records], pa.string()),
        "split_start": pa.array([r["split_start"] for r in records], pa.int64()),
        "target": target,
        "past_feat_dynamic_real": matrix("past_feat_dynamic_real"),
        "feat_dynamic_real": matrix("feat_dynamic_real"),
    }
    return pa.Table.from_pydict(columns, schema=features.arrow_schema)


def table_fingerprint(table: pa.Table) -> str:
    """Deterministic dataset fingerprint from the table's content (datasets would draw a random
    one). xxh3: a non-cryptographic hash is enough for a cache key, and ~10x faster than blake2."""
    h = xxhash.xxh3_64()
    for column in table.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(buf)
    return h.hexdigest()


def read_feature_table(path: Path, covariates: Sequence[str]) -> pa.Table:
    """One asset's feature file as an Arrow table, checked and in time order. Arrow, not
    pandas: the columns go straight to NumPy, without building a DataFrame first."""
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: cannot read feature file ({e.__class__.__name__}: {e})") from None
    missing = [c for c in ("timestamp", "observed", "target", *covariates) if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    ts = table["timestamp"].to_numpy()
    if len(ts) > 1 and (ts[1:] < ts[:-1]).any():  # features writes them sorted; anything else is sorted here
        table = table.sort_by("timestamp")
    return table


@dataclass
class IterativeFinancialDatasetBuilder(DatasetBuilder):
    """uni2ts DatasetBuilder over a directory of per-asset feature files, in asset batches."""

    storage_path: Path
    batch_size: int = 10

    def __post_init__(self) -> None:
        self.storage_path = Path(self.storage_path)

    # ------------------------------------------------------------------ build
    def build_dataset(self, features_dir: Path, split: SplitConfig) -> dict[str, Any]:
        """Write `<storage>/<target>/{train,val,test}/part-*` and a manifest per target representation."""
        features_dir = Path(features_dir)
        manifest = json.loads((features_dir / "manifest.json").read_text())
        covariates = {target: list(manifest[key]) for target, (_, key) in TARGET_COLUMNS.items()}
        classes = {a["symbol"]: manifest_calendar(a) for a in manifest["assets"]}
        synthetic = {a["symbol"] for a in manifest["assets"] if a.get("synthetic")}
        symbols = list(classes)
        require(len(symbols) > 0, f"{features_dir}/manifest.json lists no assets")
        self._reset_output()
        assets: list[dict[str, Any]] = []
        batches = [symbols[i : i + self.batch_size] for i in range(0, len(symbols), self.batch_size)]
        for index, batch in enumerate(tqdm(batches, desc="build batches", unit="batch")):
            assets.extend(self._build_batch(index, batch, features_dir, covariates, classes, split))
        assets = [a | {"synthetic": True} if a["symbol"] in synthetic else a for a in assets]
        split.require_bars(assets, SPLITS[1:])  # val and test; preprocess checked them first
        summaries = {}
        for target in TARGETS:
            summaries[target] = {
                "target": manifest.get("target", "close"),
                "representation": target,
                "covariates": covariates[target],
                "calendar": list(CALENDAR_COLUMNS),
                "freq": pandas_freq(classes[symbols[0]].period),
                "split": {"train_end": split.train_end, "val_end": split.val_end},
                "shards": len(batches),
                "assets": assets,
            }
            (self.storage_path / target / "manifest.json").write_text(json.dumps(summaries[target], indent=2))
        return summaries

    def _reset_output(self) -> None:
        """Start from an empty output; a stale temp dir from a killed run goes too."""
        if self.storage_path.exists():
            shutil.rmtree(self.storage_path)
        for target in TARGETS:
            (self.storage_path / target).mkdir(parents=True)

    def _build_batch(
        self, index: int, batch: list[str], features_dir: Path, covariates: dict[str, list[str]],
        classes: dict[str, BarCalendar], split: SplitConfig,
    ) -> list[dict[str, Any]]:
        tmp = self.storage_path / TMP_DIR_NAME / f"batch-{index:05d}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            columns = list(dict.fromkeys(["log_return", *covariates["level"], *covariates["log_return"]]))
            tables = {s: read_feature_table(features_dir / f"{s}.parquet", columns) for s in batch}
            bounds = {s: split_bounds(t["timestamp"].to_pandas(), split) for s, t in tables.items()}
            for target, (column, _) in TARGET_COLUMNS.items():
                arrays = {s: asset_arrays(t, s, covariates[target], classes[s], column) for s, t in tables.items()}
                for name in SPLITS:
                    self._write_shard(index, target, name, arrays, bounds, len(covariates[target]), tmp)
            return [
                {"symbol": s, "rows": tables[s].num_rows}
                | {f"{name}_rows": bounds[s][name][1] - bounds[s][name][0] for name in SPLITS}
                | {f"{name}_start": bounds[s][name][0] for name in SPLITS}
                for s in batch
            ]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            parent = tmp.parent
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()

    def _write_shard(
        self,
        index: int,
        target: str,
        name: str,
        arrays: dict[str, AssetArrays],
        bounds: dict[str, dict[str, tuple[int, int]]],
        num_covariates: int,
        tmp: Path,
    ) -> None:
        records = [
            asset_record(asset, *bounds[symbol][name])
            for symbol, asset in arrays.items()
            if bounds[symbol][name][1] > bounds[symbol][name][0]
        ]
        if not records:
            return
        features = hf_features(num_covariates)
        table = records_table(records, features)
        dataset = datasets.Dataset(
            datasets.table.InMemoryTable(table), info=datasets.DatasetInfo(features=features),
            split=datasets.NamedSplit(name), fingerprint=table_fingerprint(table),
        )
        staged = tmp / f"{target}-{name}-part-{index:05d}"
        dataset.save_to_disk(str(staged))
        final = self.storage_path / target / name / f"part-{index:05d}"
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)  # same file system: the shard appears complete or not at all

    # ------------------------------------------------------------------- load
    def for_target(self, target: str) -> IterativeFinancialDatasetBuilder:
        """The builder that loads the datasets of one target representation."""
        check_target(target)
        return IterativeFinancialDatasetBuilder(self.storage_path / target, batch_size=self.batch_size)

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.storage_path / "manifest.json").read_text())

    def hf_dataset(self, split: str) -> datasets.Dataset:
        parts = sorted((self.storage_path / split).glob("part-*"))
        if not parts:
            raise ValueError(f"{self.storage_path / split}: no dataset shards (run the build stage)")
        return datasets.concatenate_datasets([datasets.load_from_disk(str(p)) for p in parts])

    def synthetic_items(self) -> set[str]:
        """The item ids of the synthetic pre-training corpus (build.synthetic_assets)."""
        return {a["symbol"] for a in self.manifest()["assets"] if a.get("synthetic")}

    def load_dataset(self, transform_map: dict[Any, Callable[..., Any]],
                     synthetic_share: float | None = None, symbols: Sequence[str] = ()) -> Dataset:
        """Pre-training view: whole training histories, each drawn in proportion to its length.

        `synthetic_share` None: real and synthetic assets form one pool. A number: each draw
        comes from the synthetic corpus with that probability and from the real assets
        otherwise (still in proportion to length within each), through uni2ts's
        `dataset_weight` on two datasets, so the mix is a sampling weight, not a count of assets.
        0 trains exactly as if no corpus had been built. `symbols` (pretrain.symbols): the real
        assets pre-trained on, the others held out (the synthetic corpus is kept); empty: all."""
        train = self.pretraining_assets(self.hf_dataset("train"), symbols)
        if synthetic_share is None:
            return self._length_weighted(train, transform_map)
        synthetic = self.synthetic_items()
        if synthetic_share > 0 and not synthetic:
            raise DataError(f"param pretrain.synthetic_share: {synthetic_share} but {self.storage_path} has no "
                            f"synthetic assets; set build.synthetic_assets > 0, or synthetic_share: null")
        is_synthetic = [item in synthetic for item in train["item_id"]]
        real = train.select([i for i, s in enumerate(is_synthetic) if not s], keep_in_memory=True)
        corpus = train.select([i for i, s in enumerate(is_synthetic) if s], keep_in_memory=True)
        if synthetic_share == 0 or synthetic_share == 1:
            return self._length_weighted(corpus if synthetic_share == 1 else real, transform_map)
        synthetic_draws = round(MIXTURE_DRAWS * synthetic_share)
        logger.info("pre-training draws: %.4f synthetic (%d synthetic, %d real assets)",
                    synthetic_draws / MIXTURE_DRAWS, len(corpus), len(real))
        return ConcatDataset([self._length_weighted(real, transform_map, (MIXTURE_DRAWS - synthetic_draws) / len(real)),
                              self._length_weighted(corpus, transform_map, synthetic_draws / len(corpus))])

    def pretraining_assets(self, train: datasets.Dataset, symbols: Sequence[str]) -> datasets.Dataset:
        """The training split less the real assets not in `symbols` (all of it when empty)."""
        if not symbols:
            return train
        real = [a["symbol"] for a in self.manifest()["assets"] if not a.get("synthetic")]
        unknown = [s for s in symbols if s not in real]
        if unknown:
            raise DataError(f"param pretrain.symbols: {', '.join(unknown)} not among the built assets "
                            f"({', '.join(real)}); name some of those, or [] for all")
        keep = set(symbols) | self.synthetic_items()
        logger.info("pre-training on %d of %d real assets: %s", len(symbols), len(real), ", ".join(symbols))
        return train.select([i for i, item in enumerate(train["item_id"]) if item in keep], keep_in_memory=True)

    @staticmethod
    def _length_weighted(dataset: datasets.Dataset, transform_map: dict[Any, Callable[..., Any]],
                         weight: float = 1.0) -> TimeSeriesDataset:
        """uni2ts's pre-training dataset: a series drawn in proportion to its length at every index;
        `weight` scales its size, which sets its share in a ConcatDataset."""
        return TimeSeriesDataset(HuggingFaceDatasetIndexer(dataset), transform=transform_map["train"](),
                                 sample_time_series=SampleTimeSeriesType.PROPORTIONAL, dataset_weight=weight)

    def load_window_dataset(
        self,
        split: str,
        transform_map: dict[Any, Callable[..., Any]],
        context_length: int,
        prediction_length: int,
        patch_size: int,
        distance: int,
    ) -> Dataset:
        """Fixed context/horizon windows per real asset, forecasts starting inside `split` only
        (the synthetic corpus is for pre-training: fine-tuning adapts to the market it forecasts).

        uni2ts's window datasets assume one window count for all series; assets differ in
        length, so each asset gets its own windowed dataset and they are concatenated.
        """
        hf = self.hf_dataset(split)
        synthetic = self.synthetic_items()
        rows = [row for row, item in enumerate(hf["item_id"]) if item not in synthetic]
        if len(rows) < len(hf):
            logger.info("%s windows: real assets only, %d synthetic left to pre-training", split, len(hf) - len(rows))
        parts: list[Dataset] = []
        skipped: list[str] = []
        for row in rows:
            one = hf.select([row])
            length = len(one[0]["target"])
            first, windows = window_plan(int(one[0]["split_start"]), length, context_length, prediction_length,
                                         distance)
            if windows <= 0:
                skipped.append(one[0]["item_id"])
                continue
            indexer = HuggingFaceDatasetIndexer(one)
            if split == "train":
                transform = transform_map[split](
                    distance=distance,
                    prediction_length=prediction_length,
                    context_length=context_length,
                    patch_size=patch_size,
                )
                parts.append(FinetuneDataset(windows, indexer, transform))
            else:
                transform = transform_map[split](
                    offset=first,
                    distance=distance,
                    prediction_length=prediction_length,
                    context_length=context_length,
                    patch_size=patch_size,
                )
                parts.append(EvalDataset(windows, indexer, transform))
        if skipped:
            logger.warning("%s split: no full %d+%d window in %s (too short); not used", split, context_length,
                           prediction_length, ", ".join(skipped))
        if not parts:
            raise DataError(f"{split} split: no asset has a full window of context_length={context_length} + "
                            f"prediction_length={prediction_length}")
        return ConcatDataset(parts)


def window_plan(split_start: int, length: int, context_length: int, prediction_length: int,
                distance: int) -> tuple[int, int]:
    """First forecast index and number of windows whose horizon lies in [split_start, length)."""
    first = max(split_start, context_length)
    if first + prediction_length > length:
        return first, 0
    return first, (length - prediction_length - first) // distance + 1
