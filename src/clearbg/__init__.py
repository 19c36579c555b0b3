"""ClearBG: self-hosted background removal.

>>> from clearbg import Engine, RemoveOptions
>>> cutout = Engine().remove(open("photo.jpg", "rb").read(), RemoveOptions(format="webp"))

A ClearBG server, from Python (the SDK, ``clearbg.client``):

>>> from clearbg import Client
>>> Client("http://127.0.0.1:8000", "cbg_...").remove("photo.jpg").save("photo-nobg.png")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearbg.errors import ClearbgError

if TYPE_CHECKING:
    from clearbg.client import AsyncClient, Client, GatewayClient
    from clearbg.engine import Cutout, Engine, RemoveOptions

__all__ = [
    "AsyncClient",
    "ClearbgError",
    "Client",
    "Cutout",
    "Engine",
    "GatewayClient",
    "RemoveOptions",
    "__version__",
    "remove",
]
__version__ = "0.1.0"


def remove(image: bytes, options: RemoveOptions | None = None) -> Cutout:
    """One cut-out with a default engine (loads the model on each call: use Engine for many)."""
    from clearbg.engine import Engine

    return Engine().remove(image, options)


def __getattr__(name: str) -> Any:
    # the engine pulls in numpy and ONNX Runtime: import it only when it is asked for
    if name in ("Engine", "RemoveOptions", "Cutout"):
        import clearbg.engine

        return getattr(clearbg.engine, name)
    if name in ("Client", "AsyncClient", "GatewayClient"):  # httpx, without the engine
        import clearbg.client

        return getattr(clearbg.client, name)
    raise AttributeError(name)
