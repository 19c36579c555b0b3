"""The ClearBG Python SDK: ``Client`` and ``AsyncClient`` for the AI API, ``GatewayClient`` for
the Monitor gateway. It imports nothing of the server but ``clearbg.errors``: an error answer
raises the very class the server raised (``InsufficientCreditsError``, ``RateLimitedError``
with ``retry_after``, ...).

>>> from clearbg import Client
>>> with Client("http://127.0.0.1:8000", "cbg_...") as c:
...     c.remove("photo.jpg", size="preview").save("photo-nobg.png")
"""

from __future__ import annotations

from clearbg.client.aio import AsyncClient, AsyncJob
from clearbg.client.core import Account, Box, Cutout, ImageStatus, JobStatus
from clearbg.client.sync import Client, GatewayClient, Job

__all__ = [
    "Account",
    "AsyncClient",
    "AsyncJob",
    "Box",
    "Client",
    "Cutout",
    "GatewayClient",
    "ImageStatus",
    "Job",
    "JobStatus",
]
