"""What ``Client`` and ``AsyncClient`` share: how a call is written (``Call``), how an answer is
read (``cutout_of``, ``job_of``, ``account_of``), how an error answer becomes the typed error the
server raised (``error_of``) and when a call is tried again (``retry_delay``). Only the sending
differs between the two, so they cannot drift apart.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias

import httpx
from PIL import Image

from clearbg.errors import ClearbgError, error_from

__all__ = [
    "Account",
    "Box",
    "Call",
    "Cutout",
    "ImageInput",
    "ImageStatus",
    "JobStatus",
    "Options",
    "account_of",
    "bulk_call",
    "bulk_result",
    "cutout_of",
    "error_of",
    "gateway_call",
    "image_part",
    "job_of",
    "remove_call",
    "retry_delay",
]

ImageInput: TypeAlias = str | os.PathLike[str] | bytes | IO[bytes] | Image.Image
"""A photo: a path, its bytes, a binary file object or a PIL image (sent as PNG)."""

RETRIED = frozenset({429, 503})
MAX_WAIT = 60.0  # seconds the client waits for a retry at most; a longer Retry-After is raised
_TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class Cutout:
    """One result: the image's bytes and what the server said about it."""

    data: bytes
    media_type: str
    width: int
    height: int
    foreground: Box | None  # the subject's box (None: the answer did not say)
    credits_charged: float
    model: str | None = None
    filename: str | None = None  # a bulk result: the uploaded file's name

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def extension(self) -> str:
        return _EXTENSIONS.get(self.media_type, "bin")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image to ``path`` (a folder: ``<filename stem or cutout>.<ext>`` in it)."""
        target = Path(path)
        if target.is_dir():
            stem = Path(self.filename).stem if self.filename else "cutout"
            target = target / f"{stem}.{self.extension}"
        target.write_bytes(self.data)
        return target


@dataclass(frozen=True)
class Account:
    key_prefix: str
    label: str
    application: str
    unlimited: bool
    credits: float
    expires_at: str | None
    images: int
    requests: int
    credits_spent: float


@dataclass(frozen=True)
class ImageStatus:
    index: int
    filename: str
    status: str  # queued | processing | done | failed | cancelled
    error_code: str | None
    error: str | None
    media_type: str | None
    width: int | None
    height: int | None
    credits_charged: float


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    status: str  # processing | completed | failed | cancelled | expired
    image_count: int
    done: int
    failed: int
    progress: float  # 0..1
    images: tuple[ImageStatus, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in _TERMINAL


@dataclass(frozen=True)
class Options:
    """The options of ``remove`` and ``submit``, as the form fields /v1/removebg reads."""

    size: str | None = None
    format: str | None = None
    bg_color: str | None = None
    channels: str | None = None
    crop: bool | None = None
    crop_margin: str | int | None = None
    model: str | None = None

    def fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in vars(self).items():
            if isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif value is not None:
                out[name] = str(value)
        return out


@dataclass(frozen=True)
class Call:
    """One HTTP request as both clients send it; ``paid`` calls carry an Idempotency-Key,
    generated once, so every retry of the call is the same call to the server."""

    method: str
    path: str
    data: dict[str, str] = field(default_factory=dict)
    # (field, (filename, bytes, media type)); a part without a filename is a text field
    files: list[tuple[str, tuple[str | None, bytes, str]]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def repeatable(self) -> bool:
        """Whether sending it again after a lost answer is safe: a read, or a paid call whose
        Idempotency-Key makes the server answer a repeat without charging it again."""
        return self.method == "GET" or "Idempotency-Key" in self.headers

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return client.build_request(
            self.method,
            self.path,
            data=self.data or None,
            files=self.files or None,
            headers=self.headers,
        )


def image_part(image: ImageInput, name: str = "image") -> tuple[str | None, bytes, str]:
    """A file part (filename, bytes, media type) from any ``ImageInput``."""
    if isinstance(image, bytes | bytearray | memoryview):
        return name, bytes(image), "application/octet-stream"
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return path.name, path.read_bytes(), "application/octet-stream"
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return f"{name}.png", buf.getvalue(), "image/png"
    if hasattr(image, "read"):
        data: object = image.read()
        if not isinstance(data, bytes):
            raise TypeError("the file object must be opened in binary mode ('rb')")
        filename = Path(str(getattr(image, "name", name))).name
        return filename, data, "application/octet-stream"
    raise TypeError(f"cannot send a {type(image).__name__} as an image")


def _paid(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}


def remove_call(image: ImageInput, options: Options, idempotency_key: str | None) -> Call:
    return Call(
        "POST",
        "/v1/removebg",
        data=options.fields(),
        files=[("image", image_part(image))],
        headers=_paid(idempotency_key),
    )


def bulk_call(
    images: list[ImageInput],
    options: Options,
    callback_url: str | None,
    idempotency_key: str | None,
) -> Call:
    data = options.fields()
    if callback_url is not None:
        data["callback_url"] = callback_url
    files = [("image", image_part(image, f"image-{n}")) for n, image in enumerate(images)]
    return Call("POST", "/v1/bulk", data=data, files=files, headers=_paid(idempotency_key))


def gateway_call(image_or_url: ImageInput) -> Call:
    """The gateway's one ``image`` field: the photo, or a URL as text for the server to fetch."""
    if isinstance(image_or_url, str) and image_or_url.startswith(("http://", "https://")):
        part: tuple[str | None, bytes, str] = (None, image_or_url.encode(), "text/plain")
    else:
        part = image_part(image_or_url)
    return Call("POST", "/api/v1/clearbg", files=[("image", part)])


