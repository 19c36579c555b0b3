"""The architecture in the tree: dependencies point inward (STYLE.md).

Every module under src/clearbg is parsed with ``ast``; each import in it (at the top, inside a
function, relative, ``from clearbg import X``, ``import clearbg.x.y``) is resolved to the layer it
lands in, and the layer of the importing module must allow it in LAYERS.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clearbg"

# The rule, `cli, api, console -> gateway, jobs -> engine, store -> errors, settings`, with
# `client` importing only `errors` and `__init__` (the public facade: clearbg.Engine, ...)
# re-exporting what a user imports. Layer -> the other layers its modules may import.
# The middle tier is ordered too: jobs run each image through `paid` (the one paid-call
# service), which uses `accounts` (applications, keys, credits, users, usage) and `gateway`
# (the Monitor gateway's inputs, URL fetcher, upstreams). Within the outer tier cli serves the
# api and the api mounts the console; the outer tier may read the facade (its __version__).
# A new top-level package or module under src/clearbg must get a row here, or
# test_every_module_has_a_layer fails: a service package goes in the middle tier and is added
# to the rows of the outer layers that use it; a module every layer may use goes in the
# innermost tier next to errors and settings.
_INNER = {"paid", "accounts", "gateway", "jobs", "engine", "store", "errors", "settings"}
LAYERS: dict[str, set[str]] = {
    "cli": {"__init__", "api", "client", *_INNER},
    "api": {"__init__", "console", *_INNER},
    "console": {"__init__", *_INNER},
    "__init__": {"engine", "client", "errors"},
    "jobs": {"paid", "accounts", "gateway", "engine", "store", "errors", "settings"},
    "paid": {"accounts", "gateway", "engine", "store", "errors", "settings"},
    "accounts": {"store", "errors", "settings"},
    "gateway": {"engine", "store", "errors", "settings"},
    "engine": {"errors", "settings"},
    "store": {"errors", "settings"},
    "client": {"errors"},
    "errors": set(),
    "settings": set(),
}


def layer_of(module: str) -> str:
    """The layer of a dotted module name: ``clearbg.engine.png`` -> ``engine``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    """``src/clearbg/engine/png.py`` -> ``clearbg.engine.png``; an __init__.py is its package."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


@cache
def facade_names() -> dict[str, str]:
    """What ``from clearbg import X`` means for a name the facade re-exports: X -> its module."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    return {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
        for alias in node.names
    }


