"""The README names only what exists: every repo path, `make` target, params key (`-S` and
`--set`) and benchmark flag it shows. Files move and flags change; without this check the README
kept pointing at `tests/test_reproducible.py` for two rounds after it became test_runtime.py."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finmoirai.config import declared_outputs

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
# Names in the README that are not paths of this repo: examples of the user's own, hub ids, zones
NOT_REPO_PATHS = {"America/New_York", "Salesforce/moirai-1.1-R-small", "models/hub", ".dvc/config.local", "n/a",
                  "you/finmoirai-hourly"}
FILE_SUFFIX = re.compile(r"\.(py|ya?ml|json|md|lock|txt|toml|tsv|csv|png|parquet|sh)$")


def code_texts(text: str) -> list[str]:
    """Inline code spans and the lines of code blocks (continued lines joined)."""
    blocks = [b.replace("\\\n", " ") for b in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)]
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", prose) + [line for b in blocks for line in b.splitlines()]


def expand_braces(token: str) -> list[str]:
    """`stages/{extract,build}.py` -> both paths (shell brace expansion, one level per group)."""
    parts = re.split(r"\{([^{}]*,[^{}]*)\}", token)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def path_tokens(text: str) -> set[str]:
    tokens = set()
    for raw in re.split(r"[\s()'\";|`]+", text):
        raw = raw.split("::")[0].rstrip(".,:")  # a pytest node id names its file
        if not raw or "=" in raw or "://" in raw or raw.startswith(("/", "..", "-", "$", "<")):
            continue
        for token in expand_braces(raw):
            if "/" in token or FILE_SUFFIX.search(token):
                tokens.add(token)
    return tokens


def concrete_prefix(token: str) -> str:
    """The part of a path before its first placeholder (`<symbol>`, `*`)."""
    return re.split(r"[<*]", token, maxsplit=1)[0].rstrip("/")


def test_every_path_the_readme_names_exists() -> None:
    outputs = [p.as_posix() for p in declared_outputs(REPO / "dvc.yaml")]
    modules = {p.name for d in ("finmoirai", "stages", "bench", "tests") for p in (REPO / d).rglob("*.py")}
    stale = []
    for token in sorted(set().union(*map(path_tokens, code_texts(README))) - NOT_REPO_PATHS):
        path = concrete_prefix(token)
        if not path:
            continue
        if "/" not in path:  # a bare file name: a module, or a root file such as params.yaml
            if path.startswith("."):  # a suffix in prose ("a `.txt`")
                continue
            if path.endswith(".py") and path not in modules:
                stale.append(token)
            elif FILE_SUFFIX.search(path) and path.endswith((".yaml", ".lock", ".txt", ".toml")) and \
                    not (REPO / path).exists():
                stale.append(token)
            continue
        written = any(path == o or path.startswith(f"{o}/") or o.startswith(f"{path}/") for o in outputs)
        staged = re.sub(r"/\.(\w+)\.partial$", r"/\1", path) != path  # a stage's staging sibling
        if not (written or staged or (REPO / path).exists() or (REPO / "finmoirai" / path).exists()
                or path.startswith(".venv")):
            stale.append(token)
    assert not stale, f"README names paths that do not exist (moved or removed?): {stale}"


def test_every_make_target_the_readme_runs_exists() -> None:
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    commands = [text.split("#")[0] for text in code_texts(README)]
    named = {m for text in commands for m in re.findall(r"(?:^|[\s;&|(])make ([a-z][\w-]*)", text)}
    assert named and named <= targets, f"README runs make targets the Makefile lacks: {named - targets}"


def params_keys(params: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in params.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= params_keys(value, f"{prefix}{key}.")
    return keys


def test_every_param_the_readme_sets_exists() -> None:
    keys = params_keys(yaml.safe_load((REPO / "params.yaml").read_text()))
    groups = {p.name for p in (REPO / "conf").iterdir() if p.is_dir()}
    named, chosen = set(), set()
    for text in code_texts(README):
        for plus, key, value in re.findall(r"(?:-S|--set)\s+'?(\+?)([\w.]+)=(?!value\b)([\w.]*)", text):
            # key=value is a placeholder; +key=value adds a key to a mapping param (Hydra), which must exist
            (chosen.add((key, value)) if key in groups else named.add(key.rpartition(".")[0] if plus else key))
    assert named, "the README shows no -S/--set: the pattern above is broken"
    assert named <= keys, f"README sets params that params.yaml lacks: {sorted(named - keys)}"
    missing = sorted(f"{g}={o}" for g, o in chosen if o and not (REPO / "conf" / g / f"{o}.yaml").is_file())
    assert chosen and not missing, f"README chooses conf/ group options that do not exist: {missing}"


def bench_commands() -> list[tuple[str, list[str]]]:
    """(script, the flags it is given) for every README command line that runs a bench script."""
    commands = []
    for text in code_texts(README):
        for match in re.finditer(r"bench/(\w+\.py)([^#\n]*)", text):
            args = shlex.split(match.group(2).replace('"', "'"))
            commands.append((match.group(1), [a.split("=")[0] for a in args if a.startswith("--")]))
    return commands


@pytest.mark.parametrize("script", sorted({s for s, _ in bench_commands()}))
def test_every_benchmark_flag_the_readme_uses_is_accepted(script: str) -> None:
    helped = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert helped.returncode == 0, helped.stderr[-2000:]
    flags = {f for s, fs in bench_commands() if s == script for f in fs}
    unknown = {f for f in flags if not re.search(rf"{re.escape(f)}\b", helped.stdout)}
    assert not unknown, f"README runs bench/{script} with flags it does not accept: {sorted(unknown)}"


def test_the_checks_catch_a_stale_path() -> None:
    """The extraction sees what the README shows: a moved test file would be caught."""
    texts = code_texts("see `tests/test_reproducible.py` and\n```bash\nmake bench  # stages/{extract,lake}.py\n```\n")
    tokens = set().union(*map(path_tokens, texts))
    assert tokens == {"tests/test_reproducible.py", "stages/extract.py", "stages/lake.py"}
    assert not (REPO / "tests/test_reproducible.py").exists()


def headings() -> list[tuple[int, str]]:
    """(level, title) of the README's sections, in order (code blocks' comments left out)."""
    found = re.findall(r"^(#{2,4}) (.+)$", re.sub(r"```.*?```", "", README, flags=re.S), flags=re.M)
    return [(len(hashes), title) for hashes, title in found]


def matches(title: str, ref: str) -> bool:
    return title == ref or title.startswith((f"{ref}:", f"{ref} "))


def section_references() -> list[str]:
    """Sections the README points to (`see "Setup"`, unquoted `(see Setup)`) and that
    params.yaml's comments point to (`README: Benchmarks`)."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    quoted = re.findall(r"\bsee\s+\"([^\"]+)\"", prose)
    bare = re.findall(r"\bsee\s+([A-Z][\w ]*?)[).,;]", prose)
    from_params = re.findall(r"README: ([A-Z][\w ]*\w)", (REPO / "params.yaml").read_text())
    return [" ".join(r.split()) for r in quoted + bare + from_params]


def test_every_section_the_readme_and_params_point_to_exists() -> None:
    titles = [t for _, t in headings()]
    refs = section_references()
    assert refs, "no section reference found: the patterns above are broken"
    missing = sorted({r for r in refs if not any(matches(t, r) for t in titles)})
    assert not missing, f"sections referred to that the README does not have: {missing} (headings: {titles})"


def test_a_section_said_to_be_under_another_is_inside_it() -> None:
    """`"Forecast quality" under Benchmarks` once pointed into a section that did not hold it."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    sections = headings()
    for inner, outer in re.findall(r"\"([^\"]+)\"\s+under\s+\"?([A-Z][\w ]*\w)", prose):
        start = next((i for i, (_, t) in enumerate(sections) if matches(t, outer)), None)
        assert start is not None, f"no section {outer!r}"
        level = sections[start][0]
        end = next((i for i in range(start + 1, len(sections)) if sections[i][0] <= level), len(sections))
        assert any(matches(t, inner) for _, t in sections[start + 1:end]), f"{inner!r} is not under {outer!r}"
