"""The session wrapper's input tensor: the normalisation each family asks for, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clearbg.engine import native
from clearbg.engine.models import MODELS
from clearbg.engine.session import ModelSession


@pytest.mark.parametrize("model", ["u2netp", "isnet"])
def test_the_input_tensor_is_the_familys_normalisation(model: str) -> None:
    spec = MODELS[model]
    fam = spec.preprocessing
    w, h = fam.input_size
    rgb = np.random.default_rng(1).integers(0, 231, (h, w, 3), dtype=np.uint8)
    session = ModelSession(spec, session=None, input_name=spec.input_name)
    tensor = session.prepare(rgb)
    # the arithmetic written out on every pixel, as rembg does it
    x = rgb.astype(np.float32)
    x /= np.float32(x.max() if fam.divide_by_max else 255.0)
    x = (x - np.asarray(fam.mean, np.float32)) / np.asarray(fam.std, np.float32)
    expected = x.transpose(2, 0, 1)[None]
    assert tensor.shape == (1, 3, h, w) and tensor.dtype == np.float32
    assert tensor.flags.c_contiguous
    np.testing.assert_allclose(tensor, expected, rtol=0, atol=2e-6)


@pytest.mark.skipif(native._libc() is None, reason="glibc's malloc_trim only")
def test_trimming_the_heap_gives_freed_memory_back() -> None:
    """Memory freed into glibc's heap (many blocks above pymalloc's size, as a parsed model
    leaves) is returned to the system by ``trim_heap``, not kept by the process."""

    def rss() -> int:
        status = Path("/proc/self/status").read_text().split("VmRSS:")[1]
        return int(status.split()[0]) * 1024

    blocks = [bytes(4000) + bytes([i % 256]) for i in range(40_000)]  # 160 MB of small blocks
    keep = blocks[::500]  # a few survivors, so the heap's top cannot simply shrink
    del blocks
    before = rss()
    native.trim_heap()
    assert before - rss() > 100 << 20
    assert len(keep) == 80