def error_of(response: httpx.Response) -> ClearbgError:
    """The typed error of an error answer (problem+json), or a generic one by its status."""
    code, detail = "http_error", response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        detail = str(body.get("detail") or detail)
    retry_after = response.headers.get("retry-after", "")
    seconds = int(retry_after) if retry_after.isdigit() else None
    return error_from(response.status_code, code, detail, seconds)


def retry_delay(
    call: Call, outcome: httpx.Response | httpx.TransportError, attempt: int, retries: int
) -> float | None:
    """Seconds to wait before sending ``call`` again, or None: do not (a success, an error
    that another try cannot mend, a wait longer than MAX_WAIT, or ``retries`` used up).

    429 and 503 wait what ``Retry-After`` says; a lost connection or timeout (a repeatable
    call only) and a 409 for a first try still running on the server back off exponentially
    from half a second."""
    if attempt >= retries:
        return None
    backoff = min(MAX_WAIT, 0.5 * 2**attempt)
    if isinstance(outcome, httpx.TransportError):
        return backoff if call.repeatable else None
    if outcome.status_code == 409 and call.repeatable:
        return backoff if _code(outcome) == "idempotency_in_progress" else None
    if outcome.status_code not in RETRIED:
        return None
    header = outcome.headers.get("retry-after", "")
    wait = float(header) if header.isdigit() else backoff
    return wait if wait <= MAX_WAIT else None  # e.g. a daily allowance: tell the caller


def _code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name, "")
    return int(value) if value.isdigit() else None


def cutout_of(response: httpx.Response, filename: str | None = None) -> Cutout:
    """A cut-out from an image answer: its headers, or the image itself where they are silent
    (the gateway's answer)."""
    h = response.headers
    width, height = _int(h, "x-width"), _int(h, "x-height")
    if width is None or height is None:
        with Image.open(io.BytesIO(response.content)) as im:
            width, height = im.size
    box = [_int(h, f"x-foreground-{k}") for k in ("left", "top", "width", "height")]
    return Cutout(
        data=response.content,
        media_type=h.get("content-type", "application/octet-stream").split(";")[0],
        width=width,
        height=height,
        foreground=None if None in box else Box(*(int(v or 0) for v in box)),
        credits_charged=float(h.get("x-credits-charged", "0") or 0),
        model=h.get("x-model"),
        filename=filename,
    )


def account_of(body: dict[str, Any]) -> Account:
    return Account(
        key_prefix=body["key_prefix"],
        label=body["label"],
        application=body["application"],
        unlimited=body["unlimited"],
        credits=body["credits"],
        expires_at=body.get("expires_at"),
        images=body["images"],
        requests=body["requests"],
        credits_spent=body["credits_spent"],
    )


def job_of(body: dict[str, Any]) -> JobStatus:
    images = tuple(
        ImageStatus(
            index=i["index"],
            filename=i["filename"],
            status=i["status"],
            error_code=i.get("error_code"),
            error=i.get("error"),
            media_type=i.get("media_type"),
            width=i.get("width"),
            height=i.get("height"),
            credits_charged=i.get("credits_charged", 0.0),
        )
        for i in body.get("images", [])
    )
    count = body["image_count"]
    return JobStatus(
        job_id=body["job_id"],
        status=body["status"],
        image_count=count,
        done=body.get("done", 0),
        failed=body.get("failed", 0),
        progress=body.get("progress", 0.0),
        images=images,
    )


def bulk_result(response: httpx.Response, image: ImageStatus) -> Cutout:
    """One bulk result (a file answer: its size and charge come from the job's status)."""
    return Cutout(
        data=response.content,
        media_type=image.media_type or response.headers.get("content-type", ""),
        width=image.width or 0,
        height=image.height or 0,
        foreground=None,
        credits_charged=image.credits_charged,
        filename=image.filename,
    )
