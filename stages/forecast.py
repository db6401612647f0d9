"""DVC stage `forecast`: the next prediction_length bars after the lake's last bar, from
models/finetuned alone (`finmoirai forecast`, finmoirai/forecasting/forecast.py): tomorrow's
forecast as a versioned artifact."""

import sys

try:
    from finmoirai.runtime import run_stage, stage_paths, start_stage
except ModuleNotFoundError:  # not the project's Python: one line, not a traceback
    sys.exit(f"error: {sys.executable} cannot import finmoirai: activate the environment first "
             "(`source .venv/bin/activate`), or run through `make repro`")

if __name__ == "__main__":
    start_stage(deterministic=True)  # the data stages' kernels: the same inputs as evaluate's (finmoirai/runtime.py)

from finmoirai.atomic import atomic_outputs  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.forecasting.forecast import forecast  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    model, lake, out = stage_paths(argv, "model", "lake", "out")
    params = stage_params("forecast")
    cfg = params.forecast
    with atomic_outputs(out) as (staged,):
        staged.mkdir()
        forecast(model, lake, staged, symbols=cfg.symbols, quantiles=cfg.quantiles, sample_paths=cfg.sample_paths)


if __name__ == "__main__":
    run_stage("forecast", main)
