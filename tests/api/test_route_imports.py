"""Routes parse requests and render answers; who pays and the credits are the paid-call
service's (``clearbg.paid``). The admin API is the exception by design: managing applications,
keys and credits is its job, and no call it serves is paid."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTES = Path(__file__).resolve().parents[2] / "src" / "clearbg" / "api" / "routes"
FORBIDDEN = ("credits", "keys", "anonymous")
ADMIN = ROUTES / "admin.py"


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


@pytest.mark.parametrize("path", sorted(set(ROUTES.glob("*.py")) - {ADMIN}), ids=lambda p: p.name)
def test_a_route_does_not_touch_credits_or_keys(path: Path) -> None:
    bad = sorted(
        name
        for name in _imported(path)
        if name.startswith("clearbg.") and name.rsplit(".", 1)[-1] in FORBIDDEN
    )
    assert not bad, f"{path.name} imports {bad}: go through clearbg.paid"
