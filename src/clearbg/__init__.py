"""ClearBG: self-hosted background removal.

>>> from clearbg import Engine, RemoveOptions
>>> cutout = Engine().remove(open("photo.jpg", "rb").read(), RemoveOptions(format="webp"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearbg.errors import ClearbgError

if TYPE_CHECKING:
    from clearbg.engine import Cutout, Engine, RemoveOptions

__all__ = ["ClearbgError", "Cutout", "Engine", "RemoveOptions", "__version__", "remove"]
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
    raise AttributeError(name)
