"""The form edge: the options of a cut-out read from a multipart form, once, by field name
(``RemoveOptions.from_fields``: every option the engine has), and the ``image`` file parts."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from clearbg.engine import RemoveOptions
from clearbg.engine.options import shown
from clearbg.errors import EmptyImageError, ImageConflictError, InvalidOptionError

__all__ = ["form_options", "one_image", "options_of", "read_upload"]


def options_of(form: FormData) -> RemoveOptions:
    """The options among a form's text fields (other fields are not options: ignored)."""
    return RemoveOptions.from_fields({k: v for k, v in form.multi_items() if isinstance(v, str)})


async def form_options(request: Request) -> RemoveOptions:
    """A dependency: the options of a multipart request (the form is parsed once and cached
    on the request, so the route's own parameters read the same parse)."""
    return options_of(await request.form())


async def read_upload(image: UploadFile | str) -> bytes:
    if isinstance(image, str):
        raise InvalidOptionError(
            "image",
            f"must be a file part, not text ({shown(image, 40)}); in Node.js append a Blob "
            "(for example `await fs.openAsBlob(path)`), not a stream",
        )
    return await image.read()


async def one_image(parts: Sequence[UploadFile | str]) -> bytes:
    """The bytes of the single ``image`` part; two of them are a conflict, not a choice."""
    if len(parts) > 1:
        raise ImageConflictError(f"send one image field, not {len(parts)}")
    data = await read_upload(parts[0])
    if not data:
        raise EmptyImageError("the image field is empty")
    return data
