"""Stage outputs that appear complete or not at all, with no staging copy that outlives a restore.

A stage writes its outputs into one hidden staging folder, `.partial/`, that lives INSIDE one
of its directory outputs, the host: `data/features/.partial/0/features` stands for
`data/features`; pretrain stages its model and its metrics file in `models/pretrained/.partial/`;
evaluate, whose folders `plots/` and `dvclive/evaluate/` are parents of its DVC outputs, stages
everything in `plots/data/.partial/`. The host is the first path the stage writes that is (or
lies inside) a directory output declared in dvc.yaml, else the first such output inside a path
it writes (a shared `merge` folder is not searched: other stages' outputs live there), else
(no dvc.yaml, e.g. a stage run outside the project) the first path without a suffix.

Only when the whole block succeeded is anything committed: each staged output is renamed into
its place (a file over a file in one os.replace; an old folder is first renamed into
`.partial/old/`), the host's own output last, by moving the staged entries up into the host,
and then the staging folder is deleted. Until the commit the previous output stays as it was
beside `.partial/` (or, under `dvc repro`, which removes a stage's outputs before it runs,
there is only `.partial/`); a failed or interrupted (KeyboardInterrupt) block removes
`.partial/` and any folder it had to create for it.

Why inside: DVC removes every declared output of a stage before it runs it AND before it
restores it from the run cache (dvc/stage/__init__.py Stage.run calls remove_outs, then
dvc/stage/run.py run_stage tries StageCache.restore), and a restore runs none of our code. So
whatever a killed (kill -9) run left is inside the host and goes with it; a sibling staging
folder would survive the restore. A run outside DVC removes a killed run's `.partial/` itself.

The rest of this module keeps the previous layout as a fallback, for a path on another
filesystem than the host or a stage with no folder output: a hidden sibling
(`.name.partial`, replaced via `.name.old`), which only the next run of the stage (or
finmoirai.config.sweep_stale_outputs) removes after a kill.

With several processes (a multi-device training run), only global rank 0 stages and commits:
the other ranks get the same paths and write nothing there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

STAGING = ".partial"  # the staging folder inside the host
OLD = "old"  # inside it: what the commit replaced, deleted with it
PARTIAL, SIBLING_OLD = ".partial", ".old"  # the fallback siblings' suffixes
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_rank_zero() -> bool:
    """True in a single-process run and in global rank 0 of a distributed one (the launchers
    of torchrun, SLURM and Lightning set these variables in every other process)."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def partial_path(path: Path) -> Path:
    """The fallback sibling a path is staged in (`data/.features.partial`)."""
    return path.with_name(f".{path.name}{PARTIAL}")


def _old_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{SIBLING_OLD}")


def remove(path: Path) -> None:
    """Remove a file, a link or a directory tree; nothing when it is absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def clear_stale(path: Path) -> None:
    """Remove the fallback siblings a killed run left beside `path` (and those of the layout
    before staging moved inside the outputs)."""
    remove(partial_path(path))
    remove(_old_path(path))


def dvc_outputs(dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """The outs, metrics and plots the stages of `dvc_yaml` declare, as written there (relative
    to its folder); none when there is no dvc.yaml or it cannot be read."""
    try:
        stages = yaml.safe_load(Path(dvc_yaml).read_text()).get("stages") or {}
    except (OSError, AttributeError, yaml.YAMLError):
        return []
    found = []
    for stage in stages.values() if isinstance(stages, dict) else ():
        for kind in ("outs", "metrics", "plots"):
            entries = stage.get(kind) if isinstance(stage, dict) else None
            for entry in entries if isinstance(entries, list) else ():
                name = next(iter(entry), None) if isinstance(entry, dict) else entry
                if isinstance(name, str) and "${" not in name:
                    found.append(name)
    return list(dict.fromkeys(found))


def _folder_like(path: Path, merged: set[Path]) -> bool:
    return path in merged or not path.suffix


def _within(inner: Path, outer: Path) -> bool:
    """`inner` is `outer` or lies inside it."""
    return inner == outer or outer in inner.parents


def find_host(outputs: list[Path], merged: set[Path], dvc_yaml: str | Path = "dvc.yaml") -> Path | None:
    """The folder whose `.partial/` stages all of `outputs` (see the module docstring)."""
    root = Path(os.path.abspath(Path(dvc_yaml).parent))
    declared = [Path(os.path.abspath(root / p)) for p in dvc_outputs(dvc_yaml)]
    folders = [d for d in declared if not d.suffix]
    replaced = [p for p in outputs if _folder_like(p, merged) and p not in merged]
    for p in replaced:
        if any(_within(Path(os.path.abspath(p)), d) for d in folders):
            return p
    for p in replaced:  # a folder such as plots/, a parent of the stage's DVC outputs
        inside = [d for d in folders if Path(os.path.abspath(p)) in d.parents]
        if inside:
            return p / inside[0].relative_to(os.path.abspath(p))
    return next((p for p in outputs if _folder_like(p, merged)), None)


def _device(path: Path) -> int:
    for p in (path, *path.parents):  # the nearest folder that exists
        try:
            return os.stat(p).st_dev
        except OSError:
            continue
    return -1


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p; the folders it created, outermost first."""
    missing = [p for p in (path, *path.parents) if not p.exists()][::-1]
    path.mkdir(parents=True, exist_ok=True)
    return missing


