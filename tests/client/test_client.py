"""``clearbg.Client`` over real HTTP on 127.0.0.1: every method, every kind of image input,
typed errors, and a bulk job with progress, results, archive and cancel."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from clearbg import Client, GatewayClient
from clearbg.client import Box, JobStatus
from clearbg.errors import (
    AuthError,
    InsufficientCreditsError,
    InvalidOptionError,
    NotAnImageError,
    NotFoundError,
    UrlNotAllowedError,
)
from tests.api.conftest import Server
from tests.client.conftest import charges, small_jpeg
from tests.conftest import PHOTOS


def test_remove_gives_the_cutout_and_what_the_server_said(server: Server, tmp_path: Path) -> None:
    key = server.make_key(credits_=5)
    with Client(server.url, key) as client:
        cut = client.remove(PHOTOS / "car-1.jpg")
    assert cut.media_type == "image/png"
    with Image.open(io.BytesIO(cut.data)) as im:
        assert im.mode == "RGBA"
        assert im.size == cut.size
    assert cut.foreground is not None
    assert isinstance(cut.foreground, Box)
    assert 0 < cut.foreground.width <= cut.width
    assert cut.credits_charged == 1
    assert cut.model == "u2netp"
    saved = cut.save(tmp_path / "car.png")
    assert saved.read_bytes() == cut.data
    assert server.balance(key) == 4


@pytest.mark.parametrize("kind", ["str", "bytes", "file", "pil"])
def test_every_kind_of_image_is_sent(server: Server, tmp_path: Path, kind: str) -> None:
    data = small_jpeg()
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with Client(server.url, server.make_key()) as client:
        if kind == "str":
            cut = client.remove(str(path))
        elif kind == "bytes":
            cut = client.remove(data)
        elif kind == "file":
            with path.open("rb") as f:
                cut = client.remove(f)
        else:
            with Image.open(path) as im:
                cut = client.remove(im)
    with Image.open(path) as im:
        assert cut.size == im.size


def test_options_reach_the_server(server: Server) -> None:
    with Client(server.url, server.make_key()) as client:
        cut = client.remove(
            PHOTOS / "car-1.jpg", size="preview", format="jpg", bg_color="#00ff00", crop=True
        )
        mask = client.remove(small_jpeg(), channels="alpha", crop=True, crop_margin="10%")
    assert cut.media_type == "image/jpeg"
    assert cut.width * cut.height <= 250_000
    assert cut.credits_charged == 0.25  # the preview price
    with Image.open(io.BytesIO(mask.data)) as im:
        assert im.mode == "L"


def test_account_reports_the_balance_and_use(server: Server) -> None:
    key = server.make_key(credits_=3)
    with Client(server.url, key) as client:
        client.remove(small_jpeg())
        account = client.account()
    assert account.credits == 2
    assert account.images == 1
    assert account.key_prefix and key.startswith(account.key_prefix)


def test_errors_are_the_servers_own_classes(server: Server) -> None:
    with Client(server.url, "cbg_not_a_key", retries=0) as client, pytest.raises(AuthError):
        client.account()
    with Client(server.url, server.make_key(credits_=0)) as client:
        with pytest.raises(InsufficientCreditsError) as short:
            client.remove(small_jpeg())
        assert short.value.status == 402
        with pytest.raises(InvalidOptionError) as bad:
            client.remove(small_jpeg(), size="huge")
        assert bad.value.option == "size"
        with pytest.raises(NotAnImageError):
            client.remove(b"%PDF-1.4 not a photo at all")
        with pytest.raises(NotFoundError):
            client.job("no-such-job").status()


def test_an_idempotency_key_given_twice_pays_once(server: Server) -> None:
    key = server.make_key(credits_=5)
    with Client(server.url, key) as client:
        first = client.remove(small_jpeg(), idempotency_key="order-17")
        again = client.remove(small_jpeg(), idempotency_key="order-17")
    assert again.data == first.data
    assert charges(server, key) == [-100]


def test_bulk_job_with_progress_results_and_archive(server: Server, tmp_path: Path) -> None:
    key = server.make_key(credits_=10)
    seen: list[JobStatus] = []
    with Client(server.url, key) as client:
        job = client.submit(
            [small_jpeg("car-1.jpg"), PHOTOS / "animal-1.jpg", small_jpeg("girl-1.jpg")],
            size="preview",
        )
        final = job.wait(progress=seen.append, poll=0.1, timeout=120)
        results = job.results()
        archive = job.download_archive(tmp_path / "job.zip")
        again = job.cancel()  # a finished job stays as it was
    assert final.status == "completed"
    assert final.done == 3
    assert seen
    assert seen[-1] == final
    assert [p.progress for p in seen] == sorted(p.progress for p in seen)
    assert [r.filename for r in results] == ["image-0", "animal-1.jpg", "image-2"]
    assert all(r.data.startswith(b"\x89PNG") for r in results)
    assert results[1].save(tmp_path).name == "animal-1.png"
    with zipfile.ZipFile(archive) as zf:
        assert len(zf.namelist()) == 3
    assert again.status == "completed"
    assert server.balance(key) == 10 - 3 * 0.25


def test_cancel_drops_the_images_not_yet_done(server: Server) -> None:
    key = server.make_key(credits_=30)
    with Client(server.url, key) as client:
        job = client.submit([PHOTOS / "plants-1.jpg"] * 12)
        cancelled = job.cancel()
        final = job.wait(poll=0.1, timeout=120)
    assert cancelled.status == "cancelled"
    assert final.status == "cancelled"
    done = sum(1 for i in final.images if i.status == "done")
    assert done < 12
    assert server.balance(key) == 30 - done


def test_gateway_client_removes_a_photo(server: Server) -> None:
    key = server.make_key(credits_=5)
    with GatewayClient(server.url, server.app_key, key) as gw:
        cut = gw.remove(small_jpeg())
    assert cut.media_type == "image/png"
    with Image.open(io.BytesIO(small_jpeg())) as im:
        assert cut.size == im.size
    assert cut.credits_charged > 0


def test_gateway_client_refuses_a_private_url(server: Server) -> None:
    gw = GatewayClient(server.url, server.app_key, server.make_key())
    with gw, pytest.raises(UrlNotAllowedError):
        gw.remove(f"{server.url}/healthz")
