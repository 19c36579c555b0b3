"""The scale-out suite: a real PostgreSQL, Redis and S3 server (SeaweedFS), ``clearbg migrate``,
two API processes (``serve --workers 2``) and two ``clearbg worker`` processes, all started
here and stopped at the end. Only ``make test-scale`` runs it (CLEARBG_SCALE_TESTS=1): plain
``pytest`` needs none of these servers."""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.scale.stack import ADMIN_TOKEN, Stack, free_port, servers

if not os.environ.get("CLEARBG_SCALE_TESTS"):
    collect_ignore_glob = ["test_*.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/scale/" in item.nodeid:
            item.add_marker(pytest.mark.scale)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # the servers' logs and data stay in pytest's temporary folder (its last three runs)
    with servers(tmp_path_factory.mktemp("stack")) as running:
        running.start_api(workers=2)
        running.worker_metrics = free_port()
        running.start_worker("worker-1", metrics_port=running.worker_metrics)
        running.start_worker("worker-2")
        yield running


@pytest.fixture(scope="session")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        yield client


def new_app(admin: httpx.Client, **fields: object) -> dict[str, object]:
    answer = admin.post(
        "/admin/applications", json={"name": "app-" + secrets.token_hex(4), **fields}
    )
    assert answer.status_code == 201, answer.text
    app: dict[str, object] = answer.json()
    return app


def new_key(admin: httpx.Client, app: dict[str, object], credits: float) -> str:
    answer = admin.post(f"/admin/applications/{app['id']}/keys", json={"credits": credits})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["secret"])


def small_jpeg(seed: int = 0, size: int = 96) -> bytes:
    im = Image.new("RGB", (size, size), (20 + seed % 200, 120, 200))
    im.paste((240, 200, 40), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()
