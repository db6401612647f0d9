"""DVC stage `features`: indicators, cross-asset and regime covariates to data/features."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finmoirai import setup_logging  # noqa: E402
from finmoirai.features import FeaturesConfig, features  # noqa: E402
from finmoirai.params import SplitConfig, load_params, section  # noqa: E402

IN, OUT = Path("data/preprocessed"), Path("data/features")


def main() -> None:
    setup_logging()
    params = load_params()
    split = section(params, SplitConfig, "split")
    cfg = section(params, FeaturesConfig, "features")
    features(IN, split, cfg, OUT)


if __name__ == "__main__":
    main()
