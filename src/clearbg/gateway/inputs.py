"""The gateway's ``image`` text field: an http(s) URL, a ``data:image/...;base64,`` URL or raw
base64, told apart by their first characters."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from clearbg.errors import EmptyImageError, InvalidBase64Error, UrlNotAllowedError

__all__ = ["TextImage", "decode_base64", "parse_text"]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),", re.IGNORECASE | re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextImage:
    """What a text field holds: bytes already (``data``) or a URL still to fetch."""

    kind: str  # url | data_url | base64
    data: bytes = b""
    url: str = ""


def parse_text(text: str) -> TextImage:
    value = text.strip()
    if not value:
        raise EmptyImageError("the image field is empty")
    lower = value[:12].lower()
    if lower.startswith(("http://", "https://")):
        return TextImage("url", url=value)
    if lower.startswith("data:"):
        return TextImage("data_url", data=_data_url(value))
    if _SCHEME.match(value):
        scheme = value.split(":", 1)[0]
        raise UrlNotAllowedError(f"only http and https URLs are fetched, not {scheme!r}")
    return TextImage("base64", data=decode_base64(value))


def _data_url(value: str) -> bytes:
    match = _DATA_URL.match(value)
    if match is None:
        raise InvalidBase64Error("a data URL needs a comma before its data")
    media, params = match.group(1).strip().lower(), match.group(2).lower()
    if "base64" not in [p.strip() for p in params.split(";")]:
        raise InvalidBase64Error("only base64 data URLs are accepted (data:image/...;base64,...)")
    if media and not media.startswith("image/"):
        raise InvalidBase64Error(f"the data URL holds {media}, not an image")
    return decode_base64(value[match.end() :])


def decode_base64(text: str) -> bytes:
    """Standard or URL-safe alphabet, whitespace and missing padding tolerated."""
    compact = _WHITESPACE.sub("", text)
    if not compact:
        raise EmptyImageError("the image field is empty")
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact = compact.rstrip("=")
    if len(compact) % 4 == 1:
        raise InvalidBase64Error("the image field is not valid base64 (wrong length)")
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64Error(
            "the image field is neither an http(s) URL nor valid base64"
        ) from exc
    if not data:
        raise EmptyImageError("the image field decodes to zero bytes")
    return data
