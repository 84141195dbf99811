"""The layers of style.md, read from the source: faces → rules → base, never upwards or sideways.

Reads the import statements (relative ones resolved), so a new module is checked without being
listed here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "opmail"
RULES = sorted((PACKAGE / "rules").glob("*.py"))
BASE = [PACKAGE / "models.py", PACKAGE / "passwords.py", PACKAGE / "addresses.py"]
FACES = {"opmail.admin", "opmail.sync", "opmail.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every dotted name ``path`` imports, e.g. ``opmail.rules.core`` and ``flask.request``."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")  # flask.request without an import of its own
    return names


def under(name: str, packages: set[str]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_the_rules_package_exists_and_is_found():
    assert {path.stem for path in RULES} >= {"core", "accounts", "domains", "sync", "imports"}
    assert "opmail.rules.core" in imported_names(PACKAGE / "rules" / "accounts.py")


@pytest.mark.parametrize("path", RULES, ids=lambda path: path.stem)
def test_rules_read_no_request_and_import_no_face(path):
    names = imported_names(path)
    assert "flask.request" not in names
    assert not [name for name in names if under(name, FACES)]


@pytest.mark.parametrize("path", BASE, ids=lambda path: path.stem)
def test_the_base_imports_nothing_from_above(path):
    assert not [name for name in imported_names(path) if under(name, FACES | {"opmail.rules"})]


@pytest.mark.parametrize(
    "path",
    [*(PACKAGE / "admin").glob("*.py"), PACKAGE / "sync.py", PACKAGE / "cli.py"],
    ids=module_name,
)
def test_faces_never_import_each_other(path):
    own = next(face for face in FACES if under(module_name(path), {face}))
    assert not [name for name in imported_names(path) if under(name, FACES - {own})]
