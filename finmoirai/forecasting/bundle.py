"""The self-contained model folder: everything a forecast needs, in one directory.

    config.json, model.safetensors   the Moirai module (finmoirai.training.module: the scaler
                                     is in config.json, guarded against stock uni2ts)
    training.json                    how it was trained (params, NLL)
    forecast.json                    the recipe: the knobs, the data sections of params.yaml
                                     (extract's frequency, market calendars, preprocess,
                                     features), the covariates the model reads, the lake
                                     schema it expects, and every statistic fitted on the
                                     training period (preprocess scalers, feature z-scores,
                                     the regime threshold), per asset
    README.md                        the model card (finmoirai.forecasting.card)

`package_model` writes it from a training checkpoint and the data stages' outputs; `Recipe`
reads it back. Nothing outside the folder is needed to forecast from raw OHLCV bars.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmoirai.data.lake import COLUMNS
from finmoirai.data.targets import TARGET_COLUMNS
from finmoirai.errors import FinMoiraiError
from finmoirai.forecasting.card import model_card
from finmoirai.params import Params
from finmoirai.params.data import ExtractConfig, MarketConfig, PreprocessConfig, SplitConfig
from finmoirai.params.features import FeaturesConfig
from finmoirai.params.training import Knobs
from finmoirai.training.module import WEIGHTS_FILE

RECIPE_FILE = "forecast.json"
RECIPE_FORMAT = 1
MODEL_FILES = ("config.json", WEIGHTS_FILE, "training.json")
EVALUATED_AS = {"pretrained": "pretrained", "finetuned": "moirai"}  # the folders' names in evaluate's tables
LAKE_LAYOUT = "asset_class=<class>/frequency=<frequency>/symbol=<symbol>/year=<yyyy>/*.parquet"


class ModelFolderError(FinMoiraiError):
    """A model folder that cannot forecast: not this project's, or incomplete."""


def recipe(params: Params, preprocessed_dir: Path, features_dir: Path) -> dict[str, Any]:
    """forecast.json's content: the params and statistics a forecast replays, from the run's
    params and its data stages' outputs (preprocess and features scalers, features manifest)."""
    manifest = json.loads((Path(features_dir) / "manifest.json").read_text())
    preprocess_scalers = json.loads((Path(preprocessed_dir) / "scalers.json").read_text())
    feature_scalers = json.loads((Path(features_dir) / "scalers.json").read_text())
    symbols = [a["symbol"] for a in manifest["assets"]]
    return {
        "format": RECIPE_FORMAT,
        "knobs": params.knobs.model_dump(),
        "num_samples": params.evaluate.num_samples,
        "covariates": manifest[TARGET_COLUMNS[params.target][1]],
        "lake_schema": {"layout": LAKE_LAYOUT, "columns": COLUMNS, "frequency": params.extract.frequency,
                        "bar_stamp": params.market.bar_stamp, "strict": params.lake.strict,
                        "naive_timezone": params.lake.naive_timezone},
        "extract": params.extract.model_dump(),
        "market": params.market.model_dump(),
        "split": params.split.model_dump(),
        "preprocess": params.preprocess.model_dump(),
        "features": params.features.model_dump(),
        "assets": [{k: a[k] for k in ("symbol", "asset_class", "calendar", "frequency", "first", "last")}
                   for a in manifest["assets"]],
        "statistics": {"preprocess": {s: preprocess_scalers[s] for s in symbols},
                       "features": {s: feature_scalers[s] for s in symbols}},
    }


def package_models(params: Params, checkpoints: Path, preprocessed_dir: Path, features_dir: Path, metrics_dir: Path,
                   outs: dict[str, Path]) -> None:
    """The package stage: each checkpoint (`outs`: "pretrained" and "finetuned" -> folder) with
    the recipe and its model card, from the run's metrics."""

    def read(path: Path) -> dict[str, Any]:
        return json.loads(Path(path).read_text())

    content = recipe(params, preprocessed_dir, features_dir)
    quality, evaluation = read(metrics_dir / "data_quality.json"), read(metrics_dir / "evaluate.json")
    details = read(metrics_dir / "evaluate_details.json")
    for name, out in outs.items():
        checkpoint = Path(checkpoints) / name
        card = model_card(name, EVALUATED_AS[name], params, content, quality, read(checkpoint / "training.json"),
                          evaluation, details)
        package_model(checkpoint, out, content, card)


def package_model(checkpoint: Path, out_dir: Path, content: dict[str, Any], card: str) -> None:
    """`out_dir`: the checkpoint's model files, forecast.json and the model card."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copy2(Path(checkpoint) / name, out_dir / name)
    (out_dir / RECIPE_FILE).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    (out_dir / "README.md").write_text(card)


@dataclass(frozen=True)
class Recipe:
    """forecast.json parsed back into the params sections the data code takes."""

    folder: Path
    knobs: Knobs
    num_samples: int
    covariates: list[str]
    extract: ExtractConfig
    market: MarketConfig
    split: SplitConfig
    preprocess: PreprocessConfig
    features: FeaturesConfig
    strict: bool
    naive_timezone: str | None
    assets: list[dict[str, str]]
    statistics: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, folder: str | Path) -> Recipe:
        folder = Path(folder)
        path = folder / RECIPE_FILE
        if not folder.is_dir():
            raise ModelFolderError(f"--model {folder}: no such folder (a model folder such as models/finetuned)")
        if not path.is_file():
            raise ModelFolderError(f"--model {folder}: no {RECIPE_FILE}, so not a folder this project packaged "
                                   "(models/finetuned or models/pretrained, written by the package stage)")
        raw = json.loads(path.read_text())
        if raw.get("format") != RECIPE_FORMAT:
            raise ModelFolderError(f"{path}: format {raw.get('format')}, this finmoirai reads {RECIPE_FORMAT}")
        schema = raw["lake_schema"]
        return cls(folder=folder, knobs=Knobs.parse(raw["knobs"]), num_samples=int(raw["num_samples"]),
                   covariates=list(raw["covariates"]), extract=ExtractConfig.parse(raw["extract"], "extract"),
                   market=MarketConfig.parse(raw["market"], "market"), split=SplitConfig.parse(raw["split"], "split"),
                   preprocess=PreprocessConfig.parse(raw["preprocess"], "preprocess"),
                   features=FeaturesConfig.parse(raw["features"], "features"), strict=bool(schema["strict"]),
                   naive_timezone=schema["naive_timezone"], assets=raw["assets"], statistics=raw["statistics"])

    @property
    def symbols(self) -> list[str]:
        return [a["symbol"] for a in self.assets]

    def asset(self, symbol: str) -> dict[str, str]:
        return next(a for a in self.assets if a["symbol"] == symbol)
