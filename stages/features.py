"""DVC stage `features`: indicators, cross-asset and regime covariates to data/features."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai.runtime import start_stage  # noqa: E402

if __name__ == "__main__":
    start_stage(deterministic=True)  # before numpy loads: the same bytes on every x86-64 machine

from finmoirai.features import FeaturesConfig, features  # noqa: E402
from finmoirai.config import stage_params  # noqa: E402
from finmoirai.params import SplitConfig, section  # noqa: E402

IN, OUT = Path("data/preprocessed"), Path("data/features")


def main() -> None:
    params = stage_params("features")
    split = section(params, SplitConfig, "split")
    cfg = section(params, FeaturesConfig, "features")
    features(IN, split, cfg, OUT)


if __name__ == "__main__":
    main()
