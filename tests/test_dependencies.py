"""dvc.yaml's code deps follow the imports: every stage whose command is `python stages/<x>.py`
depends on its script and on every project module the script imports, directly or through
other modules (function-level imports included), so editing one reruns the stage.

The closure is found statically (ast), as Python would resolve it for `python stages/<x>.py`:
a name is looked up first in the script's folder (sys.path[0]), then in the finmoirai package
(installed editable). Importing `finmoirai.a.b` runs finmoirai/__init__.py and
finmoirai/a/__init__.py too, and `from finmoirai.a import b` imports the submodule b when there
is one. A dep covers a module when it is that file or a folder above it.
"""

from __future__ import annotations

import ast
import copy
import shlex
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "finmoirai"
# Imported by every stage but deliberately not a dependency (see dvc.yaml's header): it validates
# the whole params.yaml and changes no output. Neither it nor what only it imports is required.
NOT_DEPENDENCIES = frozenset({PACKAGE / "config.py"})


def module_file(name: str, root: Path) -> Path | None:
    """Module `a.b` under the sys.path entry `root`: root/a/b/__init__.py or root/a/b.py."""
    base = root.joinpath(*name.split("."))
    return next((p for p in (base / "__init__.py", base.with_name(base.name + ".py")) if p.is_file()), None)


@cache
def imported_names(path: Path, package: str) -> frozenset[str]:
    """Every module an import statement anywhere in `path` names (absolute; `package` resolves
    relative imports). `from m import n` gives m and m.n: n may be a submodule."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 >= len(parts):
                    continue  # beyond the top-level package: fails at run time anyway
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return frozenset(names)


def import_closure(script: Path, package_root: Path, stop_at: frozenset[Path] = frozenset()) -> set[Path]:
    """The project module files `python script` imports: modules in the script's folder and in
    the package at `package_root`, with every package __init__.py on the way. Files in `stop_at`
    are neither included nor followed."""
    script_dir = script.parent

    def root_of(top: str) -> Path | None:
        if module_file(top, script_dir):
            return script_dir
        return package_root.parent if top == package_root.name else None

    def package_of(path: Path) -> str:
        root = package_root.parent if path.is_relative_to(package_root) else script_dir
        parts = path.relative_to(root).with_suffix("").parts
        return ".".join(parts[:-1])  # a module's package; an __init__.py's is its own folder

    found: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        for name in imported_names(path, package_of(path)):
            parts = name.split(".")
            root = root_of(parts[0])
            if root is None:
                continue  # a third-party or standard-library module
            for i in range(1, len(parts) + 1):  # finmoirai, finmoirai.a, finmoirai.a.b
                file = module_file(".".join(parts[:i]), root)
                if file is None:
                    break
                if file not in found and file != script and file not in stop_at:
                    found.add(file)
                    todo.append(file)
    return found


def stage_scripts(stage: Mapping[str, Any]) -> list[str]:
    """The `stages/<x>.py` scripts a stage's command runs with python."""
    commands = stage.get("cmd", [])
    scripts = []
    for command in [commands] if isinstance(commands, str) else commands:
        argv = shlex.split(command)
        if len(argv) > 1 and argv[0] == "python" and argv[1].startswith("stages/") and argv[1].endswith(".py"):
            scripts.append(argv[1])
    return scripts


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def missing_deps(stage: str, dvc_yaml: Mapping[str, Any], repo: Path = REPO) -> list[str]:
    """The files `stage`'s script(s) and their imports are, relative to the repo, that its deps miss."""
    entry = dvc_yaml["stages"][stage]
    deps = [d for d in entry.get("deps", []) if "${" not in d]  # params-interpolated data paths
    needed = set()
    for script in stage_scripts(entry):
        needed.add(repo / script)
        needed |= import_closure(repo / script, repo / PACKAGE.name, NOT_DEPENDENCIES)
    return sorted(p for p in (f.relative_to(repo).as_posix() for f in needed) if not covered(p, deps))


def report(dvc_yaml: Mapping[str, Any], repo: Path = REPO) -> list[str]:
    """One line per stage whose deps miss what it imports: `stage: path, path`."""
    lines = []
    for stage in dvc_yaml["stages"]:
        missing = missing_deps(stage, dvc_yaml, repo)
        if missing:
            lines.append(f"{stage}: {', '.join(missing)}")
    return lines


def load_dvc_yaml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_stage_deps_cover_imports() -> None:
    dvc_yaml = load_dvc_yaml()
    checked = [s for s, entry in dvc_yaml["stages"].items() if stage_scripts(entry)]
    assert len(checked) >= 9, f"expected every pipeline stage to run a stages/ script, got {checked}"
    lines = report(dvc_yaml)
    assert not lines, "dvc.yaml: add to each stage's deps: the modules its script imports\n" + "\n".join(lines)


def test_check_reports_a_removed_dep() -> None:
    dvc_yaml = copy.deepcopy(load_dvc_yaml())
    dvc_yaml["stages"]["extract"]["deps"].remove("finmoirai/data/lake.py")
    assert missing_deps("extract", dvc_yaml) == ["finmoirai/data/lake.py"]
    assert report(dvc_yaml) == ["extract: finmoirai/data/lake.py"]


def test_check_reports_a_removed_folder_dep_and_script() -> None:
    dvc_yaml = copy.deepcopy(load_dvc_yaml())
    dvc_yaml["stages"]["pretrain"]["deps"].remove("finmoirai/training")
    dvc_yaml["stages"]["pretrain"]["deps"].remove("stages/pretrain.py")
    missing = missing_deps("pretrain", dvc_yaml)
    assert missing == ["finmoirai/training/__init__.py", "finmoirai/training/loops.py",
                       "finmoirai/training/module.py", "finmoirai/training/tasks.py", "stages/pretrain.py"]


def test_not_dependencies_exist() -> None:
    assert all(p.is_file() for p in NOT_DEPENDENCIES), NOT_DEPENDENCIES


def test_closure_follows_packages_deferred_and_sibling_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "params").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    files = {
        "pkg/__init__.py": "",
        "pkg/params/__init__.py": "from pkg.params.sections import X\n",  # params split into a package
        "pkg/params/sections.py": "from . import rules\n",  # relative
        "pkg/params/rules.py": "import os\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/a.py": "def f():\n    from pkg.sub import b  # deferred, names a submodule\n",
        "pkg/sub/b.py": "",
        "pkg/sub/unused.py": "",
        "pkg/skipped.py": "import pkg.sub.unused\n",
        "stages/helper.py": "",
        "stages/run.py": "import sys\nimport helper\nimport pkg.skipped\nfrom pkg.params import X\n"
                         "if True:\n    import pkg.sub.a as a\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    closure = import_closure(tmp_path / "stages/run.py", pkg, frozenset({pkg / "skipped.py"}))
    assert {p.relative_to(tmp_path).as_posix() for p in closure} == {
        "pkg/__init__.py", "pkg/params/__init__.py", "pkg/params/sections.py", "pkg/params/rules.py",
        "pkg/sub/__init__.py", "pkg/sub/a.py", "pkg/sub/b.py", "stages/helper.py"}
