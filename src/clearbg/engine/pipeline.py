"""``Engine.remove(image, options) -> Cutout``: decode -> infer -> refine -> compose -> encode.

The full decode of a large JPEG runs on a worker thread while the model already looks at a
reduced decode of the same file; everything after inference works at the output size only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from clearbg.engine.compose import Box, layers, render
from clearbg.engine.imageio import Pixels, Probe, decode, decode_small, probe
from clearbg.engine.models import ModelStore
from clearbg.engine.options import RemoveOptions
from clearbg.engine.resize import convolve, model_input
from clearbg.engine.session import ModelSession, SessionCache
from clearbg.settings import EngineSettings

__all__ = ["Box", "Cutout", "Engine", "MaskResult", "average", "fuse"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cutout:
    data: bytes
    media_type: str
    width: int
    height: int
    foreground: Box
    model: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[self.media_type]


@dataclass(frozen=True)
class Decoded:
    """A photo ready for the model: its pixels and the model-sized RGB input."""

    pixels: Pixels
    model_input: NDArray[np.uint8]
    model: str
    seconds: float


@dataclass(frozen=True)
class MaskResult:
    """The model's view of one photo: decoded pixels and a 0..1 mask at the model's size."""

    pixels: Pixels
    mask: NDArray[np.float32]
    model: str
    session_seconds: float
    decode_seconds: float


def _at_size(other: NDArray[np.float32], shape: tuple[int, ...]) -> NDArray[np.float32]:
    if other.shape == shape:
        return other
    return np.asarray(
        cv2.resize(other, shape[::-1], interpolation=cv2.INTER_LINEAR), dtype=np.float32
    )


def fuse(mask: NDArray[np.float32], other: NDArray[np.float32]) -> NDArray[np.float32]:
    """The model's mask joined with its companion's, weighted by their agreement: inside each
    region the companion is sure of (``other > 0.5``) that overlaps the model's subject, the
    mean of the model's mask and the larger of the two masks; the model's own mask elsewhere.

    Salient-object models under-segment a subject of several parts in different places (one
    keeps the plant and drops the pot, the other the reverse). Where both are sure the value
    stays; a part only the companion found enters at half its strength, and matting then
    decides from the photo's colours how much of it is the subject. A companion's region that
    touches nothing the model found is another object, and its values outside its regions are
    haze: both stay out. (A per-pixel maximum took all of it in: on cluttered scenes it raised
    MAE and lowered boundary F; docs/quality.md has the figures.)
    """
    other = _at_size(other, mask.shape)
    sure = (other > 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(sure, connectivity=8)
    if count <= 1:
        return mask
    touching = np.zeros(count, dtype=bool)
    touching[labels[(mask > 0.5) & (sure > 0)]] = True
    touching[0] = False
    joined = (mask + np.maximum(mask, other)) * np.float32(0.5)
    return np.where(touching[labels], joined, mask).astype(np.float32)


def average(mask: NDArray[np.float32], other: NDArray[np.float32]) -> NDArray[np.float32]:
    """The mean of two models' masks (at the first mask's size): an ensemble whose values
    are high where both models agree and halfway where one of them alone is sure."""
    return ((mask + _at_size(other, mask.shape)) * np.float32(0.5)).astype(np.float32)


def _predict(
    session: ModelSession, rgb: NDArray[np.uint8], flip: bool
) -> tuple[NDArray[np.float32], float]:
    """The model's mask; with ``flip`` the mean of it and of the mirrored photo's mask mirrored
    back (test-time augmentation: twice the inference time)."""
    mask, seconds = session.predict(rgb)
    if flip:
        mirrored, more = session.predict(np.ascontiguousarray(rgb[:, ::-1]))
        mask = ((mask + mirrored[:, ::-1]) * np.float32(0.5)).astype(np.float32)
        seconds += more
    return mask, seconds


def _resized_for(session: ModelSession, rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Another model's input made from this model's input, as that model's family resizes."""
    fam = session.family
    if rgb.shape[1::-1] == fam.input_size:
        return rgb
    return np.ascontiguousarray(convolve(rgb, fam.input_size, fam.resample))


