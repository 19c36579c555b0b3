"""The architecture in the tree: dependencies point inward (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clearbg"

# package -> clearbg packages it may import
ALLOWED = {
    "engine": {"engine", "errors", "settings"},
    "store": {"store", "errors", "settings"},
    "accounts": {"accounts", "store", "errors", "settings"},
    "gateway": {"gateway", "engine", "store", "errors", "settings"},
    "paid": {"paid", "gateway", "accounts", "engine", "store", "errors", "settings"},
    "jobs": {"jobs", "paid", "gateway", "engine", "store", "errors", "settings"},
    "console": {"console", "accounts", "store", "errors", "settings"},
    "client": {"client", "errors"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clearbg."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("clearbg.")}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_inner_layers(package: str) -> None:
    folder = SRC / package
    if not folder.exists():
        pytest.skip(f"{package} does not exist yet")
    for path in folder.rglob("*.py"):
        bad = _imports(path) - ALLOWED[package]
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_engine_imports_no_web_or_database_library() -> None:
    for path in (SRC / "engine").rglob("*.py"):
        text = path.read_text()
        for banned in ("fastapi", "sqlalchemy", "starlette", "os.environ", "huey"):
            assert banned not in text, f"{path.name} mentions {banned}"
