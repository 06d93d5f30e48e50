"""The house's import rules, read from the code with ``ast`` (nothing is imported or run).

Floors, bottom up: the contract (``smartcity``); storage and the broker; the services; the
launcher. A module imports its own package and the floors below it, never a floor above, and
a service never imports another service except through the few doors named in ``DOORS``.
Nothing imports ``ingest`` but the launcher (its entry point) and the recorder's backfill,
and no modules import each other in a loop. README's Development section says the same.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FLOORS = {
    "smartcity": 1,
    "storage": 2,
    "broker": 2,
    "ingest": 3,
    "rules": 3,
    "api": 3,
    "simulators": 3,
    "recorder": 3,
    "grafana": 3,
    "launcher": 4,
}

# Imports between packages on one floor that the house has on purpose: (importing module,
# imported module or package), each a prefix of a dotted name.
DOORS = {
    # replay --into-influx judges every message as live ingest does
    ("recorder.backfill", "ingest.judge"),
    # the api plays the shipped recordings with the recorder's own replayer
    ("api.replaying", "recorder.replay"),
    ("api.routes.replays", "recorder"),
    # the api checks a scenario file before it commands the simulator to run it
    ("api.routes.scenarios", "simulators.scenarios"),
    # a rules rehearsal reads a recording with the recorder's reader
    ("rules.rehearsal", "recorder"),
    # the api rehearses the shipped recordings with the rules' rehearsal
    ("api.routes.rehearsals", "rules.rehearsal"),
    ("api.routes.rehearsals", "recorder"),
    ("api.models.rehearsals", "rules.rehearsal"),
}

# Who may import ingest at all: its entry point and the backfill.
INGEST_IMPORTERS = ("launcher.cli", "recorder.backfill")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in FLOORS:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every module ``name`` imports (at any depth of the file, TYPE_CHECKING blocks too),
    with its line; ``from package import module`` counts as the module."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path) -> list[str]:
    """Every import that breaks the rules, and every loop, as readable lines."""
    found = modules(root)
    known = set(found)
    graph: dict[str, set[str]] = {name: set() for name in found}
    problems: list[str] = []
    for name, path in found.items():
        mine = name.split(".")[0]
        for target, line in imports(name, path, known):
            theirs = target.split(".")[0]
            if theirs not in FLOORS:
                continue  # the standard library or a third-party package
            where = f"{path.relative_to(root)}:{line}: {name} imports {target}"
            if target in known:
                graph[name].add(target)
            if theirs == mine:
                continue
            if FLOORS[theirs] > FLOORS[mine]:
                problems.append(f"{where}, a floor above it")
            elif FLOORS[theirs] == FLOORS[mine] and not any(
                    _under(name, a) and _under(target, b) for a, b in DOORS):
                problems.append(f"{where}, beside it on its floor")
            if theirs == "ingest" and not any(_under(name, m) for m in INGEST_IMPORTERS):
                problems.append(f"{where}: only {', '.join(INGEST_IMPORTERS)} import ingest")
    problems += [f"import loop: {' -> '.join(loop)}" for loop in loops(graph)]
    return problems


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """One loop per strongly connected group of modules (Tarjan), as a path back to its
    start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_round(graph, group) for group in groups]


def _path_round(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    path = [start]
    seen = {start}
    node = start
    while True:
        nxt = min(n for n in graph[node] if n in group)
        path.append(nxt)
        if nxt in seen:
            return path
        seen.add(nxt)
        node = nxt


def test_the_house_keeps_its_floors() -> None:
    assert modules(REPO), "no modules found: the floors moved?"
    problems = violations(REPO)
    assert not problems, "\n".join(problems)


def test_every_package_has_a_floor() -> None:
    """A new top-level folder of Python code must be given its floor here (and in README)."""
    folders = {p.parent.name for p in REPO.glob("*/*.py")}
    outside = {"tests", "examples", "bench", "scripts"}
    assert folders - outside == set(FLOORS)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for package in FLOORS:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "expected"), [
    ({"smartcity/topics.py": "from launcher.cli import main\n"},
     "smartcity/topics.py:1: smartcity.topics imports launcher.cli, a floor above it"),
    ({"storage/influx.py": "import rules.engine\n", "rules/engine.py": ""},
     "storage/influx.py:1: storage.influx imports rules.engine, a floor above it"),
    ({"rules/service.py": "\n\ndef f():\n    from ingest.writer import X\n"},
     "rules/service.py:4: rules.service imports ingest.writer, beside it on its floor"),
    ({"rules/service.py": "from ingest import writer\n", "ingest/writer.py": ""},
     "rules/service.py:1: rules.service imports ingest.writer: only launcher.cli, "
     "recorder.backfill import ingest"),
    ({"api/main.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from simulators.world import World\n"},
     "api/main.py:3: api.main imports simulators.world, beside it on its floor"),
    ({"simulators/base.py": "from simulators.world import WorldState\n",
      "simulators/world.py": "from simulators import base\n"},
     "import loop: simulators.base -> simulators.world -> simulators.base"),
])
def test_a_broken_rule_is_named(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    assert expected in violations(_tree(tmp_path, files))


def test_the_doors_and_the_floors_below_are_open(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "recorder/backfill.py": "from ingest.judge import Judge\n",
        "launcher/cli.py": "from ingest.service import main\nimport api.main\n",
        "rules/service.py": "from storage.outbox import Outbox\nfrom smartcity import topics\n",
        "storage/outbox.py": "from smartcity.models import format_ts\nimport os\n",
    })
    assert violations(root) == []
