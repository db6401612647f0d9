"""Moirai pre-training, fine-tuning and honest evaluation on multivariate OHLCV data."""

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["setup_logging", "write_json", "write_parquet"]


def setup_logging(level: int = logging.INFO) -> None:
    """One log format for every stage script, so `dvc repro` output reads as one story."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def write_json(path: str | Path, payload: Any) -> None:
    """Indented JSON, parent directories created: every manifest, report and metrics file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def write_parquet(frame: Any, path: str | Path) -> None:
    """A pandas frame as parquet, without dictionary encoding: float price and feature columns
    have almost no repeated values, so the dictionary pass only costs time (about half of
    the write) and bytes. Every per-asset file of the data stages goes through here."""
    frame.to_parquet(path, index=False, use_dictionary=False)