def _base(node: ast.ImportFrom, module: str, package: bool) -> str:
    """The absolute module an ``ImportFrom`` names, its dots resolved from ``module``."""
    if node.level == 0:
        return node.module or ""
    anchor = module.split(".")
    if not package:
        anchor = anchor[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def imported_modules(source: str, module: str, package: bool = False) -> set[str]:
    """Every clearbg module that ``source`` (the text of ``module``) imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "clearbg"}
        elif isinstance(node, ast.ImportFrom):
            base = _base(node, module, package)
            if base.split(".")[0] != "clearbg":
                continue
            if base != "clearbg":
                found.add(base)
                continue
            # `from clearbg import X`: X is a layer, a name the facade re-exports, or the facade
            for alias in node.names:
                if (SRC / alias.name).is_dir() or (SRC / f"{alias.name}.py").exists():
                    found.add(f"clearbg.{alias.name}")
                else:
                    found.add(facade_names().get(alias.name, "clearbg"))
    return found


def modules_on_disk() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def upward_imports(source: str, module: str, package: bool = False) -> list[str]:
    """The imports in ``source`` (the text of ``module``) that its layer does not allow."""
    layer = layer_of(module)
    allowed = LAYERS.get(layer, set()) | {layer}
    imported = imported_modules(source, module, package)
    return [f"{module} -> {m}" for m in sorted(imported) if layer_of(m) not in allowed]


@pytest.mark.parametrize("layer", sorted({layer_of(module_name(p)) for p in modules_on_disk()}))
def test_layer_imports_only_inner_layers(layer: str) -> None:
    bad = [
        line
        for path in modules_on_disk()
        if layer_of(module_name(path)) == layer
        for line in upward_imports(path.read_text(), module_name(path), is_package(path))
    ]
    allowed = sorted(LAYERS.get(layer, set()))
    assert not bad, f"{layer} may import only {allowed}:\n" + "\n".join(bad)


def test_every_module_has_a_layer() -> None:
    undeclared = sorted({layer_of(module_name(p)) for p in modules_on_disk()} - set(LAYERS))
    assert not undeclared, f"give {undeclared} a row in tests/test_layers.py LAYERS"


def test_layers_point_inward() -> None:
    """The table names only declared layers and has no cycle, so no row can allow its way out."""
    unknown = {m for allowed in LAYERS.values() for m in allowed} - set(LAYERS)
    assert not unknown, f"LAYERS allows undeclared layers {sorted(unknown)}"

    def reach(path: tuple[str, ...]) -> None:
        for inner in sorted(LAYERS[path[-1]]):
            assert inner not in path, f"LAYERS has a cycle: {' -> '.join([*path, inner])}"
            reach((*path, inner))

    for layer in LAYERS:
        reach((layer,))


@pytest.mark.parametrize(
    ("source", "module", "package", "expected"),
    [
        ("from clearbg.api.app import create_app", "clearbg.engine.png", False, "clearbg.api.app"),
        ("import clearbg.api.app", "clearbg.engine.png", False, "clearbg.api.app"),
        ("from clearbg import api", "clearbg.engine.png", False, "clearbg.api"),
        ("from clearbg import settings", "clearbg.engine.png", False, "clearbg.settings"),
        ("from clearbg import Engine", "clearbg.store.db", False, "clearbg.engine"),
        ("from clearbg import remove", "clearbg.store.db", False, "clearbg"),
        ("from .. import api", "clearbg.engine.png", False, "clearbg.api"),
        ("from ..api.app import create_app", "clearbg.engine.png", False, "clearbg.api.app"),
        ("from . import png", "clearbg.engine.pipeline", False, "clearbg.engine"),
        ("from .png import encode_png", "clearbg.engine", True, "clearbg.engine.png"),
        ("from .. import errors", "clearbg.engine", True, "clearbg.errors"),
        ("def f():\n    from clearbg.jobs import queue", "clearbg.store.db", False, "clearbg.jobs"),
        ("if True:\n    import clearbg.gateway", "clearbg.store.db", False, "clearbg.gateway"),
    ],
)
def test_imports_are_resolved(source: str, module: str, package: bool, expected: str) -> None:
    assert imported_modules(source, module, package) == {expected}


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from clearbg.api import app", "clearbg.engine", ["clearbg.engine -> clearbg.api"]),
        ("from ..cli import serve", "clearbg.store.db", ["clearbg.store.db -> clearbg.cli"]),
        ("from clearbg import Engine", "clearbg.client", ["clearbg.client -> clearbg.engine"]),
        ("from clearbg import errors, engine", "clearbg.gateway.keys", []),
        ("from . import png", "clearbg.engine.pipeline", []),
    ],
)
def test_upward_imports_are_reported(source: str, module: str, expected: list[str]) -> None:
    assert upward_imports(source, module) == expected


def test_engine_imports_no_web_or_database_library() -> None:
    for path in (SRC / "engine").rglob("*.py"):
        text = path.read_text()
        for banned in ("fastapi", "sqlalchemy", "starlette", "os.environ", "huey"):
            assert banned not in text, f"{path.name} mentions {banned}"


def test_client_imports_nothing_of_the_server() -> None:
    """The SDK runs on a laptop without the model: no engine, web or database library."""
    for path in (SRC / "client").rglob("*.py"):
        text = path.read_text()
        for banned in ("fastapi", "sqlalchemy", "starlette", "onnxruntime", "numpy", "huey"):
            assert banned not in text, f"{path.name} mentions {banned}"
