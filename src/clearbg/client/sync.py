"""``Client``, its bulk ``Job`` and ``GatewayClient``: blocking, over ``httpx.Client``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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
    gateway_call,
    job_of,
    remove_call,
    retry_delay,
)

__all__ = ["Client", "GatewayClient", "Job"]

Progress = Callable[[JobStatus], None]


class _Transport:
    """Sends a ``Call``; tries again (same Idempotency-Key) after 429, 503, a 409 for a try
    still running and a lost connection (``retry_delay``); raises typed errors."""

    def __init__(
        self, base_url: str, headers: dict[str, str], timeout: float, retries: int
    ) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self.retries = retries

    def send(self, call: Call) -> httpx.Response:
        attempt = 0
        outcome: httpx.Response | httpx.TransportError
        while True:
            try:
                outcome = self.http.send(call.request(self.http))
            except httpx.TransportError as exc:
                outcome = exc
            delay = retry_delay(call, outcome, attempt, self.retries)
            if delay is None:
                break
            attempt += 1
            time.sleep(delay)
        if isinstance(outcome, httpx.TransportError):
            raise outcome
        if outcome.is_error:
            raise error_of(outcome)
        return outcome

    def json(self, call: Call) -> Any:
        return self.send(call).json()

    def close(self) -> None:
        self.http.close()


class _Closing:
    """A client that holds connections: ``with`` closes them."""

    _t: _Transport

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()


class Client(_Closing):
    """The ClearBG AI API: ``Client("http://host:8000", "cbg_...").remove("photo.jpg")``.

    ``retries``: how often a 429 or 503 answer is tried again (after its ``Retry-After``).
    Error answers raise the server's own error classes (``clearbg.errors``).
    """

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 120.0, retries: int = 3
    ) -> None:
        self._t = _Transport(base_url, {"X-API-Key": api_key}, timeout, retries)

    def remove(
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
        return cutout_of(self._t.send(remove_call(image, options, idempotency_key)))

    def account(self) -> Account:
        return account_of(self._t.json(Call("GET", "/v1/account")))

    def submit(
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
    ) -> Job:
        """A bulk job of up to 50 photos; ``job.wait()`` until it is finished."""
        options = Options(size, format, bg_color, channels, crop, crop_margin, model)
        call = bulk_call(list(images), options, callback_url, idempotency_key)
        return Job(self._t, self._t.json(call)["job_id"])

    def job(self, job_id: str) -> Job:
        """A job submitted before (by this key)."""
        return Job(self._t, job_id)


class Job:
    """A bulk job on the server."""

    def __init__(self, transport: _Transport, job_id: str) -> None:
        self._t = transport
        self.id = job_id

    def status(self) -> JobStatus:
        return job_of(self._t.json(Call("GET", f"/v1/bulk/{self.id}")))

    def wait(
        self, progress: Progress | None = None, *, poll: float = 0.5, timeout: float | None = None
    ) -> JobStatus:
        """Poll until the job is finished; ``progress(status)`` after each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if progress is not None:
                progress(status)
            if status.finished:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} is not finished after {timeout} s")
            time.sleep(poll)

    def results(self) -> list[Cutout]:
        """The finished images' cut-outs, in upload order (failed ones are left out)."""
        done = [i for i in self.status().images if i.status == "done"]
        return [
            bulk_result(self._t.send(Call("GET", f"/v1/bulk/{self.id}/images/{i.index}")), i)
            for i in done
        ]

    def download_archive(self, path: str | os.PathLike[str]) -> Path:
        """The zip of every finished result, written to ``path``."""
        target = Path(path)
        target.write_bytes(self._t.send(Call("GET", f"/v1/bulk/{self.id}/archive")).content)
        return target

    def cancel(self) -> JobStatus:
        """Drop the images not yet processed (they are not charged)."""
        return job_of(self._t.json(Call("DELETE", f"/v1/bulk/{self.id}")))


class GatewayClient(_Closing):
    """The Monitor gateway (``POST /api/v1/clearbg``) of one application (``app_key``); an
    end-user ``api_key`` pays, without one the call counts against the anonymous daily limit."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        retries: int = 3,
    ) -> None:
        headers = {"X-App-Key": app_key, **({"X-Api-Key": api_key} if api_key else {})}
        self._t = _Transport(base_url, headers, timeout, retries)

    def remove(self, image_or_url: ImageInput) -> Cutout:
        """One cut-out of a photo, or of an http(s) URL the server fetches."""
        return cutout_of(self._t.send(gateway_call(image_or_url)))
