"""Stage outputs that appear complete or not at all.

A stage writes each output into a hidden sibling (`data/.features.partial` for
`data/features`) and renames it into place only after the whole stage succeeded, so a failed
or killed stage never leaves a half-written output: the previous one stays, or (under
`dvc repro`, which removes a stage's outputs before running it) there is none. The siblings
of a killed run are removed by the next run of the stage. Standard library only.

With several processes (a multi-device training run), only global rank 0 stages and commits:
the other ranks get the same paths and write nothing there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL, OLD = ".partial", ".old"
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_rank_zero() -> bool:
    """True in a single-process run and in global rank 0 of a distributed one (the launchers
    of torchrun, SLURM and Lightning set these variables in every other process)."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{PARTIAL}")


def _old_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{OLD}")


def remove(path: Path) -> None:
    """Remove a file, a link or a directory tree; nothing when it is absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def clear_stale(path: Path) -> None:
    """Remove what a killed run left beside `path`: its partial and superseded copies."""
    remove(partial_path(path))
    remove(_old_path(path))


def commit(staged: Path, path: Path, merge: bool = False) -> None:
    """Put `staged` in `path`'s place. A directory replaces the old one whole (the old one is
    moved aside first and then deleted), unless `merge`: then each staged entry replaces its
    namesake in `path` and `path`'s other entries stay (a folder shared by several stages,
    such as metrics/)."""
    if merge:
        path.mkdir(parents=True, exist_ok=True)
        for entry in sorted(staged.iterdir()):
            remove(path / entry.name)
            os.replace(entry, path / entry.name)
        staged.rmdir()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        old = _old_path(path)
        remove(old)
        os.replace(path, old)
        os.replace(staged, path)
        shutil.rmtree(old)
    else:
        os.replace(staged, path)  # a file is replaced in one step


@contextmanager
def atomic_outputs(*paths: str | Path, merge: tuple[str | Path, ...] = ()) -> Iterator[list[Path]]:
    """Yield a staging path for each output; commit them all when the block succeeds, remove
    them when it fails (KeyboardInterrupt included). A path listed in `merge` is a shared
    folder: the block writes its own files into the staged folder and only those are replaced.

    The caller creates the staged paths it writes (directories included); an output the block
    did not write is left as it was."""
    outputs = [Path(p) for p in paths]
    merged = {Path(p) for p in merge}
    if not is_rank_zero():
        yield [partial_path(p) for p in outputs]
        return
    for p in outputs:
        clear_stale(p)
    staged = [partial_path(p) for p in outputs]
    for s, p in zip(staged, outputs):
        if p in merged:
            s.mkdir(parents=True)
    try:
        yield staged
    except BaseException:
        for s in staged:
            remove(s)
        raise
    for s, p in zip(staged, outputs):
        if s.exists() or s.is_symlink():
            commit(s, p, merge=p in merged)


@contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """A working directory at a fixed path that is removed when the block ends, however it
    ends; one left by a killed run is removed first."""
    path = Path(path)
    remove(path)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        remove(path)
