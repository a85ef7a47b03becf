"""The house shows its pipeline: stage packages whose imports point one way, no import cycle
(lazy imports included), no module over 600 lines, a handful of top-level modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "derive"
STAGES = ["model", "language", "symbolic", "numeric", "catalog", "usercode", "run", "present"]
BASE = {"errors", "bounded", "version"}          # usable from every stage
TOP = ["testing", "strategies", "plugin"]        # on top of the stages, in this order
MAX_LINES = 600


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every derive module `name` imports, at the top or inside a function."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            candidates = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            while c and c not in known:
                c = c.rpartition(".")[0]
            own_submodule = path.name == "__init__.py" and c.startswith(name + ".")  # a registry filling itself
            if c and c != name and c.startswith("derive") and not own_submodule:
                found.add(c)
    return found


def rank(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return len(STAGES) + len(TOP)     # derive itself re-exports everything
    if parts[1] in BASE:
        return -1
    if parts[1] in STAGES:
        return STAGES.index(parts[1])
    return len(STAGES) + TOP.index(parts[1])


def test_imports_between_stages_point_one_way() -> None:
    known = modules()
    upward = [(m, t) for m, p in known.items() for t in imports(m, p, known)
              if rank(t) > rank(m) or (rank(t) == rank(m) and rank(m) < 0)]
    assert upward == [], upward


def test_no_import_cycle_lazy_imports_included() -> None:
    known = modules()
    graph = {m: imports(m, p, known) for m, p in known.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if t == "derive" or (m == "derive"):
                continue  # the package re-exports: derive -> anything is its public surface
            if state.get(t) == 1:
                cycle.extend(path[path.index(t):] + [t] if t in path else [m, t])
                return
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state and not cycle:
            visit(m, [m])
    assert cycle == []


def test_no_module_over_600_lines_and_few_top_level_modules() -> None:
    known = modules()
    long = {m: n for m, p in known.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
    top = sorted(m for m, p in known.items() if m.count(".") == 1 and p.name != "__init__.py")
    assert top == sorted(f"derive.{n}" for n in (*BASE, *TOP, "__main__"))
    assert {p.parent.name for p in ROOT.glob("*/__init__.py")} == set(STAGES)
