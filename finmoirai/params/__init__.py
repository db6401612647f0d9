"""params.yaml as one typed, frozen object, parsed once.

`Params.load()` reads params.yaml (the composition of conf/, see finmoirai/composition.py)
into `Params`: the top-level knobs and one section per stage, each a strict pydantic model
of its concern (base: what they share; data, features, training, evaluation: the sections),
and the rules that tie sections together, written here once. The rules that need the data
model (a window's tokens count the covariates the features stage writes; seasons count a
calendar's bars) are finmoirai/config.py's. `Params.model_json_schema()` is the schema that
`params.schema.json` publishes for editors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Self

from finmoirai.params.base import ParamsError, load_yaml, require
from finmoirai.params.data import (
    DEMO_LAKE,
    BuildConfig,
    ExtractConfig,
    LakeConfig,
    MarketConfig,
    PreprocessConfig,
    SplitConfig,
)
from finmoirai.params.evaluation import BaselinesConfig, EvaluateConfig, ForecastConfig
from finmoirai.params.features import FeaturesConfig
from finmoirai.params.training import FinetuneConfig, Knobs, ModelConfig, PretrainConfig, check_scaler_target

__all__ = ["Params", "ParamsError"]


class Params(Knobs):
    """The whole of params.yaml: the top-level knobs (its base class's fields and rules), then
    one section per stage. Constructed only valid: each section's own rules, then the rules
    across sections (the context/horizon ratio, the scaler/target pairing, the market proxies,
    the synthetic corpus, what evaluate scores against what)."""

    min_context_ratio: float  # design rule: context_length >= this x prediction_length
    lake: LakeConfig
    market: MarketConfig
    extract: ExtractConfig
    split: SplitConfig
    preprocess: PreprocessConfig
    features: FeaturesConfig
    build: BuildConfig
    model: ModelConfig
    pretrain: PretrainConfig
    finetune: FinetuneConfig
    baselines: BaselinesConfig
    evaluate: EvaluateConfig
    forecast: ForecastConfig

    @property
    def knobs(self) -> Knobs:
        """The top-level experiment knobs as the model code takes them."""
        return Knobs.model_construct(**{name: getattr(self, name) for name in Knobs.model_fields})

    def rules(self) -> None:
        super().rules()
        require(self.min_context_ratio > 0, f"param min_context_ratio: must be positive, got {self.min_context_ratio}")
        self._check_context_ratio()
        check_scaler_target(self.model.scaler, self.target)
        missing = [c for c in self.extract.asset_classes if c not in self.features.market_proxy]
        require(not missing, f"param features.market_proxy: no proxy for asset class(es) {', '.join(missing)} "
                             f"of extract.asset_classes")
        share = self.pretrain.synthetic_share
        require(not share or self.build.synthetic_assets > 0,
                f"param pretrain.synthetic_share: {share} draws from a synthetic corpus, but build.synthetic_assets "
                f"is 0; set build.synthetic_assets > 0, or synthetic_share: null")
        outside = [s for s in self.pretrain.symbols if self.extract.symbols and s not in self.extract.symbols]
        require(not outside, f"param pretrain.symbols: {', '.join(outside)} not in extract.symbols "
                             f"{self.extract.symbols}; pre-train on extracted assets only")
        self._check_evaluation()

    def _check_context_ratio(self) -> None:
        """The design rule: the model sees at least `min_context_ratio` horizons of history."""
        ratio, least = self.context_length / self.prediction_length, self.min_context_ratio
        if ratio < least:
            raise ParamsError(
                f"params context_length={self.context_length}, prediction_length={self.prediction_length}: the context "
                f"is {ratio:.1f}x the horizon, the rule is >= {least:g}x (min_context_ratio); set context_length >= "
                f"{math.ceil(least * self.prediction_length)}, or prediction_length <= "
                f"{int(self.context_length // least)}, or lower min_context_ratio to accept it")

    def _check_evaluation(self) -> None:
        """The rules that tie evaluate to the baselines, the lake and the asset classes."""
        cfg, base, lake = self.evaluate, self.baselines, self.lake
        require(cfg.reference in base.models,
                f"param evaluate.reference: {cfg.reference!r} must be one of baselines.models {base.models}")
        missing = [c for c in [*self.extract.asset_classes, *cfg.asset_classes] if c not in cfg.transaction_cost_bps]
        require(not missing, f"param evaluate.transaction_cost_bps: no cost for asset class(es) {', '.join(missing)}")
        require(cfg.lake_path != DEMO_LAKE or lake.path == DEMO_LAKE,
                f"param evaluate.lake_path: {DEMO_LAKE} is the demo lake's folder, but lake.path is {lake.path}; to "
                f"score the pipeline's own data set evaluate.lake_path: {lake.path}")
        require(not cfg.market_proxy or cfg.scores_other_lake(lake),
                f"param evaluate.market_proxy: {cfg.market_proxy} names the proxies of another lake, but evaluate "
                f"scores the pipeline's own data (evaluate.lake_path is lake.path, no selection), whose proxies are "
                f"features.market_proxy; leave it {{}}")
        require(cfg.split == "test" or not cfg.scores_other_lake(lake),
                "param evaluate.split: 'val' scores this repo's validation period; with another evaluate.lake_path, "
                "or evaluate.symbols/asset_classes/years/test_start, use test")

    @classmethod
    def load(cls, path: str | Path = "params.yaml") -> Self:
        """params.yaml parsed and checked, or one ParamsError line naming the key."""
        return cls.parse(load_yaml(path))
