"""The layer order, enforced: a module may import only from its own unit or a lower layer, and the units'
import graph has no cycle. Read statically (every import statement, at any depth, lazy ones included), so
the test needs no framework and fails on the first new edge against the order.

A unit is a package of frameduel, or one of the leaf modules named in LAYERS (shared constants that sit
below the package they live in: export/contract.py, which the frameworks' exporters name). docs/layers.md
is this table, drawn.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "frameduel"

# Lowest first. A unit may import units of lower layers only (and itself).
LAYERS: list[tuple[str, ...]] = [
    ("errors",),  # the one exception users can cause
    ("spec", "stats", "environment", "datasets"),  # the vocabulary, statistics, the machine, shipped data
    ("store", "doctor", "workloads", "browser", "export.manifest"),  # results, readings, model definitions, tools
    ("checkpoints", "v2"),  # Hugging Face checkpoints read into configs; the KServe v2 wire format
    ("export.contract",),  # what every exporter and runtime agrees on: tensor names, opsets
    ("frameworks",),  # one backend per framework, behind one contract
    ("jobs",),  # processes: one job protocol, fork servers, data-parallel groups
    ("training",),  # training loops run inside jobs (the digits fitting)
    ("runner", "parity", "accuracy", "export", "llm"),  # the tracks, each on its own
    ("sweep", "serve", "loadgen"),  # built on tracks: trials of accuracy runs; serving artefacts; load on a server
    ("cluster",),  # the tracks' jobs on a Ray cluster
    ("analysis",),  # statistics of a run, verdicts, added processes: compute, never print
    ("report",),  # documents, tables, plots, claims and advice
    ("cli_help",),  # the help texts of the command line's longer options (cli.py keeps their declarations)
    ("cli_base",),  # the typer app, consoles, one-line user errors, shared options
    ("cli_serving",),  # serve and loadtest, registered on the app
    ("cli",),  # parse, call one function, print
]
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}
TOP_LEVEL = {"frameduel": "frameduel"}  # frameduel/__init__.py (the version) sits below everything


def unit_of(module: str) -> str:
    """'frameduel.export.contract' -> 'export.contract' (a leaf unit); 'frameduel.runner.plan' -> 'runner'."""
    parts = module.split(".")[1:]
    if not parts:
        return "frameduel"
    dotted = ".".join(parts[:2])
    return dotted if dotted in LAYER_OF else parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every frameduel module (or package) this file imports, wherever the import statement sits."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("frameduel"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("frameduel"))
    return found


def unit_edges() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> the modules where that edge is, for units that differ."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py") if "grpc_v2" not in path.parts}
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, path in modules.items():
        for target in imports(path):
            while target not in modules and "." in target:  # "frameduel.x.y.Name" -> the module frameduel.x.y
                target = target.rsplit(".", 1)[0]
            if target in modules and unit_of(target) != unit_of(name):
                edges[(unit_of(name), unit_of(target))].append(name)
    return edges


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(path)) for path in PACKAGE.rglob("*.py") if "grpc_v2" not in path.parts}
    assert units - set(LAYER_OF) - set(TOP_LEVEL) == set(), "give each new package a layer in LAYERS"


def test_imports_follow_the_layer_order():
    against = [f"{a} (layer {LAYER_OF[a]}) imports {b} (layer {LAYER_OF[b]}) in {', '.join(sorted(set(where)))}"
               for (a, b), where in sorted(unit_edges().items())
               if b not in TOP_LEVEL and LAYER_OF.get(a, -1) <= LAYER_OF.get(b, -1)]
    assert against == [], "\n".join(against)


def test_the_unit_graph_has_no_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in unit_edges():
        graph[a].add(b)
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            raise AssertionError(" -> ".join(cycle))


def test_the_layer_picture_in_docs_is_this_table():
    drawn = (SRC.parent / "docs" / "layers.md").read_text()
    for index, units in enumerate(LAYERS):
        assert f"| {index} | {', '.join(units)} |" in drawn, f"docs/layers.md lacks layer {index}: {units}"
