"""Mask -> alpha: pure numpy/OpenCV functions on arrays, unit-tested on tiny inputs.

``refine_alpha`` re-draws the model's upsampled mask against the full-resolution photo with a
colour guided filter (He, Sun and Tang, "Guided Image Filtering", TPAMI 2013), only in the band
where the mask is unsure; ``estimate_foreground`` recovers the subject's own colour in the soft
band (the "blur fusion" idea of Forte and Pitié, "Approximate Fast Foreground Colour
Estimation", ICIP 2021) so the old background does not bleed into edge pixels.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "estimate_foreground",
    "guided_filter",
    "refine_alpha",
    "transition_width",
    "uncertain_band",
]

F32 = NDArray[np.float32]


def _box(a: F32, r: int) -> F32:
    """Mean over a (2r+1) square window, the border mirrored."""
    k = 2 * r + 1
    return np.asarray(
        cv2.boxFilter(a, cv2.CV_32F, (k, k), borderType=cv2.BORDER_REFLECT), dtype=np.float32
    )


def _resize(a: F32, size: tuple[int, int], interpolation: int) -> F32:
    return np.asarray(cv2.resize(a, size, interpolation=interpolation), dtype=np.float32)


def guided_filter(
    guide: F32, src: F32, radius: int, eps: float, step: int = 1, weight: F32 | None = None
) -> F32:
    """Colour guided filter of ``src`` (HxW) steered by ``guide`` (HxWx3, 0..1).

    The output is locally an affine function of the guide's colour, so it follows the photo's
    edges. ``step`` > 1 fits the affine coefficients on a grid ``step`` times coarser and applies
    them at full resolution (He and Sun, "Fast Guided Filter", 2015). With ``weight`` (HxW, >= 0)
    each window's affine fit counts pixels by their weight, so sure pixels teach unsure ones.
    """
    h, w = src.shape
    if step > 1:
        small = (max(1, round(w / step)), max(1, round(h / step)))
        g = _resize(guide, small, cv2.INTER_AREA)
        p = _resize(src, small, cv2.INTER_AREA)
        wt = None if weight is None else _resize(weight, small, cv2.INTER_AREA)
        r = max(1, round(radius / step))
    else:
        g, p, r, wt = guide, src, radius, weight
    if wt is None:

        def mean(x: F32) -> F32:
            return _box(x, r)
    else:
        norm = np.float32(1) / (_box(wt, r) + np.float32(1e-6))
        ww = wt

        def mean(x: F32) -> F32:
            return _box(ww * x, r) * norm

    mean_i = [mean(np.ascontiguousarray(g[..., c])) for c in range(3)]
    mean_p = mean(p)
    cov_ip = [mean(g[..., c] * p) - mean_i[c] * mean_p for c in range(3)]
    # the guide's 3x3 covariance per pixel, regularised by eps
    var = {}
    for a in range(3):
        for b in range(a, 3):
            var[a, b] = mean(g[..., a] * g[..., b]) - mean_i[a] * mean_i[b]
    e = np.float32(eps)
    rr, rg, rb = var[0, 0] + e, var[0, 1], var[0, 2]
    gg, gb, bb = var[1, 1] + e, var[1, 2], var[2, 2] + e
    # inverse by cofactors (the matrix is symmetric)
    i_rr = gg * bb - gb * gb
    i_rg = gb * rb - rg * bb
    i_rb = rg * gb - gg * rb
    i_gg = rr * bb - rb * rb
    i_gb = rb * rg - rr * gb
    i_bb = rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    a_r = (i_rr * cov_ip[0] + i_rg * cov_ip[1] + i_rb * cov_ip[2]) / det
    a_g = (i_rg * cov_ip[0] + i_gg * cov_ip[1] + i_gb * cov_ip[2]) / det
    a_b = (i_rb * cov_ip[0] + i_gb * cov_ip[1] + i_bb * cov_ip[2]) / det
    b = mean_p - a_r * mean_i[0] - a_g * mean_i[1] - a_b * mean_i[2]
    coeffs = [_box(x, r) for x in (a_r, a_g, a_b, b)]
    if step > 1:
        coeffs = [_resize(x, (w, h), cv2.INTER_LINEAR) for x in coeffs]
    q: F32 = (
        coeffs[0] * guide[..., 0] + coeffs[1] * guide[..., 1] + coeffs[2] * guide[..., 2]
    ) + coeffs[3]
    return q


def uncertain_band(
    coarse: F32, width: int, lo: float = 0.02, hi: float = 0.98
) -> NDArray[np.bool_]:
    """Pixels within ``width`` of where the mask is neither clearly in nor clearly out."""
    soft = ((coarse > lo) & (coarse < hi)).astype(np.uint8)
    edge = np.asarray(
        cv2.morphologyEx(
            (coarse >= 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)
        ),
        dtype=np.uint8,
    )
    seed = soft | edge
    k = 2 * width + 1
    band = np.asarray(cv2.dilate(seed, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))))
    return band > 0


def transition_width(coarse: F32) -> int:
    """How many pixels the mask takes to go from out to in: its soft area over its edge length.

    An upsampled mask is as blurred as the ratio of the photo to the model's grid; the filter has
    to reach across that blur to find the photo's edge, so its radius follows this width.
    """
    soft = int(np.count_nonzero((coarse > 0.05) & (coarse < 0.95)))
    inside = (coarse >= 0.5).astype(np.uint8)
    edge = int(np.count_nonzero(inside[1:, :] != inside[:-1, :]))
    edge += int(np.count_nonzero(inside[:, 1:] != inside[:, :-1]))
    limit = max(2, min(coarse.shape) // 20)
    return int(np.clip(round(soft / max(1, edge)), 2, limit))


def refine_alpha(rgb: NDArray[np.uint8], coarse: F32, passes: int = 1) -> F32:
    """Refined alpha (HxW float32 in 0..1) from the photo and the upsampled model mask.

    A colour guided filter of the mask, steered by the photo, replaces the mask only in the band
    where the mask is unsure (and a filter radius around it); clear inside and outside keep the
    model's values. The filter's local colour -> alpha fits weigh each pixel by how sure the model
    is of it ((2m - 1)^2), so unsure pixels take their alpha from sure ones of the same colour.
    The radius is the width of the mask's own soft transitions (so it follows the ratio of photo
    to model size); the coefficients are fitted on a grid up to 4x coarser.
    More ``passes`` (each filters the previous result) pull a blurred edge further onto the
    photo's edge; one pass is the default (on ECSSD further passes cost boundary F).
    """
    if coarse.shape != rgb.shape[:2]:
        raise ValueError(f"mask {coarse.shape} and photo {rgb.shape[:2]} differ in size")
    if passes < 1:
        raise ValueError("passes must be 1 or more")
    src = np.ascontiguousarray(coarse, dtype=np.float32)
    radius = transition_width(src)
    guide = rgb.astype(np.float32) * np.float32(1 / 255)
    band = uncertain_band(src, radius)
    out = src
    for _ in range(passes):
        sure = np.abs(2 * out - 1)
        q = guided_filter(guide, out, radius, 1e-4, min(4, max(1, radius // 2)), sure * sure)
        out = np.where(band, np.clip(q, 0, 1), src)
    return out.astype(np.float32)


@dataclass(frozen=True)
class _Pass:
    """One blur-fusion pass: a wide window's mean is smooth, so it is taken on a grid up to 8x
    coarser (``step``) and scaled back up; the local means of alpha and of 1 - alpha are the
    same for every colour plane, so they are computed once."""

    step: int
    small: tuple[int, int]  # the grid's size
    radius: int  # the window's radius on the grid
    weight_f: F32
    weight_b: F32

    @classmethod
    def of(cls, alpha: F32, radius: int) -> _Pass:
        h, w = alpha.shape
        step = max(1, min(8, radius // 8))
        small = (max(1, round(w / step)), max(1, round(h / step)))
        r = max(1, round(radius / step))
        a = alpha if step == 1 else _resize(alpha, small, cv2.INTER_AREA)
        tiny = np.float32(1e-5)
        return cls(step, small, r, _box(a, r) + tiny, _box(1 - a, r) + tiny)

    def mean(self, x: F32, weight: F32) -> F32:
        """The local mean of ``x`` over ``weight``'s, back at ``x``'s size."""
        h, w = x.shape
        small = x if self.step == 1 else _resize(x, self.small, cv2.INTER_AREA)
        out = _box(small, self.radius)
        out /= weight
        return out if self.step == 1 else _resize(out, (w, h), cv2.INTER_LINEAR)


def _fuse_plane(
    plane: NDArray[np.uint8], alpha: F32, beta: F32, passes: list[_Pass]
) -> NDArray[np.uint8]:
    """Blur fusion of one colour plane (alpha's complement ``beta`` = 1 - alpha). Each pass:
    local means of F (weighted by alpha) and B (by 1 - alpha), then the compositing residual
    I - (aF + (1-a)B) shared between them in proportion to a and 1 - a."""
    image = plane.astype(np.float32) * np.float32(1 / 255)
    fg = bg = image
    for one in passes:
        f_hat = one.mean(fg * alpha, one.weight_f)
        b_hat = one.mean(bg * beta, one.weight_b)
        residual = alpha * f_hat
        np.subtract(image, residual, out=residual)
        residual -= beta * b_hat
        f_hat += alpha * residual
        residual *= beta
        b_hat += residual
        fg, bg = f_hat, b_hat
    np.clip(fg, 0, 1, out=fg)
    np.copyto(fg, image, where=alpha >= 1)
    fg *= 255
    fg += 0.5
    return fg.astype(np.uint8)


def estimate_foreground(
    rgb: NDArray[np.uint8], alpha: F32, pool: Executor | None = None
) -> NDArray[np.uint8]:
    """The subject's colour (HxWx3 uint8) where alpha is soft; the photo elsewhere.

    Two blur-fusion passes (after Forte and Pitié 2021): a wide one that carries colour from far
    inside the subject and the background into the band, then a narrow one that keeps detail.
    Where alpha is 1 the photo is returned unchanged.

    Each colour plane is fused on its own, two of them on ``pool`` if one is given: a plane is
    a contiguous 2-D array, where HxWx3 arithmetic against an HxWx1 alpha runs numpy's slow
    broadcasting loops (the same bytes in less than half the time: docs/performance-notes.md).
    """
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} and photo {rgb.shape[:2]} differ in size")
    a = np.clip(alpha, 0, 1).astype(np.float32)
    beta = 1 - a
    side = min(a.shape)
    passes = [_Pass.of(a, r) for r in (max(3, side // 10), max(1, side // 150))]
    planes = [np.asarray(p, dtype=np.uint8) for p in cv2.split(rgb)]
    if pool is None:
        fused = [_fuse_plane(p, a, beta, passes) for p in planes]
    else:
        rest = [pool.submit(_fuse_plane, p, a, beta, passes) for p in planes[1:]]
        fused = [_fuse_plane(planes[0], a, beta, passes), *(f.result() for f in rest)]
    return np.asarray(cv2.merge(fused), dtype=np.uint8)
