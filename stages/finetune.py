"""DVC stage `finetune`: MoiraiFinetune from models/pretrained (or a hub id) -> models/finetuned."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai.runtime import start_stage  # noqa: E402

if __name__ == "__main__":
    start_stage(deterministic=False)  # before torch loads: a wrong interpreter gets one line, not a traceback

from finmoirai import write_json  # noqa: E402
from finmoirai.builder import IterativeFinancialDatasetBuilder  # noqa: E402
from finmoirai.model import finetune  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.params import FinetuneConfig, knobs, section  # noqa: E402


def main() -> None:
    params = stage_params("finetune")
    top = knobs(params)
    cfg = section(params, FinetuneConfig, "finetune")
    builder = IterativeFinancialDatasetBuilder(Path("data/datasets")).for_target(top.target)
    result = finetune(builder, top, cfg, Path("models/finetuned"), Path("dvclive/finetune"))
    if result is not None:  # None on every process but rank 0 of a multi-device run
        write_json(Path("metrics/finetune.json"), result)


if __name__ == "__main__":
    main()
