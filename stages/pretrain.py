"""DVC stage `pretrain`: MoiraiPretrain from scratch on the training split."""

import sys

try:
    from finmoirai.runtime import stage_paths, start_stage
except ModuleNotFoundError:  # not the project's Python: one line, not a traceback
    sys.exit(f"error: {sys.executable} cannot import finmoirai: activate the environment first "
             "(`source .venv/bin/activate`), or run through `make repro`")

if __name__ == "__main__":
    start_stage(deterministic=False)  # before torch loads: a wrong interpreter gets one line

from finmoirai import write_json  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.data.builder import IterativeFinancialDatasetBuilder  # noqa: E402
from finmoirai.params import ModelConfig, PretrainConfig, knobs, section  # noqa: E402
from finmoirai.training.loops import pretrain  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    datasets, out, live, metrics = stage_paths(argv, "datasets", "out", "live", "metrics")
    params = stage_params("pretrain")
    experiment = knobs(params)
    builder = IterativeFinancialDatasetBuilder(datasets).for_target(experiment.target)
    model_cfg, cfg = section(params, ModelConfig, "model"), section(params, PretrainConfig, "pretrain")
    result = pretrain(builder, experiment, model_cfg, cfg, out, live)
    if result is not None:  # None on every process but rank 0 of a multi-device run
        write_json(metrics, result)


if __name__ == "__main__":
    main()
