"""uni2ts's Lightning tasks, adapted: `MoiraiPretrain` with the patch size from params and
deterministic validation windows, `MoiraiFinetune`, and both with the known-future calendar
covariates when `calendar: true`.

* patch size comes from params (`FixedPatchSizeConstraints`); uni2ts's default frequency
  table does not know pandas' `h` alias and would raise KeyError.
* pre-training validates on deterministic validation-split windows (the same windows as
  fine-tuning), so its validation NLL is comparable across experiments.
* with `calendar: true`, uni2ts's transform chains also carry `feat_dynamic_real`, the
  known-future calendar covariates: packed, patched and indexed like the other covariates (so
  their variate ids follow the target's, as in `MoiraiForecast`), never predicted, and, unlike
  `past_feat_dynamic_real`, not truncated at the forecast start (uni2ts issues #163, #176).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from uni2ts.model.moirai import MoiraiFinetune, MoiraiPretrain
from uni2ts.transform import Chain, FixedPatchSizeConstraints, GetPatchSize, PackFields

KNOWN_FUTURE = "feat_dynamic_real"
PAST_ONLY = "past_feat_dynamic_real"


def with_known_future(chain: Chain) -> Chain:
    """uni2ts's chain with `feat_dynamic_real` beside `past_feat_dynamic_real` in every step
    that handles covariates, placed just before it (MoiraiForecast's variate order: target,
    known-future, past-only). Truncation at the forecast start (`optional_truncate_fields`)
    is left to the past-only covariates: the calendar stays visible over the horizon."""
    steps = []
    for step in chain.transformations:
        if isinstance(step, PackFields) and step.output_field == PAST_ONLY:
            steps.append(dataclasses.replace(step, output_field=KNOWN_FUTURE, optional_fields=(KNOWN_FUTURE,)))
        elif PAST_ONLY in getattr(step, "optional_fields", ()):
            fields = list(step.optional_fields)
            fields.insert(fields.index(PAST_ONLY), KNOWN_FUTURE)
            step = dataclasses.replace(step, optional_fields=tuple(fields))
        steps.append(step)
    return Chain(steps)


def _maybe_known_future(base: Any, known_future: bool) -> dict[Any, Any]:
    """A transform map whose chains carry the calendar covariates when `known_future`."""
    if not known_future:
        return base
    return defaultdict(lambda: lambda *args, **kwargs: with_known_future(base["train"](*args, **kwargs)))


class FinancialMoiraiPretrain(MoiraiPretrain):
    """MoiraiPretrain with a fixed patch size, deterministic validation windows and, optionally,
    the known-future calendar covariates."""

    def __init__(self, *args: Any, fixed_patch_size: int, known_future: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_patch_size = fixed_patch_size
        self.known_future = known_future

    @property
    def train_transform_map(self):
        base = super().train_transform_map

        def transform():
            chain = base["train"]()
            for step in chain.transformations:
                if isinstance(step, GetPatchSize):
                    step.patch_size_constraints = FixedPatchSizeConstraints(self.fixed_patch_size)
            return with_known_future(chain) if self.known_future else chain

        return {"train": transform}

    # uni2ts builds validation windows only in MoiraiFinetune; the property only needs
    # hparams.max_dim, module.patch_sizes and seq_fields, which MoiraiPretrain has too.
    @property
    def val_transform_map(self):
        return _maybe_known_future(MoiraiFinetune.val_transform_map.fget(self), self.known_future)


class FinancialMoiraiFinetune(MoiraiFinetune):
    """MoiraiFinetune whose windows optionally carry the known-future calendar covariates."""

    def __init__(self, *args: Any, known_future: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_future = known_future

    @property
    def train_transform_map(self):
        return _maybe_known_future(super().train_transform_map, self.known_future)

    @property
    def val_transform_map(self):
        return _maybe_known_future(super().val_transform_map, self.known_future)
