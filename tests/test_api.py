"""The public engine API: ``confmerge``'s ``__all__`` is what the daemon (and any other program) may use."""

from __future__ import annotations

import ast
import importlib.resources
import tomllib
from pathlib import Path

import confmerge

ROOT = Path(__file__).resolve().parents[1]


def _confmerge_imports(path: Path) -> list[tuple[int, str]]:
    """Every import of confmerge in a module (also inside functions), as ``(line, what)``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "confmerge"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None \
                and node.module.split(".")[0] == "confmerge":
            found += [(node.lineno, f"{node.module}:{alias.name}") for alias in node.names]
    return found


def test_clusterd_imports_only_the_public_api():
    modules = sorted((ROOT / "clusterd").rglob("*.py"))
    assert modules
    import confmerge.web

    public = {"confmerge": confmerge.__all__, "confmerge.web": confmerge.web.__all__}
    wrong = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in modules for line, what in _confmerge_imports(path)
             if what.split(":", 1)[0] not in public or what.split(":", 1)[-1] not in public[what.split(":", 1)[0]]]
    assert wrong == [], ("clusterd must import the engine only as `from confmerge import NAME` (NAME in __all__), "
                         "and the web application it serves as `from confmerge.web import NAME` (likewise)")


def test_the_wall_test_sees_a_submodule_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from confmerge.files import read_text\nimport confmerge.diff\nfrom confmerge import parse\n")
    assert sorted(_confmerge_imports(module)) == [(2, "confmerge.files:read_text"), (3, "confmerge.diff"), (4, "confmerge:parse")]


def test_every_public_name_exists_and_is_the_function_not_a_module():
    missing = [name for name in confmerge.__all__ if not hasattr(confmerge, name)]
    assert missing == []
    for name in ("diff", "merge", "render", "parse"):
        assert callable(getattr(confmerge, name)), name


def test_the_package_says_it_is_typed():
    assert (importlib.resources.files("confmerge") / "py.typed").is_file()
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in setup["confmerge"]
