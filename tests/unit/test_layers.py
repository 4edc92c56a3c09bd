"""The product's packages stand in layers, each importing only those below it, so no change to a lower
layer can need a higher one and no import cycle can form between packages. Checked over the import
graph of every module (every `import` statement, function-level ones included), read with `ast`.

And one module talks to Temporal as a client (core.gateway): no other product module starts, signals,
updates, queries, lists or counts workflows, reads their histories or manages a Schedule.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each package and what it may import besides itself. Entry points (None) may import anything.
ALLOWED: dict[str, frozenset[str] | None] = {
    "contracts": frozenset(),
    "core": frozenset({"contracts"}),
    "clients": frozenset({"contracts"}),
    "billing": frozenset({"contracts", "core", "clients"}),
    "activities": frozenset({"contracts", "core", "clients", "billing"}),
    # Workflows run in the sandbox: contracts and the activities they schedule, nothing with I/O.
    "workflows": frozenset({"contracts", "activities"}),
    "services": frozenset({"contracts", "core", "billing"}),
    "api": frozenset({"contracts", "core", "billing", "services"}),
    "simulators": frozenset({"contracts", "clients"}),
    "codec_server": frozenset({"contracts", "core"}),
    "migrations": frozenset({"contracts", "core", "billing"}),
    "worker": None,
    "devstack": None,
    "bench": None,
}

# The Temporal client calls only core.gateway makes (entry points aside: they start and drive the stack).
TEMPORAL_CALLS = frozenset(
    {
        "start_workflow",
        "execute_workflow",
        "execute_update_with_start_workflow",
        "start_update_with_start_workflow",
        "get_workflow_handle",
        "get_workflow_handle_for",
        "list_workflows",
        "count_workflows",
        "create_schedule",
        "get_schedule_handle",
        "list_schedules",
        "fetch_history_events",
        "fetch_history",
    }
)
GATEWAY = "core.gateway"


def _modules() -> Iterator[tuple[str, Path]]:
    for package in ALLOWED:
        single = ROOT / f"{package}.py"
        if single.exists():
            yield package, single
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every module `module` imports, by its absolute name (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module


def violations() -> set[tuple[str, str]]:
    found = set()
    for module, path in _modules():
        layer = module.split(".")[0]
        allowed = ALLOWED[layer]
        if allowed is None:
            continue
        for imported in _imports(module, path):
            target = imported.split(".")[0]
            if target in ALLOWED and target != layer and target not in allowed:
                found.add((module, imported))
    return found


def test_the_layers_are_complete() -> None:
    """Every product package has a rule: a new one must be placed in the layers."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} | {"worker"}
    assert packages - {"tests"} == set(ALLOWED)


def test_no_layer_imports_a_higher_one() -> None:
    assert violations() == set(), "imports against the layers (module, imported)"


def test_only_the_gateway_calls_temporal_as_a_client() -> None:
    found = []
    for module, path in _modules():
        if module == GATEWAY or ALLOWED[module.split(".")[0]] is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in TEMPORAL_CALLS:
                found.append(f"{module}:{node.lineno} {node.attr}")
    assert found == []