def _infer(
    session: ModelSession,
    rgb: NDArray[np.uint8],
    flip: bool,
    companion: ModelSession | None = None,
    partner: ModelSession | None = None,
) -> tuple[NDArray[np.float32], float]:
    """The model's mask (``_predict``); with a ``partner`` averaged with that model's mask,
    flipped as this one is (``average``); with a ``companion`` then fused with that model's
    mask (``fuse``). The other models' inputs are resized from this model's input."""
    mask, seconds = _predict(session, rgb, flip)
    if partner is not None:
        other, more = _predict(partner, _resized_for(partner, rgb), flip)
        mask, seconds = average(mask, other), seconds + more
    if companion is not None:
        other, more = companion.predict(_resized_for(companion, rgb))
        mask, seconds = fuse(mask, other), seconds + more
    return mask, seconds


def _key(model: str, threads: int | None) -> str:
    """A session's name in the cache: its model, and its thread count if not the setting's."""
    return model if threads is None else f"{model}@{threads}"


class Engine:
    """Turns photos into cut-outs. Thread-safe; sessions are loaded once and cached.

    ``remove`` does everything for one photo. A caller that streams many photos (the CLI on a
    folder) runs the three stages on different threads: ``decode`` -> ``predict`` -> ``finish``.
    """

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.store = ModelStore.from_settings(self.settings)
        self._sessions = SessionCache(self.settings.loaded_models)
        # decodes ahead of inference and composes/encodes strips; shared by all callers
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clearbg-engine")
        self._warned: set[str] = set()  # companions found missing (warned once each)

    # -- models -------------------------------------------------------------------------------
    def session(self, name: str | None = None, threads: int | None = None) -> ModelSession:
        """The loaded session of a model (the default one if no name), loading it if needed.

        ``threads`` asks for a session with that many intra-op threads instead of the setting's
        (a batch runs photos side by side, one thread each); it is cached as its own entry.
        """
        model = name or self.settings.default_model
        spec = self.store.spec(model)
        count = self.settings.threads if threads is None else threads

        def load() -> ModelSession:
            return ModelSession.load(spec, self.store.ensure(model), count)

        return self._sessions.get(_key(model, threads), load)

    def companion(self, name: str | None = None, threads: int | None = None) -> ModelSession | None:
        """The session of the model's companion (``ModelSpec.companion``), or None when it has
        none, the ``combine`` setting is off, or its weights are not downloaded (then the
        cut-out is the model's alone, and a warning says how to fetch them, once)."""
        spec = self.store.spec(name or self.settings.default_model)
        if spec.companion is None or not self.settings.combine:
            return None
        # once loaded it is in the cache; the disk is asked only before (not on every photo)
        loaded = _key(spec.companion, threads) in self._sessions
        if not loaded and not self.store.path(self.store.spec(spec.companion)).is_file():
            if spec.companion not in self._warned:
                self._warned.add(spec.companion)
                log.warning(
                    "model %s combines with %s, which is not downloaded; run "
                    "`clearbg models pull %s` (cut-outs use %s alone until then)",
                    spec.name,
                    spec.companion,
                    spec.companion,
                    spec.name,
                )
            return None
        return self.session(spec.companion, threads)

    def _other(
        self, name: str, threads: int | None, combine: bool, partner: str | None
    ) -> tuple[ModelSession | None, ModelSession | None]:
        """The companion (when combining) and the partner session of a prediction."""
        other = None if partner is None else self.session(partner, threads)
        return (self.companion(name, threads) if combine else None), other

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- stages -------------------------------------------------------------------------------
    def probe(self, image: bytes) -> Probe:
        return probe(image, self.settings.max_megapixels)

    def _probed(self, image: bytes | Probe) -> Probe:
        return image if isinstance(image, Probe) else self.probe(image)

    def decode(self, image: bytes | Probe, model: str | None = None) -> Decoded:
        """Stage 1: probe (unless given a probe), decode and build the model's input."""
        t0 = time.perf_counter()
        name = model or self.settings.default_model
        fam = self.store.spec(name).preprocessing
        pixels = decode(self._probed(image))
        rgb = model_input(pixels, fam.input_size, fam.resample, self._pool)
        return Decoded(pixels, rgb, name, time.perf_counter() - t0)

    def predict(
        self,
        decoded: Decoded,
        flip: bool = False,
        threads: int | None = None,
        combine: bool = False,
        partner: str | None = None,
    ) -> MaskResult:
        """Stage 2: run the model (twice, the second time on the mirrored photo, if ``flip``;
        fused with its companion's mask if ``combine``; averaged with ``partner``'s mask)."""
        session = self.session(decoded.model, threads)
        other = self._other(decoded.model, threads, combine, partner)
        mask, run_s = _infer(session, decoded.model_input, flip, *other)
        return MaskResult(decoded.pixels, mask, decoded.model, run_s, decoded.seconds)

    def finish(self, result: MaskResult, options: RemoveOptions | None = None) -> Cutout:
        """Stage 3: refine, compose and encode at the output size."""
        opts = options or RemoveOptions()
        t1 = time.perf_counter()
        lay = layers(result.pixels, result.mask, opts, self._pool)
        t2 = time.perf_counter()
        data, media_type = render(lay, opts, self._pool)
        t3 = time.perf_counter()
        timings = {
            "decode": result.decode_seconds,
            "inference": result.session_seconds,
            "refine": t2 - t1,
            "encode": t3 - t2,
        }
        return Cutout(
            data, media_type, lay.width, lay.height, lay.foreground(), result.model, timings
        )

    def mask(
        self,
        image: bytes | Probe,
        model: str | None = None,
        flip: bool = False,
        threads: int | None = None,
        combine: bool = False,
        partner: str | None = None,
        decoded: Callable[[], None] = lambda: None,
    ) -> MaskResult:
        """Decode and run the model, overlapping the two for a large JPEG. With ``flip`` the
        mask is the mean of the photo's and its mirror image's; with a ``partner`` model it is
        the mean of both models' masks (``average``; the best pipeline), each flipped if
        ``flip``; with ``combine`` it is then fused with the companion model's (``fuse``).
        ``decoded()`` is called once the whole photo has decoded (bad input has failed by
        then): before the model runs, or after it when the two overlap."""
        t0 = time.perf_counter()
        name = model or self.settings.default_model
        p = self._probed(image)
        session = self.session(name, threads)
        fam = session.family
        small = decode_small(p, fam.input_size)
        if small is None:
            whole = self.decode(p, name)
            decoded()
            return self.predict(whole, flip, threads, combine, partner)
        # inference on the reduced decode overlaps the full decode on another thread
        full = self._pool.submit(decode, p)
        other = self._other(name, threads, combine, partner)
        rgb = convolve(small, fam.input_size, fam.resample)
        mask, run_s = _infer(session, rgb, flip, *other)
        pixels = full.result()
        decoded()
        return MaskResult(pixels, mask, name, run_s, time.perf_counter() - t0 - run_s)

    def remove(
        self,
        image: bytes | Probe,
        options: RemoveOptions | None = None,
        threads: int | None = None,
    ) -> Cutout:
        """Cut the subject out of ``image`` (encoded bytes, or their probe) as ``options`` ask.
        ``threads``: the model's intra-op threads, when the caller runs photos side by side."""
        t0 = time.perf_counter()
        opts = options or RemoveOptions()
        result = self.mask(image, opts.model, opts.flip, threads, opts.combine, opts.partner)
        cutout = self.finish(result, opts)
        cutout.timings["total"] = time.perf_counter() - t0
        return cutout
