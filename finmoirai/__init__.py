"""Moirai pre-training, fine-tuning and honest evaluation on multivariate OHLCV data."""

import logging

__all__ = ["setup_logging"]


def setup_logging(level: int = logging.INFO) -> None:
    """One log format for every stage script, so `dvc repro` output reads as one story."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
