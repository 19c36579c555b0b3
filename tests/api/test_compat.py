"""remove.bg's API v1.0 at /v1.0 over real HTTP: its fields, its answers (image or JSON, with
its headers), its error shape and statuses, and the charge through the one paid path."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from clearbg.engine import Engine
from tests.api.conftest import Server, start_server
from tests.api.photo_host import photo_host
from tests.conftest import PHOTOS

CAR = (PHOTOS / "car-1.jpg").read_bytes()


def small(width: int = 240) -> bytes:
    buf = io.BytesIO()
    with Image.open(io.BytesIO(CAR)) as im:
        im.resize((width, width * im.height // im.width)).save(buf, "JPEG")
    return buf.getvalue()


def post(
    srv: Server, key: str | None, files: dict[str, bytes] | None = None, **fields: str
) -> httpx.Response:
    headers = {"X-Api-Key": key} if key is not None else {}
    accept = fields.pop("accept", None)
    if accept:
        headers["Accept"] = accept
    parts = {name: (name + ".jpg", data) for name, data in (files or {}).items()}
    return httpx.post(
        srv.url + "/v1.0/removebg", headers=headers, files=parts or None, data=fields, timeout=60
    )


def image(resp: httpx.Response) -> Image.Image:
    assert resp.status_code == 200, resp.text
    return Image.open(io.BytesIO(resp.content))


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"errors"}
    (err,) = body["errors"]
    assert err["code"] == code
    assert err["title"] and err["detail"]


@pytest.fixture(scope="module")
def photos() -> Iterator[str]:
    with photo_host() as url:
        yield url


@pytest.fixture(scope="module")
def compat(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Server]:
    srv, stop = start_server(
        tmp_path_factory.mktemp("compat"),
        api_engine,
        gateway={"fetch_allow": ["127.0.0.1/32"]},
        app={"rate": 30},
    )
    yield srv
    stop()


def test_an_upload_gives_a_png_with_removebg_headers(compat: Server) -> None:
    key = compat.make_key(credits_=5)
    resp = post(compat, key, {"image_file": CAR}, size="regular")
    im = image(resp)
    assert resp.headers["content-type"] == "image/png"
    assert im.mode == "RGBA"
    assert im.width * im.height <= 250_000
    h = resp.headers
    assert (int(h["X-Width"]), int(h["X-Height"])) == im.size
    assert h["X-Credits-Charged"] == "0.25"
    assert int(h["X-Foreground-Width"]) > 0
    assert h["X-RateLimit-Limit"] == "30"
    assert compat.balance(key) == 4.75


def test_a_json_answer_decodes_to_the_same_image(compat: Server) -> None:
    key = compat.make_key()
    plain = post(compat, key, {"image_file": small()}, size="full")
    as_json = post(compat, key, {"image_file": small()}, size="full", accept="application/json")
    assert as_json.headers["content-type"] == "application/json"
    data = as_json.json()["data"]
    assert base64.b64decode(data["result_b64"]) == plain.content
    assert data["foreground_width"] == int(plain.headers["X-Foreground-Width"])
    assert data["foreground_top"] == int(plain.headers["X-Foreground-Top"])


def test_base64_in_a_json_body_and_a_url(compat: Server, photos: str) -> None:
    key = compat.make_key()
    by_json = httpx.post(
        compat.url + "/v1.0/removebg",
        headers={"X-Api-Key": key},
        json={"image_file_b64": base64.b64encode(small()).decode(), "size": "auto"},
    )
    by_url = post(compat, key, image_url=f"{photos}/car-1.jpg", size="medium", crop="true")
    with Image.open(io.BytesIO(small())) as src:
        assert image(by_json).size == src.size
    im = image(by_url)
    assert im.width * im.height <= 1_500_000
    assert by_url.headers["X-Credits-Charged"] == "1"


@pytest.mark.parametrize(
    ("key_kind", "status", "code"),
    [("wrong", 403, "invalid_api_key"), ("none", 403, "missing_api_key")],
)
def test_a_bad_key_is_403_in_removebg_shape(
    compat: Server, key_kind: str, status: int, code: str
) -> None:
    key = "cbg_wrong_key" if key_kind == "wrong" else None
    assert_error(post(compat, key, {"image_file": small()}), status, code)
    resp = httpx.get(compat.url + "/v1.0/account", headers={"X-Api-Key": "cbg_nope"})
    assert_error(resp, 403, "invalid_api_key")


def test_no_credits_is_402_and_v1_keeps_its_own_shape(compat: Server) -> None:
    key = compat.make_key(credits_=0)
    assert_error(post(compat, key, {"image_file": small()}), 402, "insufficient_credits")
    v1 = httpx.post(
        compat.url + "/v1/removebg", headers={"X-Api-Key": key}, files={"image": small()}
    )
    assert v1.json()["code"] == "insufficient_credits"
    assert "errors" not in v1.json()


@pytest.mark.parametrize(
    ("fields", "option"),
    [
        ({"format": "zip"}, "format"),
        ({"type": "person"}, "type"),
        ({"add_shadow": "true"}, "add_shadow"),
        ({"semitransparency": "false"}, "semitransparency"),
        ({"roi": "10% 10% 90% 90%", "crop": "true"}, "roi"),
        ({"roi": "10% 10%"}, "roi"),
        ({"size": "huge"}, "size"),
        ({"scale": "5%"}, "scale"),
        ({"position": "left"}, "position"),
    ],
)
def test_what_clearbg_cannot_honour_is_a_clear_400(
    compat: Server, fields: dict[str, str], option: str
) -> None:
    key = compat.make_key(credits_=2)
    resp = post(compat, key, {"image_file": small()}, **fields)
    assert_error(resp, 400, "invalid_option")
    assert resp.json()["errors"][0]["detail"].startswith(option)
    assert compat.balance(key) == 2


def test_remove_bg_defaults_of_unsupported_fields_are_accepted(compat: Server) -> None:
    key = compat.make_key()
    resp = post(
        compat,
        key,
        {"image_file": small()},
        type="auto",
        add_shadow="false",
        semitransparency="true",
        roi="0% 0% 100% 100%",
        format="png",
    )
    assert image(resp).mode == "RGBA"


def test_a_missing_image_is_400(compat: Server) -> None:
    assert_error(post(compat, compat.make_key(), size="auto"), 400, "missing_image")


def test_bg_color_auto_format_is_jpeg(compat: Server) -> None:
    resp = post(compat, compat.make_key(), {"image_file": small()}, bg_color="00ff00")
    assert resp.headers["content-type"] == "image/jpeg"
    assert image(resp).mode == "RGB"


def test_a_background_photo_is_laid_under_the_subject(compat: Server) -> None:
    red = io.BytesIO()
    Image.new("RGB", (50, 30), (255, 0, 0)).save(red, "PNG")
    resp = post(compat, compat.make_key(), {"image_file": small(), "bg_image_file": red.getvalue()})
    assert resp.headers["content-type"] == "image/jpeg"  # auto: no transparency left
    rgb = np.asarray(image(resp).convert("RGB")).astype(int)
    corner = rgb[:5, :5].reshape(-1, 3).mean(axis=0)
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60
    with Image.open(io.BytesIO(small())) as src:
        assert image(resp).size == src.size


def test_scale_and_position_move_the_subject(compat: Server) -> None:
    key = compat.make_key()
    resp = post(compat, key, {"image_file": small()}, size="full", scale="50%", position="0% 100%")
    alpha = np.asarray(image(resp))[:, :, 3]
    rows, cols = np.flatnonzero(alpha.max(axis=1)), np.flatnonzero(alpha.max(axis=0))
    h, w = alpha.shape
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) <= 0.5 * max(w, h) + 2
    assert cols[0] == 0  # left
    assert rows[-1] == h - 1  # bottom
    assert resp.headers["X-Foreground-Left"] == "0"  # the box where the subject now lies
    top, height = int(resp.headers["X-Foreground-Top"]), int(resp.headers["X-Foreground-Height"])
    assert h - 2 <= top + height <= h  # (the box leaves out alpha too faint to count)


def test_a_region_of_interest_keeps_only_what_lies_in_it(compat: Server) -> None:
    key = compat.make_key()
    whole = np.asarray(image(post(compat, key, {"image_file": small()}, size="full")))[:, :, 3]
    w = whole.shape[1]
    resp = post(compat, key, {"image_file": small()}, size="full", roi=f"0 0 {w // 2}px 100%")
    alpha = np.asarray(image(resp))[:, :, 3]
    assert alpha.shape == whole.shape
    assert alpha[:, w // 2 + 1 :].max() == 0
    assert whole[:, w // 2 + 1 :].max() > 0  # the subject reached there without the region
    assert np.array_equal(alpha[:, : w // 2], whole[:, : w // 2])


def test_account_in_removebg_shape(compat: Server) -> None:
    key = compat.make_key(credits_=7)
    resp = httpx.get(compat.url + "/v1.0/account", headers={"X-Api-Key": key})
    assert resp.status_code == 200
    credits = resp.json()["data"]["attributes"]["credits"]
    assert credits["total"] == 7
    assert credits["payg"] == 7


def test_rate_limit_is_429_in_removebg_shape(
    tmp_path_factory: pytest.TempPathFactory, api_engine: Engine
) -> None:
    srv, stop = start_server(tmp_path_factory.mktemp("compat429"), api_engine, app={"rate": 1})
    try:
        key = srv.make_key()
        assert post(srv, key, {"image_file": small()}).status_code == 200
        resp = post(srv, key, {"image_file": small()})
        assert_error(resp, 429, "rate_limited")
        assert int(resp.headers["Retry-After"]) >= 1
        assert srv.balance(key) == 9.75
    finally:
        stop()


def strip(width: int) -> bytes:
    """A photo too wide for WebP (16383 px a side) though small in pixels."""
    buf = io.BytesIO()
    with Image.open(io.BytesIO(small())) as im:
        im.resize((width, 24)).save(buf, "PNG")
    return buf.getvalue()


def balance(srv: Server, key: str) -> float:
    resp = httpx.get(srv.url + "/v1.0/account", headers={"X-Api-Key": key})
    total: float = resp.json()["data"]["attributes"]["credits"]["total"]
    return total


def test_a_cut_out_that_cannot_be_delivered_is_a_400_and_costs_nothing(compat: Server) -> None:
    key = compat.make_key(credits_=5)
    # composed after the charge (the subject placed): the charge is given back
    placed = post(
        compat, key, {"image_file": strip(16500)}, format="webp", position="center", size="full"
    )
    assert_error(placed, 400, "invalid_option")
    assert "16383" in placed.json()["errors"][0]["detail"]
    v1 = httpx.post(
        compat.url + "/v1/removebg",
        headers={"X-Api-Key": key},
        files={"image": strip(16500)},
        data={"format": "webp"},
        timeout=60,
    )
    assert v1.status_code == 400 and v1.json()["code"] == "invalid_option", v1.text
    assert balance(compat, key) == 5


def test_a_long_background_photo_is_cut_before_it_is_scaled(compat: Server) -> None:
    key = compat.make_key(credits_=5)
    tall = io.BytesIO()
    Image.new("RGB", (2, 6000), (0, 90, 200)).save(tall, "PNG")
    resp = post(compat, key, {"image_file": small(), "bg_image_file": tall.getvalue()})
    out = image(resp).convert("RGB")
    assert out.size == Image.open(io.BytesIO(small())).size
    assert out.getpixel((0, 0)) == (0, 90, 200)


def test_a_photo_of_several_megabytes_in_base64_is_taken(compat: Server) -> None:
    big = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big, "PNG")
    assert len(big.getvalue()) > 2_000_000
    key = compat.make_key(credits_=5)
    resp = post(compat, key, image_file_b64=base64.b64encode(big.getvalue()).decode(), size="full")
    assert image(resp).size == (900, 900)
