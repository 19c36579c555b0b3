"""Alpha matting in the band where the model is unsure: trimap, matting Laplacian, solve.

The model's mask decides where the subject is; the photo's colours decide how soft its edge is.
``matte_alpha`` builds a trimap from the mask (sure inside and outside, an unknown band between
them sized by the mask's own blur), then solves closed-form matting (Levin, Lischinski and Weiss,
"A Closed-Form Solution to Natural Image Matting", TPAMI 2008) in the unknown band, with the
model's mask as a soft prior weighted by how sure the model is. The matting Laplacian is never
built: its product with a vector is a guided filter (He, Sun and Tang, "Fast Matting Using Large
Kernel Matting Laplacian Matrices", CVPR 2010), so a conjugate-gradient solve costs a few box
filters per iteration. The solve runs on a grid about as fine as the model's own output and is
brought back to the photo's size by fast guided upsampling (He and Sun 2015).
"""

from __future__ import annotations

from typing import TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from clearbg.engine.refine import guided_filter, transition_width

__all__ = ["MattingLaplacian", "anchor", "harden", "matte_alpha", "solve_matte", "trimap"]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
F = TypeVar("F", NDArray[np.float32], NDArray[np.float64])
B = NDArray[np.bool_]

WORK_PIXELS = 100_000  # the solve's grid: about the model's own 320x320 output
RADIUS = 2  # window radius of the matting Laplacian on that grid
EPS = 1e-5  # its regulariser (colour variance, 0..1 scale)
ITERATIONS = 30  # conjugate-gradient steps; the model's mask is the starting point
# the matte's contrast around one half (``harden``); chosen on ECSSD and the matting photos,
# checked on PASCAL-S (docs/quality.md)
CONTRAST = 2.0
# The trimap's sure regions (``matte_alpha``): the model's own "in", and what ``harden`` clears.
SURE_IN = 0.5
SURE_OUT = 0.5 - 0.5 / CONTRAST


class MattingLaplacian:
    """Levin's matting Laplacian of a photo (HxWx3, 0..1) as an operator: ``lap(x)`` is L x.

    Every (2r+1)^2 window, including those cut by the border, fits alpha as an affine function
    of colour; L x sums over windows how far x is from its own best fit. Symmetric and positive
    semi-definite, as conjugate gradients need. The guide's window statistics are computed once,
    in float64, and kept in float32, as the solve runs: it moves half the bytes of float64
    and the alpha by at most 0.0003 (docs/performance-notes.md has the timing).
    """

    def __init__(self, guide: F32, radius: int = RADIUS, eps: float = EPS) -> None:
        if guide.ndim != 3 or guide.shape[2] != 3:
            raise ValueError(f"guide must be HxWx3, not {guide.shape}")
        self._k = (2 * radius + 1, 2 * radius + 1)
        g = guide.astype(np.float64)
        planes = [np.ascontiguousarray(g[..., c]) for c in range(3)]
        count = self._sum(np.ones(g.shape[:2]))
        mu = [self._sum(c) / count for c in planes]
        var: dict[tuple[int, int], F64] = {}
        for a in range(3):
            for b in range(a, 3):
                var[a, b] = self._sum(planes[a] * planes[b]) / count - mu[a] * mu[b]
        rr, rg, rb = var[0, 0] + eps, var[0, 1], var[0, 2]
        gg, gb, bb = var[1, 1] + eps, var[1, 2], var[2, 2] + eps
        inv = [
            gg * bb - gb * gb,
            gb * rb - rg * bb,
            rg * gb - gg * rb,
            rr * bb - rb * rb,
            rb * rg - rr * gb,
            rr * gg - rg * rg,
        ]
        det = rr * inv[0] + rg * inv[1] + rb * inv[2]
        f32 = np.float32
        self.count: F32 = count.astype(f32)
        self._g: list[F32] = [c.astype(f32) for c in planes]
        self._mu: list[F32] = [m.astype(f32) for m in mu]
        self._inv: list[F32] = [(x / det).astype(f32) for x in inv]

    def _sum(self, x: F) -> F:
        """Window sums, in ``x``'s own precision."""
        out = cv2.boxFilter(x, -1, self._k, normalize=False, borderType=cv2.BORDER_CONSTANT)
        return np.asarray(out, dtype=x.dtype)

    def __call__(self, x: F32) -> F32:
        n, mu, g = self.count, self._mu, self._g
        mean_x = self._sum(x) / n
        cov = [self._sum(g[c] * x) / n - mu[c] * mean_x for c in range(3)]
        i_rr, i_rg, i_rb, i_gg, i_gb, i_bb = self._inv
        a0 = i_rr * cov[0] + i_rg * cov[1] + i_rb * cov[2]
        a1 = i_rg * cov[0] + i_gg * cov[1] + i_gb * cov[2]
        a2 = i_rb * cov[0] + i_gb * cov[1] + i_bb * cov[2]
        b = mean_x - a0 * mu[0] - a1 * mu[1] - a2 * mu[2]
        fit = self._sum(a0) * g[0] + self._sum(a1) * g[1] + self._sum(a2) * g[2] + self._sum(b)
        out: F32 = n * x - fit
        return out


