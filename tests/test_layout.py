"""The package's floor plan, checked: imports point one way (stages and the command line ->
config -> evaluation -> training -> data -> params/runtime), there are no import cycles, no project module is imported
under TYPE_CHECKING or inside a function, and the stage scripts stay glue."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "finmoirai"
# Lower layers never import higher ones; a module may import its own layer (no cycles, below).
LAYERS = {"finmoirai": 0, "finmoirai.params": 0, "finmoirai.runtime": 0, "finmoirai.errors": 0,
          "finmoirai.atomic": 0, "finmoirai.data": 1,
          "finmoirai.training": 2, "finmoirai.evaluation": 3, "finmoirai.forecasting": 4, "finmoirai.config": 4,
          "finmoirai.cli": 5}
# The one project import deferred into a function, and why: `finmoirai check` (run by make repro
# before every dvc repro) must stay about a second, and the forecast command's stack (torch,
# uni2ts, pandas-ta) takes several seconds to import.
DEFERRED = {("finmoirai.cli", "finmoirai.forecasting.forecast"),
            ("finmoirai.cli", "finmoirai.evaluation.forecast_table")}
STAGE_MAX_LINES = 40


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return LAYERS[max(matches, key=len)]


def project_imports(tree: ast.AST) -> list[tuple[str, ast.AST, list[ast.AST]]]:
    """(imported finmoirai module, import node, its enclosing nodes) for every import of the package."""
    found = []

    def visit(node: ast.AST, parents: list[ast.AST]) -> None:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("finmoirai"):
            for alias in node.names:  # `from finmoirai.evaluation import baselines` imports a module
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).is_file()
                found.append((candidate if is_module else node.module, node, parents))
        elif isinstance(node, ast.Import):
            found.extend((a.name, node, parents) for a in node.names if a.name.startswith("finmoirai"))
        for child in ast.iter_child_nodes(node):
            visit(child, [*parents, node])

    visit(tree, [])
    return found


def graph() -> dict[str, list[tuple[str, ast.AST, list[ast.AST]]]]:
    return {module_name(p): project_imports(ast.parse(p.read_text())) for p in sorted(PACKAGE.rglob("*.py"))}


def test_imports_point_one_way() -> None:
    upward = [f"{mod} imports {dep}" for mod, deps in graph().items() for dep, _, _ in deps
              if layer(dep) > layer(mod)]
    assert not upward, upward


def test_no_import_cycles() -> None:
    edges = {mod: {dep for dep, _, _ in deps if dep != mod} for mod, deps in graph().items()}
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                raise AssertionError(f"import cycle: {' -> '.join([*path, node, dep])}")
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_project_imports_are_at_the_top_and_real() -> None:
    """No TYPE_CHECKING imports and no imports deferred into functions: a module's
    dependencies are all in its header (third-party optional heavy libraries may be deferred)."""
    hidden = []
    for mod, deps in graph().items():
        for dep, node, parents in deps:
            if (mod, dep) in DEFERRED:
                continue
            if any(isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef, ast.If)) for p in parents):
                hidden.append(f"{mod}:{node.lineno} imports {dep} inside a function or an `if`")
    assert not hidden, hidden


def test_stage_scripts_are_glue() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        script = REPO / "stages" / f"{name}.py"
        assert stage["cmd"].split()[:2] == ["python", f"stages/{name}.py"], stage["cmd"]
        lines = script.read_text().splitlines()
        assert len(lines) <= STAGE_MAX_LINES, (script, len(lines))
        tree = ast.parse(script.read_text())
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert functions == ["main"], (script, functions)  # parse params, call the library, done
        assert "sys.path" not in script.read_text(), script  # the package is installed (make setup)
