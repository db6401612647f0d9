"""The evaluation sections: the baselines a quant would use instead, and what evaluate scores
(which period, which lake, how the trading metrics are costed)."""

from __future__ import annotations

from pathlib import Path

from finmoirai.params.base import Section, date_param, require
from finmoirai.params.data import LakeConfig
from finmoirai.params.training import ACCELERATORS

EVALUATE_ACCELERATORS = tuple(a for a in ACCELERATORS if a != "tpu")  # forecasting is plain torch on one device
TRAINED_MODELS = ("moirai", "pretrained")  # evaluate's names of the fine-tuned and the pre-trained model

BASELINES = ("random_walk", "rw_ewma", "garch_t", "seasonal_naive", "auto_ets")


class BaselinesConfig(Section):
    """The baselines stage: what a quant would use instead of the model, scored on the windows
    evaluate scores, with a seed of their own so that the yardstick never moves with the
    model's `seed`."""

    models: list[str]
    seed: int  # the baselines' own sampling seed (not the top-level seed)
    num_samples: int  # sample paths per window: more than the model's, their Monte-Carlo noise is in every skill
    lookback: int  # bars of history the statistical baselines fit on
    ewma_halflife: float  # bars: RW-EWMA's volatility memory (its lambda = 0.5 ** (1 / ewma_halflife))
    season_length: dict[str, int]

    def rules(self) -> None:
        unknown = [b for b in self.models if b not in BASELINES]
        require(not unknown, f"param baselines.models: unknown {unknown}; known: {', '.join(BASELINES)}")
        require(bool(self.models), "param baselines.models: name at least the reference (evaluate.reference)")
        require(self.num_samples >= 10, f"param baselines.num_samples: must be >= 10, got {self.num_samples}")
        require(self.lookback >= 50, f"param baselines.lookback: must be >= 50, got {self.lookback}")
        require(self.ewma_halflife > 0, f"param baselines.ewma_halflife: must be > 0 bars, got {self.ewma_halflife}")
        require(all(v >= 1 for v in self.season_length.values()), "param baselines.season_length: lengths must be >= 1")




class EvaluateConfig(Section):
    stride: int
    num_samples: int
    accelerator: str  # cpu, gpu/cuda, mps or auto: where the models forecast (their draws differ by device)
    devices: int  # evaluate forecasts on one device
    threads: int  # torch intra-op threads for the models' forecasts (fixed: the result depends on it)
    plot_assets: int
    reference: str  # the baseline that the headline skill is measured against
    transaction_cost_bps: dict[str, float]  # per asset class, per unit of turnover
    sizing: str
    split: str  # the period scored: test, or val to choose recipes without looking at test
    lake_path: str  # the lake scored: lake.path (the pipeline's own data) or another lake, a DVC dependency
    symbols: list[str]
    asset_classes: list[str]
    years: list[int]  # the other lake's years (empty: extract.years)
    test_start: str | None  # the other lake's test start (null: split.val_end)
    market_proxy: dict[str, str]  # the other lake's proxy symbol per asset class where its names differ
    reference_models: dict[str, str]  # name -> a Moirai checkpoint (local folder or hub id), scored zero-shot
    reference_covariates: bool  # the reference models see the project's covariates too (false: close only)

    def rules(self) -> None:
        require(self.stride >= 1, f"param evaluate.stride: must be >= 1, got {self.stride}")
        require(self.num_samples >= 10, f"param evaluate.num_samples: must be >= 10, got {self.num_samples}")
        require(self.accelerator in EVALUATE_ACCELERATORS,
                f"param evaluate.accelerator: {self.accelerator!r} is not one of {', '.join(EVALUATE_ACCELERATORS)}")
        require(self.devices == 1, f"param evaluate.devices: evaluate forecasts on one device, got {self.devices} "
                                   "(one device forecasts every window: set 1)")
        taken = sorted(set(self.reference_models) & {*TRAINED_MODELS, *BASELINES})
        require(not taken, f"param evaluate.reference_models: {', '.join(taken)} is already a model's name; "
                           "name the reference otherwise (e.g. moirai_small)")
        bad = sorted(name for name in self.reference_models if not name.isidentifier() or not name.islower())
        require(not bad, f"param evaluate.reference_models: {', '.join(bad)}: a name is lower case letters, digits "
                         "and underscores (it names columns and metrics)")
        empty = sorted(name for name, source in self.reference_models.items() if not source.strip())
        require(not empty, f"param evaluate.reference_models: {', '.join(empty)} names no checkpoint (a local folder "
                           "or a hub id such as Salesforce/moirai-1.1-R-small)")
        require(self.plot_assets >= 0, f"param evaluate.plot_assets: must be >= 0, got {self.plot_assets}")
        require(self.threads >= 1, f"param evaluate.threads: must be >= 1, got {self.threads}")
        require(self.reference in BASELINES,
                f"param evaluate.reference: {self.reference!r} is not a baseline; known: {', '.join(BASELINES)}")
        negative = {k: v for k, v in self.transaction_cost_bps.items() if v < 0}
        require(not negative, f"param evaluate.transaction_cost_bps: must be >= 0, got {negative}")
        require(self.sizing in ("sign", "confidence"),
                f"param evaluate.sizing: 'sign' or 'confidence', got {self.sizing!r}")
        require(self.split in ("test", "val"), f"param evaluate.split: 'test' or 'val', got {self.split!r}")
        require(bool(self.lake_path.strip()),
                "param evaluate.lake_path: must name a lake (lake.path, the default, scores the pipeline's own data)")
        dup = sorted({y for y in self.years if self.years.count(y) > 1})
        require(not dup, f"param evaluate.years: duplicate year(s) {', '.join(map(str, dup))}")
        if self.test_start is not None:
            date_param(self.test_start, "evaluate.test_start")
        empty = sorted(c for c, symbol in self.market_proxy.items() if not symbol.strip())
        require(not empty, f"param evaluate.market_proxy: empty symbol for asset class(es) {', '.join(empty)}")

    def selects(self) -> bool:
        """Whether a selection of its own (symbols, classes, years, test start) is set."""
        return bool(self.symbols or self.asset_classes or self.years or self.test_start is not None)

    def scores_other_lake(self, lake: LakeConfig) -> bool:
        """Whether evaluate runs the data stages on `lake_path` itself (another lake, or a
        selection of the pipeline's own) rather than reading the pipeline's features."""
        return Path(self.lake_path) != Path(lake.path) or self.selects()


class ForecastConfig(Section):
    """The forecast stage: `finmoirai forecast` from the lake's last bar with models/finetuned
    (its seed and sample count are the model folder's, those evaluate scored with)."""

    symbols: list[str]  # the assets forecast (empty: every asset the model was trained on)
    quantiles: list[float]  # the levels written per horizon step, of price and of return
    sample_paths: bool  # also write every sample path (samples.parquet)

    def rules(self) -> None:
        require(bool(self.quantiles) and all(0 < q < 1 for q in self.quantiles),
                f"param forecast.quantiles: levels strictly between 0 and 1, got {self.quantiles}")
        require(self.quantiles == sorted(set(self.quantiles)),
                f"param forecast.quantiles: increasing and distinct, got {self.quantiles}")
