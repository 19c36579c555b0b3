"""One ONNX Runtime wrapper for every model: explicit CPU provider, fails loudly.

A model is data (``ModelSpec`` with its ``Family``); this module turns a model-sized RGB image into
the network's input tensor, runs it and turns the first output into a 0..1 mask.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from clearbg.engine.models import Family, ModelSpec
from clearbg.engine.native import trim_heap
from clearbg.errors import ModelLoadError

__all__ = ["ModelSession", "SessionCache", "read_input_name"]


def _ort() -> Any:
    import onnxruntime

    return onnxruntime


def read_input_name(path: Path) -> str:
    """Name of the first input of an ONNX file (loads it once on the CPU)."""
    return str(_open(path, threads=1).get_inputs()[0].name)


_SHARED_ARENA = threading.Lock()
_shared_arena: list[bool] = []  # registered in this process (once)


def _share_arena(ort: Any) -> None:
    """Register one CPU arena for the whole process, used by every session.

    Each session's own arena keeps its largest activations for good, so a model and its
    companion, which never run at the same time, would keep two. One shared arena holds what
    runs at once, not the sum of what every session ever ran.
    """
    with _SHARED_ARENA:
        if _shared_arena:
            return
        info = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
        _shared_arena.append(True)


def _open(path: Path, threads: int) -> Any:
    ort = _ort()
    _share_arena(ort)
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.use_env_allocators", "1")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No memory pattern: with it ORT plans one block for all activations and its arena keeps
    # growing; without the arena each run page-faults its activations in again, slower. Arena
    # on, pattern off: as fast, and a lower peak (``python bench/bench.py --only rss``).
    opts.enable_mem_pattern = False
    # idle intra-op threads sleep instead of spinning, so decode and encode threads (a folder's
    # photos side by side, other requests) get the cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own untyped errors; translate them once here
        raise ModelLoadError(f"cannot load {path}: {exc}") from exc
    trim_heap()  # the parsed model's freed memory, back to the system (see native.py)
    return session


@dataclass
class ModelSession:
    """A loaded model: ``predict`` maps an RGB uint8 image of the input size to a 0..1 mask."""

    spec: ModelSpec
    session: Any
    input_name: str

    @classmethod
    def load(cls, spec: ModelSpec, path: Path, threads: int = 0) -> ModelSession:
        session = _open(path, threads)
        names = [i.name for i in session.get_inputs()]
        if spec.input_name not in names:
            raise ModelLoadError(f"{path}: input {spec.input_name!r} not in {names}")
        return cls(spec, session, spec.input_name)

    @property
    def family(self) -> Family:
        return self.spec.preprocessing

    def prepare(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """HxWx3 uint8 at the model's input size -> 1x3xHxW float32, normalised.

        The arithmetic is done once per possible value (a 3 x 256 table, in the same float32
        steps as on the whole image, so the very same numbers) and each plane is looked up:
        faster than computing on every pixel and transposing. OpenCV's lookup writes each
        plane in place, faster again than numpy's ``take``."""
        fam = self.family
        peak = float(rgb.max()) if fam.divide_by_max else 255.0
        table = np.repeat(np.arange(256, dtype=np.float32)[None], 3, axis=0)  # a row a channel
        table *= 1.0 / max(peak, 1e-6)
        table -= np.asarray(fam.mean, dtype=np.float32)[:, None]
        table *= np.asarray([1.0 / s for s in fam.std], dtype=np.float32)[:, None]
        h, w = rgb.shape[:2]
        out = np.empty((1, 3, h, w), dtype=np.float32)
        for c, plane in enumerate(cv2.split(np.ascontiguousarray(rgb))):
            cv2.LUT(plane, table[c], dst=out[0, c])
        return out

    def run(self, tensor: NDArray[np.float32]) -> NDArray[np.float32]:
        """The raw first output, as an HxW float32 array (no normalisation)."""
        out = self.session.run(None, {self.input_name: tensor})[0]
        return np.asarray(out, dtype=np.float32).reshape(out.shape[-2], out.shape[-1])

    def predict(self, rgb: NDArray[np.uint8]) -> tuple[NDArray[np.float32], float]:
        """Mask in 0..1 at the model's resolution, and the seconds ``session.run`` took."""
        tensor = self.prepare(rgb)
        t0 = time.perf_counter()
        raw = self.run(tensor)
        elapsed = time.perf_counter() - t0
        return self.normalise(raw), elapsed

    def normalise(self, raw: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.family.minmax_output:
            lo, hi = float(raw.min()), float(raw.max())
            return (raw - lo) / max(hi - lo, 1e-12)
        return np.clip(raw, 0.0, 1.0)


class SessionCache:
    """A bounded, thread-safe LRU of loaded sessions. A model loads once, under its own lock,
    so loading one (seconds) never holds up requests for models already loaded."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, ModelSession] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def _lookup(self, name: str) -> ModelSession | None:
        with self._lock:
            found = self._items.get(name)
            if found is not None:
                self._items.move_to_end(name)
            return found

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._items

    def get(self, name: str, load: Callable[[], ModelSession]) -> ModelSession:
        found = self._lookup(name)
        if found is not None:
            return found
        with self._lock:
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:
            found = self._lookup(name)
            if found is not None:
                return found
            session = load()
            with self._lock:
                self._items[name] = session
                while len(self._items) > self._capacity:
                    self._items.popitem(last=False)
            return session

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._items)
