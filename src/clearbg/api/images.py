"""The photo of a request, from exactly one of three fields: a file part, base64 text
(``image_file_b64``, a data URL too) or an http(s) URL fetched through the services' one
SSRF-guarded ``Fetcher``. /v1/removebg and remove.bg's /v1.0/removebg read it the same way."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import UploadFile

from clearbg.api.forms import one_image
from clearbg.errors import (
    EmptyImageError,
    ImageConflictError,
    InvalidBase64Error,
    MissingImageError,
)
from clearbg.gateway.fetch import Fetcher
from clearbg.gateway.inputs import parse_text

__all__ = ["photo_of"]


async def photo_of(
    fetcher: Fetcher,
    files: Sequence[UploadFile | str] | bytes | None,
    b64: str | None,
    url: str | None,
    names: tuple[str, str, str] = ("image", "image_file_b64", "image_url"),
) -> bytes:
    """The photo's bytes; none of the fields, or more than one, is a 400 naming them.
    ``files``: the file parts of the first field, or the bytes of the one part."""
    given = [
        name for name, value in zip(names, (files, b64, url), strict=True) if value is not None
    ]
    if not given:
        raise MissingImageError(f"send the photo in one of the fields {', '.join(names)}")
    if len(given) > 1:
        raise ImageConflictError(f"send one of {', '.join(given)}, not {len(given)}")
    if isinstance(files, bytes):
        if not files:
            raise EmptyImageError(f"the {names[0]} field is empty")
        return files
    if files is not None:
        return await one_image(files)
    if b64:
        text = parse_text(b64)
        if text.kind == "url":
            raise InvalidBase64Error(f"{names[1]} holds a URL; send it as {names[2]}")
        return text.data
    return await fetcher.fetch(str(url))
