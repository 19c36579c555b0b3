"""/v1/removebg takes the photo as a file part, as base64 (``image_file_b64``) or as a URL
(``image_url``) fetched through the gateway's SSRF guard; exactly one of them."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from clearbg.engine import Engine
from tests.api.conftest import Server, start_server
from tests.api.photo_host import photo_host
from tests.conftest import PHOTOS

CAR = (PHOTOS / "car-1.jpg").read_bytes()


@pytest.fixture(scope="module")
def photos() -> Iterator[str]:
    with photo_host() as url:
        yield url


@pytest.fixture(scope="module")
def trusting(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Server]:
    """A server whose fetcher may reach 127.0.0.1 (where the photo host is)."""
    srv, stop = start_server(
        tmp_path_factory.mktemp("sources"),
        api_engine,
        gateway={"fetch_allow": ["127.0.0.1/32"]},
    )
    yield srv
    stop()


def test_the_three_ways_give_the_same_cutout(trusting: Server, photos: str) -> None:
    key = trusting.make_key(credits_=5)
    with trusting.client(key) as c:
        by_file = c.post("/v1/removebg", files={"image": ("car.jpg", CAR)})
        by_b64 = c.post("/v1/removebg", data={"image_file_b64": base64.b64encode(CAR).decode()})
        data_url = "data:image/jpeg;base64," + base64.b64encode(CAR).decode()
        by_data_url = c.post("/v1/removebg", data={"image_file_b64": data_url})
        by_url = c.post("/v1/removebg", data={"image_url": f"{photos}/car-1.jpg"})
    for resp in (by_file, by_b64, by_data_url, by_url):
        assert resp.status_code == 200, resp.text
        assert resp.content == by_file.content
    assert trusting.balance(key) == 1


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"image_file_b64": "not base64 !!"}, "invalid_base64"),
        ({"image_file_b64": "http://example.com/a.jpg"}, "invalid_base64"),
        ({"image_url": "ftp://example.com/a.jpg"}, "url_not_allowed"),
        ({"image_url": "http://127.0.0.1:9/a.jpg", "image_file_b64": "AAAA"}, "image_conflict"),
        ({"size": "preview"}, "missing_image"),
    ],
)
def test_bad_sources_are_400_and_free(trusting: Server, form: dict[str, str], code: str) -> None:
    key = trusting.make_key(credits_=2)
    with trusting.client(key) as c:
        resp = c.post("/v1/removebg", data=form)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code
    assert trusting.balance(key) == 2


def test_a_missing_url_is_400(trusting: Server, photos: str) -> None:
    with trusting.client(trusting.make_key()) as c:
        resp = c.post("/v1/removebg", data={"image_url": f"{photos}/no-such.jpg"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "url_fetch_failed"


def test_a_private_address_is_refused_by_default(server: Server, photos: str) -> None:
    key = server.make_key(credits_=2)
    with server.client(key) as c:
        resp = c.post("/v1/removebg", data={"image_url": f"{photos}/car-1.jpg"})
        meta = c.post("/v1/removebg", data={"image_url": "http://169.254.169.254/latest/"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "url_not_allowed"
    assert meta.json()["code"] == "url_not_allowed"
    assert server.balance(key) == 2
