"""The session wrapper's input tensor: the normalisation each family asks for, exactly."""

from __future__ import annotations

import numpy as np
import pytest

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
