"""The house keeps its shape: imports point down the layers, no cycles, no oversized modules.

Every import counts, lazy ones inside functions included: a lazy import hides a dependency from
start-up time, not from the design.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "ui", "tools")
MAX_LINES = 500

# Higher layers may import lower ones, never the reverse.
LAYERS = {
    "assistant": 0,  # the package docstring and version only
    "assistant.types": 0,
    "assistant.errors": 0,
    "assistant.paths": 0,
    "assistant.settings": 0,
    "assistant.library": 1,
    "assistant.engine": 2,
    "assistant.conversation": 3,
    "assistant.documents": 3,
    "ui": 4,
    "tools": 4,
    "assistant.server": 4,
    "assistant.cli": 5,
    "assistant.__main__": 5,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `module` imports (a name imported from a package counts as its
    submodule when one exists by that name, else as the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                found.add(target)
    # `from a.b import c` also lists `a.b`: keep the package only when nothing below it matched
    return {t for t in found if not any(o.startswith(t + ".") for o in found)}


def import_graph() -> dict[str, set[str]]:
    known = all_modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_imports_point_down_the_layers():
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(source)
    )
    assert upward == []


def test_only_the_cli_reaches_ui_and_tools():
    reach = sorted(
        f"{source} -> {target}"
        for source, targets in import_graph().items()
        if source.startswith("assistant") and not source.startswith(("assistant.cli",))
        for target in targets
        if target.split(".")[0] in {"ui", "tools"}
    )
    assert reach == []


def test_no_module_over_500_lines():
    long = {
        name: n
        for name, path in all_modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_core_package_names_its_entry_points():
    for package in ("engine", "conversation", "library", "documents", "cli"):
        init = ROOT / "assistant" / package / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), init


def test_the_checker_sees_cycles_and_upward_imports():
    """The rules above would fail on a violation (a checker that finds nothing proves little)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("assistant.engine.runtime") > layer("assistant.library.fit")
    graph = import_graph()
    assert "assistant.engine.runtime" in graph["assistant.conversation.session"]
    assert "assistant.types" in graph["assistant.engine.runtime"]
    assert defaultdict(set, graph)["ui.main_window"], "ui modules are walked too"
