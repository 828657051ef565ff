"""The shape of the code: no import cycles, no module too long. (ruff, mypy --strict and
the import contract run from `.ci/run`, before pytest.)"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_cycles() -> None:
    """No module of localllm imports, through others, one that imports it (imports made
    only for type checking aside: they do not run)."""
    import grimp

    graph = grimp.build_graph("localllm", exclude_type_checking_imports=True)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph.find_modules_directly_imported_by(module)):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = [stack.pop()]
            while component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_module_over_500_lines() -> None:
    big = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "localllm").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert big == {}
