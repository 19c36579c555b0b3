"""rembg's half of ``bench/bench.py``: runs inside rembg's own venv, never imports clearbg.

A worker that reads one JSON request per line on stdin and answers one JSON line on stdout:

- ``{"op": "load", "model": "u2net"}``: build ``rembg.new_session(model)`` once. Any attempt to
  download (``pooch.retrieve``) fails loudly instead of reaching the network.
- ``{"op": "raw", "path": P, "n": N}``: N timings of ``inner_session.run`` on P's prepared tensor.
- ``{"op": "e2e", "path": P, "out": O}``: time ``rembg.remove(bytes, session=...)`` (bytes in,
  PNG bytes out), with the seconds spent in ``inner_session.run`` inside that call; O (optional)
  receives the PNG for the parity check.

Timings are taken here, so the JSON round trip is not in them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


class _DownloadError(RuntimeError):
    pass


def _forbid_downloads() -> None:
    import pooch  # type: ignore[import-not-found]

    def retrieve(url: str, *args: object, **kwargs: object) -> str:
        raise _DownloadError(f"rembg tried to download {url}: the weights were not found")

    pooch.retrieve = retrieve


class _TimedSession:
    """Stands in for rembg's ``inner_session`` and adds up the time spent in ``run``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Worker:
    def __init__(self) -> None:
        self.session: Any = None
        self.timed: _TimedSession | None = None

    def load(self, model: str) -> dict[str, Any]:
        _forbid_downloads()
        import onnxruntime
        import rembg  # type: ignore[import-not-found]
        from rembg import new_session
        from rembg.sessions import sessions_class  # type: ignore[import-not-found]

        cls = next(c for c in sessions_class if c.name() == model)
        t0 = time.perf_counter()
        self.session = new_session(model)
        seconds = time.perf_counter() - t0
        self.timed = _TimedSession(self.session.inner_session)
        self.session.inner_session = self.timed
        return {
            "rembg": getattr(rembg, "__version__", "?"),
            "onnxruntime": onnxruntime.__version__,
            "pillow": _version("pillow"),
            "numpy": _version("numpy"),
            "model_path": str(cls.download_models()),
            "providers": self.timed.inner.get_providers(),
            "load_seconds": seconds,
        }

    def raw(self, path: str, n: int) -> dict[str, Any]:
        from PIL import Image

        if self.timed is None:
            raise RuntimeError("load first")
        img = Image.open(path)
        feed = self.session.normalize(img, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (320, 320))
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.timed.inner.run(None, feed)
            times.append(time.perf_counter() - t0)
        return {"times": times}

    def e2e(self, path: str, out: str | None) -> dict[str, Any]:
        from rembg import remove

        if self.timed is None:
            raise RuntimeError("load first")
        data = Path(path).read_bytes()
        self.timed.seconds = 0.0
        t0 = time.perf_counter()
        png = remove(data, session=self.session)
        seconds = time.perf_counter() - t0
        if out:
            Path(out).write_bytes(png)
        return {"seconds": seconds, "inference": self.timed.seconds, "bytes": len(png)}


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def main() -> None:
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            op = req["op"]
            if op == "load":
                reply = worker.load(req["model"])
            elif op == "raw":
                reply = worker.raw(req["path"], int(req["n"]))
            elif op == "e2e":
                reply = worker.e2e(req["path"], req.get("out"))
            elif op == "quit":
                return
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # report every failure to the parent, which stops loudly
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
