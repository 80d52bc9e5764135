"""clusterd's modules import each other without cycles (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "clusterd"


def imports_of(path: Path) -> set[str]:
    """The clusterd modules a module imports, by relative import anywhere in it."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - node.level]
            if node.module:
                found.add(".".join((*base, *node.module.split("."))))
            else:
                found |= {".".join((*base, alias.name)) for alias in node.names}
    return found


def test_clusterd_has_no_import_cycle():
    modules = {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target):] + [target] if target in trail else [name, target])
            elif target not in state:
                visit(target, trail + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == [], cycles
    assert "links" in graph and "daemon" not in graph["links"], "a link knows its owner only as a LinkOwner"


def test_importing_clusterd_runs_no_compiler_to_look_for_liboqs(tmp_path: Path):
    """asyncssh alone runs gcc (or cc) when liboqs is not in the linker cache; clusterd asks only the cache."""
    import os
    import subprocess
    import sys

    marker = tmp_path / "compiler ran"
    for name in ("gcc", "cc", "ld"):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\necho {name} >> '{marker}'\nexit 1\n")
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ.get('PATH', '')}"}

    def ran(code: str) -> str:
        marker.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
        return marker.read_text() if marker.exists() else ""

    assert ran("import asyncssh") != "", "the probe this test stops (asyncssh changed: the test is stale)"
    assert ran("import clusterd.cli, asyncssh.crypto.pq as pq, ctypes.util as u; assert u.find_library.__module__ "
               "== 'ctypes.util'") == ""
