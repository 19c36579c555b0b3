from __future__ import annotations

import io

import numpy as np
from PIL import Image

from clearbg.engine import Engine, RemoveOptions


def test_remove_gives_a_transparent_png_of_the_photo_size(
    engine: Engine, photo_bytes: bytes
) -> None:
    cut = engine.remove(photo_bytes, RemoveOptions())
    im = Image.open(io.BytesIO(cut.data))
    assert (im.format, im.mode, im.size) == ("PNG", "RGBA", (480, 360))
    alpha = np.asarray(im)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255
    assert cut.model == "u2netp"
    assert 0 < cut.foreground.width <= 480
