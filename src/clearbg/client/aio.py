"""``AsyncClient`` and its bulk ``AsyncJob``: ``Client``'s calls for asyncio (or trio), over
``httpx.AsyncClient`` and the same request/response core."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx

from clearbg.client.core import (
    Account,
    Call,
    Cutout,
    ImageInput,
    JobStatus,
    Options,
    account_of,
    bulk_call,
    bulk_result,
    cutout_of,
    error_of,
    job_of,
    remove_call,
    retry_delay,
)

__all__ = ["AsyncClient", "AsyncJob"]

Progress = Callable[[JobStatus], Awaitable[None] | None]


class _AsyncTransport:
    """Sends a ``Call``; tries again (same Idempotency-Key) after 429, 503, a 409 for a try
    still running and a lost connection (``retry_delay``); raises typed errors."""

    def __init__(
        self, base_url: str, headers: dict[str, str], timeout: float, retries: int
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )
        self.retries = retries

    async def send(self, call: Call) -> httpx.Response:
        attempt = 0
        outcome: httpx.Response | httpx.TransportError
        while True:
            try:
                outcome = await self.http.send(call.request(self.http))
            except httpx.TransportError as exc:
                outcome = exc
            delay = retry_delay(call, outcome, attempt, self.retries)
            if delay is None:
                break
            attempt += 1
            await anyio.sleep(delay)
        if isinstance(outcome, httpx.TransportError):
            raise outcome
        if outcome.is_error:
            raise error_of(outcome)
        return outcome

    async def json(self, call: Call) -> Any:
        return (await self.send(call)).json()

    async def aclose(self) -> None:
        await self.http.aclose()


class AsyncClient:
    """``Client`` for async code: ``async with AsyncClient(url, key) as c: await c.remove(...)``."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 120.0, retries: int = 3
    ) -> None:
        self._t = _AsyncTransport(base_url, {"X-API-Key": api_key}, timeout, retries)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._t.aclose()

    async def remove(
        self,
        image: ImageInput,
        *,
        size: str | None = None,
        format: str | None = None,
        bg_color: str | None = None,
        channels: str | None = None,
        crop: bool | None = None,
        crop_margin: str | int | None = None,
        model: str | None = None,
        idempotency_key: str | None = None,
    ) -> Cutout:
        """One cut-out; a retry of it never pays twice (one Idempotency-Key for all tries)."""
        options = Options(size, format, bg_color, channels, crop, crop_margin, model)
        call = remove_call(image, options, idempotency_key)
        return cutout_of(await self._t.send(call))

    async def account(self) -> Account:
        return account_of(await self._t.json(Call("GET", "/v1/account")))

    async def submit(
        self,
        images: Iterable[ImageInput],
        *,
        size: str | None = None,
        format: str | None = None,
        bg_color: str | None = None,
        channels: str | None = None,
        crop: bool | None = None,
        crop_margin: str | int | None = None,
        model: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncJob:
        """A bulk job of up to 50 photos; ``await job.wait()`` until it is finished."""
        options = Options(size, format, bg_color, channels, crop, crop_margin, model)
        call = bulk_call(list(images), options, callback_url, idempotency_key)
        return AsyncJob(self._t, (await self._t.json(call))["job_id"])

    def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self._t, job_id)


class AsyncJob:
    """A bulk job on the server, for async code."""

    def __init__(self, transport: _AsyncTransport, job_id: str) -> None:
        self._t = transport
        self.id = job_id

    async def status(self) -> JobStatus:
        return job_of(await self._t.json(Call("GET", f"/v1/bulk/{self.id}")))

    async def wait(
        self, progress: Progress | None = None, *, poll: float = 0.5, timeout: float | None = None
    ) -> JobStatus:
        """Poll until the job is finished; ``progress(status)`` (a function or a coroutine
        function) after each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = await self.status()
            if progress is not None:
                shown = progress(status)
                if shown is not None:
                    await shown
            if status.finished:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} is not finished after {timeout} s")
            await anyio.sleep(poll)

    async def results(self) -> list[Cutout]:
        """The finished images' cut-outs, in upload order (failed ones are left out)."""
        done = [i for i in (await self.status()).images if i.status == "done"]
        out = []
        for i in done:
            response = await self._t.send(Call("GET", f"/v1/bulk/{self.id}/images/{i.index}"))
            out.append(bulk_result(response, i))
        return out

    async def download_archive(self, path: str | os.PathLike[str]) -> Path:
        """The zip of every finished result, written to ``path``."""
        response = await self._t.send(Call("GET", f"/v1/bulk/{self.id}/archive"))
        target = Path(path)
        target.write_bytes(response.content)
        return target

    async def cancel(self) -> JobStatus:
        """Drop the images not yet processed (they are not charged)."""
        return job_of(await self._t.json(Call("DELETE", f"/v1/bulk/{self.id}")))