def trimap(coarse: F32, width: int, lo: float = SURE_OUT, hi: float = SURE_IN) -> tuple[B, B]:
    """Sure foreground and sure background: where the mask is above ``hi`` (below ``lo``),
    ``width`` pixels away from anything else. Everything between is the unknown band."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    fg = np.asarray(cv2.erode((coarse > hi).astype(np.uint8), k)) > 0
    bg = np.asarray(cv2.erode((coarse < lo).astype(np.uint8), k)) > 0
    return fg, bg


def solve_matte(
    lap: MattingLaplacian,
    known: F32,
    unknown: B,
    prior: F32,
    prior_weight: F32,
    iterations: int = ITERATIONS,
) -> F32:
    """Alpha minimising a^T L a + sum w (a - prior)^2, with a fixed to ``known`` outside
    ``unknown``: conjugate gradients preconditioned by the diagonal, started from the prior."""
    u = unknown.astype(np.float32)
    # in float32, as the Laplacian works (no copy when they already are, as matte_alpha's are)
    known, prior = np.asarray(known, np.float32), np.asarray(prior, np.float32)
    weight = np.asarray(prior_weight, np.float32) * u

    def apply(x: F32) -> F32:
        out: F32 = u * lap(u * x) + weight * x
        return out

    fixed = known * (1 - u)
    rhs = -u * lap(fixed) + weight * prior
    x = u * prior
    res = rhs - apply(x)
    dinv = np.asarray(u / (lap.count + weight + np.float32(1e-12)), dtype=np.float32)
    z = dinv * res
    p = z.copy()
    rz = float((res * z).sum())
    start = float(np.sqrt((res * res).sum())) + 1e-30
    for _ in range(iterations):
        ap = apply(p)
        pap = float((p * ap).sum())
        if pap <= 0 or rz <= 0:
            break
        step = np.float32(rz / pap)
        x += step * p
        res -= step * ap
        if float(np.sqrt((res * res).sum())) < 1e-4 * start:
            break
        z = dinv * res
        rz_new = float((res * z).sum())
        p = z + np.float32(rz_new / rz) * p
        rz = rz_new
    out: F32 = np.where(unknown, x, known)
    return out


def harden(alpha: F32, contrast: float = CONTRAST) -> F32:
    """Alpha with its contrast around one half raised: ``(a - 0.5) * contrast + 0.5``, clipped.

    With the default 2, alpha under 1/4 becomes 0 and over 3/4 becomes 1, linearly between.
    Values that far from one half in the matte's band are mostly the model's own doubt carried
    through the solve (a faint haze over background clutter, a grey cast over a subject it half
    found), not partial coverage; a hair or fur band keeps its gradation in the middle. On
    cluttered scenes this is what keeps the refined MAE below the raw model's.
    """
    if contrast == 1.0:
        return alpha
    out = np.asarray(alpha, dtype=np.float32) - np.float32(0.5)
    out *= np.float32(contrast)
    out += np.float32(0.5)
    hardened: F32 = np.clip(out, 0, 1, out=out)
    return hardened


def matte_alpha(
    rgb: NDArray[np.uint8],
    coarse: F32,
    work_pixels: int = WORK_PIXELS,
    iterations: int = ITERATIONS,
    contrast: float = CONTRAST,
    sure: tuple[float, float] = (SURE_OUT, SURE_IN),
) -> F32:
    """Alpha (HxW float32, 0..1) from the photo and the upsampled model mask by matting.

    On a grid of about ``work_pixels``: a trimap, closed-form matting in its unknown band with
    the model's mask as a prior weighted by its confidence ((2m - 1)^2: a mask at 0.5 leaves the
    photo to decide). Back at full size, a fast guided filter carries the grid's colour -> alpha
    fit onto the photo's own pixels, and the result is hardened (``harden``; ``contrast=1``
    leaves the matte as solved).

    The trimap decides per region whether an edge is the photo's to draw. What the model calls
    in (``SURE_IN``) is taken whole beyond the width of the mask's own transitions from its
    contour: a grey cast over a subject it half found is its doubt, not partial coverage. What
    it calls out so faintly that ``harden`` would clear it (``SURE_OUT``) is background. The
    rest is left to the photo's colours: the band along the contour (hair, fur, a soft edge) and
    the parts the model leans against without being sure of, where salient-object models miss
    pieces of a subject (a part only the companion found enters ``fuse`` at about that value).
    ``sure`` (the trimap's ``lo`` and ``hi``) moves those two limits; the evaluation scores a
    band of everything between 0.05 and 0.95 beside them (docs/quality.md).
    """
    if coarse.shape != rgb.shape[:2]:
        raise ValueError(f"mask {coarse.shape} and photo {rgb.shape[:2]} differ in size")
    h, w = coarse.shape
    scale = min(1.0, (work_pixels / (h * w)) ** 0.5)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale < 1.0:
        guide = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        mask = np.asarray(cv2.resize(coarse, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
    else:
        guide, mask = rgb, np.ascontiguousarray(coarse, dtype=np.float32)
    fg, bg = trimap(mask, transition_width(mask), *sure)
    unknown = ~(fg | bg)
    if not unknown.any():  # no contour and nothing undecided: the model's decision stands
        return np.asarray(coarse > sure[1], dtype=np.float32)
    lap = MattingLaplacian(guide.astype(np.float32) * np.float32(1 / 255))
    prior = mask.astype(np.float32)
    confidence = (2 * prior - 1) ** 2
    alpha = solve_matte(lap, fg.astype(np.float32), unknown, prior, confidence, iterations)
    small = np.clip(alpha, 0, 1).astype(np.float32)
    if scale == 1.0:
        return harden(small, contrast)
    up = np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    full = rgb.astype(np.float32) * np.float32(1 / 255)
    step = max(1, round(1 / scale))
    out = guided_filter(full, up, max(1, round(RADIUS / scale)), 1e-4, step)
    return harden(np.clip(out, 0, 1).astype(np.float32), contrast)


def anchor(alpha: F32, coarse: F32) -> F32:
    """A matte (``matte_alpha`` of ``coarse``) anchored to the mask's decision: it may take
    pixels out of the mask's subject (a background gap, an edge drawn tighter) but not bring in
    pixels the mask calls out; those keep the hardened mask (``harden``), which leaves them out.

    For an ensemble of models (the best pipeline), whose mask has already decided which objects
    are the subject: on cluttered scenes a colour match pulled in parts of other objects and
    background (IoU and boundary F lost against the unrefined ensemble), while on the matting
    photos the edges it added were a small part of the gain (docs/quality.md has both).
    """
    pulled_in = (alpha > SURE_IN) & (coarse <= SURE_IN)
    anchored: F32 = np.where(pulled_in, harden(coarse), alpha).astype(np.float32)
    return anchored