def _prune(folders: list[Path]) -> None:
    """Remove these folders, innermost first, as long as they are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _aside(path: Path, trash: Path) -> None:
    """Rename `path` into the staging folder's old/ (deleted with it): one rename, so a kill
    leaves it inside the host."""
    trash.mkdir(parents=True, exist_ok=True)
    os.replace(path, trash / f"{sum(1 for _ in trash.iterdir())}-{path.name}")


def _replace(src: Path, dst: Path, trash: Path) -> None:
    """`src` in `dst`'s place: a file over a file in one os.replace, otherwise `dst` aside first."""
    if (dst.is_dir() and not dst.is_symlink()) or (src.is_dir() and (dst.exists() or dst.is_symlink())):
        _aside(dst, trash)
    os.replace(src, dst)


def _clear_towards(folder: Path, host: Path, trash: Path) -> None:
    """Set aside everything in `folder` but the way down to the host's staging folder."""
    for entry in sorted(folder.iterdir()):
        if entry == host / STAGING:
            continue
        if _within(host, entry):
            _clear_towards(entry, host, trash)
        else:
            _aside(entry, trash)


def _swap_in(staged: Path, path: Path, host: Path, trash: Path, merge: bool) -> bool:
    """Make `path`, which is the host or holds it, the staged tree: its old entries aside (a
    shared folder's only where a staged one replaces them), the staged entries moved up. The
    host itself, which holds the staging folder, is entered, not replaced. True when the host
    folder is part of the new output."""
    if not staged.is_dir() or staged.is_symlink():  # a file where a folder was expected
        aside = partial_path(path)
        os.replace(staged, aside)
        remove(path)  # the host and its staging folder go with it
        os.replace(aside, path)
        return False
    new = sorted(staged.iterdir(), key=lambda e: _within(host, path / e.name))  # the host's branch last
    names = {e.name for e in new}
    for old in sorted(path.iterdir()):
        if old == host / STAGING or _within(host, old) or (merge and old.name not in names):
            continue
        _aside(old, trash)
    kept = path == host
    for entry in new:
        target = path / entry.name
        if _within(host, target):
            kept = _swap_in(entry, target, host, trash, merge=False)
        else:
            os.replace(entry, target)
    if path != host and not merge and host.relative_to(path).parts[0] not in names:
        _clear_towards(path / host.relative_to(path).parts[0], host, trash)  # the new output lacks it
    return kept


def commit(staged: Path, path: Path, merge: bool = False) -> None:
    """The fallback: put sibling-staged `staged` in `path`'s place. A directory replaces the old
    one whole (the old one is moved aside first and then deleted), unless `merge`: then each
    staged entry replaces its namesake in `path` and `path`'s other entries stay (a folder
    shared by several stages, such as metrics/)."""
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


def staged_paths(outputs: list[Path], host: Path | None) -> list[Path]:
    """Where each output is staged: `<host>/.partial/<i>/<name>`, or the fallback sibling for
    one on another filesystem than the host (or when there is no host)."""
    device = _device(host) if host is not None else None
    staged = []
    for i, p in enumerate(outputs):
        inside = host is not None and (_within(host, p) or _device(p.parent) == device)
        staged.append(host / STAGING / str(i) / p.name if inside else partial_path(p))
    return staged


@contextmanager
def atomic_outputs(*paths: str | Path, merge: tuple[str | Path, ...] = (),
                   dvc_yaml: str | Path = "dvc.yaml") -> Iterator[list[Path]]:
    """Yield a staging path for each output; commit them all when the block succeeds, remove
    them when it fails (KeyboardInterrupt included). A path listed in `merge` is a shared
    folder: the block writes its own files into the staged folder and only those are replaced.
    A path with a suffix (`metrics/pretrain.json`) is taken for a file when choosing the host.

    The caller creates the staged paths it writes (directories included; their parent exists);
    an output the block did not write is left as it was."""
    outputs = [Path(p) for p in paths]
    merged = {Path(p) for p in merge}
    host = find_host(outputs, merged, dvc_yaml)
    staged = staged_paths(outputs, host)
    if not is_rank_zero():
        yield staged
        return
    for p in outputs:
        clear_stale(p)
    created = _make_dirs(host) if host is not None else []
    staging = host / STAGING if host is not None else None
    if staging is not None:
        remove(staging)  # a killed run's
    for s, p in zip(staged, outputs):
        s.parent.mkdir(parents=True, exist_ok=True)
        if p in merged:
            s.mkdir()
    try:
        yield staged
    except BaseException:
        for s in staged:
            remove(s)
        if staging is not None:
            remove(staging)
        _prune(created)
        raise
    _commit_all(outputs, staged, merged, host, created)


def _commit_all(outputs: list[Path], staged: list[Path], merged: set[Path], host: Path | None,
                created: list[Path]) -> None:
    """The other outputs first, each in one rename (or a shared folder's files, each in one);
    then the output that holds the host; then the staging folder goes."""
    if host is None:
        for s, p in zip(staged, outputs):
            if s.exists() or s.is_symlink():
                commit(s, p, merge=p in merged)
        return
    staging, trash = host / STAGING, host / STAGING / OLD
    holder = next(i for i, p in enumerate(outputs) if _within(host, p))  # find_host picks it so
    for i, (s, p) in enumerate(zip(staged, outputs)):
        if i == holder or not (s.exists() or s.is_symlink()):
            continue
        if not _within(s, staging):  # a fallback sibling
            commit(s, p, merge=p in merged)
        elif p in merged:
            p.mkdir(parents=True, exist_ok=True)
            for entry in sorted(s.iterdir()):
                _replace(entry, p / entry.name, trash)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            _replace(s, p, trash)
    s, p = staged[holder], outputs[holder]
    written = s.exists() or s.is_symlink()
    kept = written and _swap_in(s, p, host, trash, merge=p in merged)
    remove(staging)
    if not written:  # the previous output stays as it was, without the folders made to stage
        _prune(created)
    elif not kept:  # the new output has no folder where the host was
        _prune([*(d for d in reversed(host.parents) if p in d.parents), host])


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
