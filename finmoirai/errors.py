"""The project's own error types: an error whose message is the whole story for the user.

A stage that stops on one of these prints its message as one line (`error: ...`), without a
traceback: the message names the file, asset or parameter and what to do. Anything else that
reaches a stage's top is a bug or a library failure, and is reported with the stage (and,
inside the per-asset loops, the asset) that raised it. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class FinMoiraiError(ValueError):
    """An error the user can fix from its message alone (a ValueError, so callers that
    catch bad values keep catching it)."""


class DataError(FinMoiraiError):
    """Bad input data: a lake file, a partition or an asset that the pipeline cannot use."""


class BadAsset(DataError):
    """One asset cannot be used (too short, no bars in a split, ...). With
    `preprocess.on_bad_asset: skip` it is left out and reported instead of stopping the run."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(f"asset {symbol}: {reason}")
        self.symbol, self.reason = symbol, reason

    def __reduce__(self):  # pickled across the worker processes with both fields
        return type(self), (self.symbol, self.reason)


def first_line(e: BaseException) -> str:
    """An exception's first message line, or its type when it has no message."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


@contextmanager
def about_asset(symbol: str) -> Iterator[None]:
    """Name the asset in whatever escapes the block: a project error without the asset in its
    message gets it as a prefix, and a library exception becomes a DataError that says which
    asset and which exception (the original stays chained for the verbose traceback)."""
    try:
        yield
    except BadAsset:
        raise
    except FinMoiraiError as e:
        if f"asset {symbol}" in str(e):
            raise
        raise type(e)(f"asset {symbol}: {e}") from e
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - wrapped with the asset, re-raised
        raise DataError(f"asset {symbol}: {type(e).__name__}: {first_line(e)}") from e
