"""Assets side by side: the process pool that the preprocess and features stages share.

Assets are independent, so each worker process holds one asset at a time; memory is bounded
by the assets in flight, never by the whole lake.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

from finmoirai.errors import DataError

logger = logging.getLogger(__name__)

AUTO_MIN_ASSETS = 16  # workers: 0 (auto) stays in one process below this many assets

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int, n_items: int) -> int:
    """Process count for `n_items` assets: 0 means every core, once there are enough assets."""
    if workers == 0:
        workers = available_cores() if n_items >= AUTO_MIN_ASSETS else 1
    return max(1, min(workers, n_items))


def map_assets(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """fn over items, results in input order. One process when workers <= 1, else a pool of
    fresh (spawned) processes; at most `workers` assets are in flight at a time, and on an
    error or KeyboardInterrupt the pending ones are cancelled instead of run."""
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)




def kept_assets(assets: Sequence[dict], results: Iterator[Any], desc: str,
                skipped: dict[str, str]) -> Iterator[tuple[dict, Any]]:
    """Each asset with its result, in order, behind a progress bar. A result that is a string is
    why the asset was left out (`preprocess.on_bad_asset: skip`): it is logged and recorded in
    `skipped` instead of yielded."""
    for asset, result in zip(assets, tqdm(results, total=len(assets), desc=desc, leave=False)):
        if isinstance(result, str):
            logger.warning("%s: skipped (preprocess.on_bad_asset: skip): %s", asset["symbol"], result)
            skipped[asset["symbol"]] = result
            continue
        yield asset, result


def require_kept(kept: Sequence[Any], skipped: dict[str, str], where: Any) -> None:
    """One line when a stage skipped every asset it had."""
    if not kept:
        raise DataError(f"{where}: every asset was skipped as bad (preprocess.on_bad_asset: skip): "
                        + "; ".join(f"{sym}: {why}" for sym, why in skipped.items()))
