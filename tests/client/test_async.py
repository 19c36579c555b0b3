"""``clearbg.AsyncClient`` over real HTTP on 127.0.0.1: the same calls as ``Client``, awaited,
several at once."""

from __future__ import annotations

import zipfile
from pathlib import Path

import anyio
import pytest

from clearbg import AsyncClient
from clearbg.client import Cutout, JobStatus
from clearbg.errors import AuthError, InsufficientCreditsError, InvalidOptionError
from tests.api.conftest import Server
from tests.client.conftest import charges, small_jpeg
from tests.conftest import PHOTOS

pytestmark = pytest.mark.anyio


async def test_remove_and_account(server: Server) -> None:
    key = server.make_key(credits_=5)
    async with AsyncClient(server.url, key) as client:
        cut = await client.remove(PHOTOS / "car-1.jpg", size="preview", format="webp")
        account = await client.account()
    assert cut.media_type == "image/webp"
    assert cut.foreground is not None
    assert cut.credits_charged == 0.25
    assert account.credits == 4.75
    assert account.images == 1


async def test_several_calls_at_once_each_pay_once(server: Server) -> None:
    key = server.make_key(credits_=5)
    found: list[Cutout] = []
    async with AsyncClient(server.url, key) as client:

        async def one(name: str) -> None:
            found.append(await client.remove(small_jpeg(name)))

        async with anyio.create_task_group() as tg:
            for name in ("car-1.jpg", "girl-1.jpg", "animal-1.jpg"):
                tg.start_soon(one, name)
    assert len(found) == 3
    assert charges(server, key) == [-100, -100, -100]


async def test_errors_are_typed(server: Server) -> None:
    async with AsyncClient(server.url, "cbg_wrong") as client:
        with pytest.raises(AuthError):
            await client.remove(small_jpeg())
    async with AsyncClient(server.url, server.make_key(credits_=0)) as client:
        with pytest.raises(InsufficientCreditsError):
            await client.remove(small_jpeg())
        with pytest.raises(InvalidOptionError):
            await client.remove(small_jpeg(), format="gif")


async def test_bulk_job(server: Server, tmp_path: Path) -> None:
    key = server.make_key(credits_=10)
    seen: list[float] = []

    async def progress(status: JobStatus) -> None:
        seen.append(status.progress)

    async with AsyncClient(server.url, key) as client:
        job = await client.submit([small_jpeg("car-1.jpg"), small_jpeg("girl-2.jpg")])
        final = await job.wait(progress, poll=0.1, timeout=120)
        results = await job.results()
        archive = await job.download_archive(tmp_path / "job.zip")
        after = await client.job(job.id).cancel()
    assert final.status == "completed"
    assert seen[-1] == 1.0
    assert len(results) == 2
    assert all(r.media_type == "image/png" for r in results)
    with zipfile.ZipFile(archive) as zf:
        assert len(zf.namelist()) == 2
    assert after.status == "completed"
    assert server.balance(key) == 8
