"""The package's shape: one import name, no import cycles, dependencies pointing one way.

Read from the source with ``ast`` (every import, including those inside functions, which is
where cycles used to hide), so nothing here depends on what happens to be imported already.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder → the package it installs as (pyproject.toml, [tool.setuptools.package-dir]).
PACKAGES = {"pathwise": "pathwise", "agents": "pathwise.agents",
            "policies": "pathwise.policies", "envs": "pathwise.envs",
            "configs": "pathwise.configs"}
BARE = ("agents", "policies", "envs", "configs")

# What each part may import from pathwise (besides itself): framework -> agents -> policies,
# envs; the leaves errors and spaces import nothing from pathwise.
ALLOWED = {
    "pathwise.errors": (),
    "pathwise.spaces": (),
    "pathwise.policies": ("pathwise.errors", "pathwise.spaces"),
    "pathwise.envs": ("pathwise.errors", "pathwise.spaces"),
    "pathwise.agents": ("pathwise.errors", "pathwise.spaces", "pathwise.policies",
                        "pathwise.envs"),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    package = PACKAGES[rel.parts[0]]
    parts = [package, *rel.parts[1:-1]]
    if rel.name != "__init__.py":
        parts.append(rel.stem)
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py"))


MODULES = {module_name(p): p for p in source_files()}


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in the file, resolved to pathwise modules where
    ``from pkg import name`` names a submodule."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else base))
    return found


def part_of(module: str) -> str:
    for prefix in ALLOWED:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return module


def test_the_sources_are_found():
    assert {"pathwise", "pathwise.agents.sac", "pathwise.policies.estimators",
            "pathwise.envs.make", "pathwise.training.loop", "pathwise.cli"} <= set(MODULES)


def test_nothing_imports_the_bare_folder_names():
    """openai-agents installs `agents`; other distributions own `envs`, `configs` and
    `policies`: only `pathwise.*` is ours."""
    files = [p for p in ROOT.rglob("*.py")
             if not any(part.startswith(".") or part in ("build", "runs") for part in
                        p.relative_to(ROOT).parts)]
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}"
           for p in files for line, name in _raw_imports(p)
           if name.split(".")[0] in BARE]
    assert not bad, bad


def _raw_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module


@pytest.mark.parametrize("part", list(ALLOWED))
def test_dependencies_point_one_way(part):
    bad = []
    for name, path in MODULES.items():
        if part_of(name) != part:
            continue
        for line, target in imports(path):
            if not target.startswith("pathwise"):
                continue
            target_part = part_of(target)
            if target_part != part and target_part not in ALLOWED[part]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, bad


def test_no_import_cycles():
    graph = {name: {t for _, t in imports(path) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    # The package root's public names are imported lazily on first use (PEP 562), by name
    # only: that is not a dependency of the modules it re-exports.
    graph["pathwise"] = set()
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_submodule_imports_count_as_dependencies():
    """`from pathwise.training import checkpoint` depends on pathwise.training.checkpoint."""
    loop = imports(MODULES["pathwise.training.loop"])
    assert "pathwise.training.checkpoint" in {t for _, t in loop}
