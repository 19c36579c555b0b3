"""int8 models built on the user's machine from verified fp32 U-2-Net weights.

``clearbg models pull u2net-int8`` ends here (``QuantizedSource`` in ``models.py``). The fp32
model is pulled and verified, a few public-domain and CC0 photos are taken from the
scikit-image wheel on PyPI (fetched with pip, never installed; nothing is committed), and
ONNX Runtime quantises the model statically, as ``bench/variant.py`` found fastest:

- opset 13 (per-channel QDQ needs it; the U-2-Net files are opset 11), then ORT's
  pre-processing (fusions and shapes; without symbolic shape inference, which needs sympy);
- QDQ form, u8 activations, s8 weights per output channel (7 bits of range, which no
  CPU's int8 kernels saturate), MinMax calibration;
- the input convolution and the mask head (side outputs, their fusion, the sigmoids) in fp32.

The result is checked before it is stored: on every calibration view its mask (alpha > 0.5)
must match the fp32 model's, else ``ModelBuildError`` and nothing lands in the cache.
Building needs the ``onnx`` package (``pip install 'clearbg[int8]'``); running the built model
needs ONNX Runtime alone.
"""

from __future__ import annotations

import hashlib
import io
import logging
import statistics
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine.imageio import Pixels
from clearbg.engine.models import ModelSpec, download_wheel
from clearbg.engine.resize import model_input
from clearbg.engine.session import ModelSession
from clearbg.errors import ModelBuildError, ModelDownloadError

__all__ = [
    "CALIBRATION",
    "BuildCheck",
    "CalibrationSet",
    "Photo",
    "build_int8",
    "calibration_tensors",
    "check",
    "fetch_photos",
    "quantize",
    "quantize_checked",
    "require_onnx",
]

Progress = Callable[[str], None]
Tensor = NDArray[np.float32]


@dataclass(frozen=True)
class Photo:
    member: str  # path inside the wheel
    sha256: str
    licence: str


@dataclass(frozen=True)
class CalibrationSet:
    """Photos inside one wheel on PyPI. The wheel is named by its tags, so every machine
    fetches the very same file (its photos are the same in every platform's wheel)."""

    package: str
    version: str
    python_version: str
    platform: str
    photos: tuple[Photo, ...]

    def describe(self) -> str:
        return f"{len(self.photos)} photos from {self.package}=={self.version}"


# The photo-like images scikit-image ships in its wheel, with the licences its
# ``skimage/data/_fetchers.py`` states for them.
CALIBRATION = CalibrationSet(
    package="scikit-image",
    version="0.26.0",
    python_version="3.11",
    platform="manylinux_2_28_x86_64",
    photos=(
        Photo(
            "skimage/data/astronaut.png",
            "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
            "public domain (NASA)",
        ),
        Photo(
            "skimage/data/chelsea.png",
            "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
            "CC0 (Stefan van der Walt)",
        ),
        Photo(
            "skimage/data/coffee.png",
            "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
            "CC0 (Rachel Michetti)",
        ),
        Photo(
            "skimage/data/rocket.jpg",
            "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
            "public domain (SpaceX)",
        ),
        Photo(
            "skimage/data/camera.png",
            "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
            "CC0 (Lav Varshney)",
        ),
    ),
)

# The built model's masks against the fp32 model's on the calibration views: the mean IoU of
# alpha > 0.5. Some views are ones on which fp32 itself is undecided (the cat's mirror image
# flips fp32's mask from 61% of the frame to 34%; a rocket 2% of the frame), where any change
# moves IoU a lot: a sound u2net build scores 0.94 on them, u2netp with every Conv in int8 0.42.
MEAN_IOU_FLOOR = 0.90


@dataclass(frozen=True)
class BuildCheck:
    """How the built model's masks agree with the fp32 model's, one IoU a calibration view."""

    ious: tuple[float, ...]
    seconds: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ious)

    @property
    def worst(self) -> float:
        return min(self.ious)

    def passed(self) -> bool:
        return self.mean >= MEAN_IOU_FLOOR

    def describe(self, base: str) -> str:
        return (
            f"mask IoU against {base}: mean {self.mean:.4f} (floor {MEAN_IOU_FLOOR}), worst "
            f"{self.worst:.4f}, on {len(self.ious)} views"
        )


def fetch_photos(
    pip_cmd: Sequence[str], work: Path, photos: CalibrationSet = CALIBRATION
) -> list[NDArray[np.uint8]]:
    """Download the wheel with pip and read its photos as RGB, each checked by SHA-256."""
    wheel = download_wheel(
        pip_cmd, photos.package, photos.version, work, photos.python_version, photos.platform
    )
    out = []
    with zipfile.ZipFile(wheel) as zf:
        for photo in photos.photos:
            data = zf.read(photo.member)
            if hashlib.sha256(data).hexdigest() != photo.sha256:
                raise ModelDownloadError(f"{wheel.name}: {photo.member} has the wrong sha256")
            with Image.open(io.BytesIO(data)) as im:
                out.append(np.asarray(im.convert("RGB")))
    return out


def _views(rgb: NDArray[np.uint8]) -> Iterator[NDArray[np.uint8]]:
    """The photo, its mirror image and two crops: activations of other framings and scales."""
    h, w = rgb.shape[:2]
    yield rgb
    yield rgb[:, ::-1]
    yield rgb[h // 8 : h - h // 8, w // 8 : w - w // 8]  # closer
    yield rgb[: h - h // 4, w // 4 :]  # off-centre


def calibration_tensors(spec: ModelSpec, photos: Sequence[NDArray[np.uint8]]) -> list[Tensor]:
    """Each view of each photo as the engine feeds it to ``spec``: resized, normalised."""
    fam = spec.preprocessing
    prep = ModelSession(spec, None, spec.input_name)
    return [
        prep.prepare(model_input(Pixels(np.ascontiguousarray(v)), fam.input_size, fam.resample))
        for rgb in photos
        for v in _views(rgb)
    ]


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader``: one prepared tensor at a time."""

    def __init__(self, input_name: str, tensors: Sequence[Tensor]) -> None:
        self._feeds = iter([{input_name: t} for t in tensors])

    def get_next(self) -> dict[str, Tensor] | None:
        return next(self._feeds, None)


def require_onnx() -> Any:
    """The ``onnx`` module, which building needs (and running does not)."""
    try:
        import onnx
    except ImportError as exc:
        raise ModelBuildError(
            "building an int8 model needs the onnx package: pip install 'clearbg[int8]'"
        ) from exc
    return onnx


def quantize(
    src: Path,
    dest: Path,
    input_name: str,
    tensors: Sequence[Tensor],
    work: Path,
) -> None:
    """``src`` (fp32) -> ``dest`` (int8 QDQ), calibrated on ``tensors``."""
    onnx = require_onnx()
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    opset13, pre = work / "opset13.onnx", work / "pre.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT's advice to pre-process the model (done here) etc.
    try:
        onnx.save(version_converter.convert_version(onnx.load(str(src)), 13), str(opset13))
        quant_pre_process(str(opset13), str(pre), skip_symbolic_shape=True)
        opset13.unlink()
        quantize_static(
            str(pre),
            str(dest),
            _Reader(input_name, tensors),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) multiply u8 by
            # s8 in pairs summed into 16 bits, which saturate with full-range weights (the
            # worst case: ``bench/int8_bench.py --only conv``); 7-bit activations instead would
            # not saturate either, but lose far more agreement (docs/performance-notes.md)
            reduce_range=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=_fp32_nodes(onnx.load(str(pre))),
            # no CalibMaxIntermediateOutputs: ONNX Runtime 1.32 drops every full batch of
            # outputs unmeasured, calibrating on the last few views alone (the calibration
            # model's extra outputs are each tensor's min and max: all views fit in memory)
        )
    except (OSError, ModelBuildError):
        raise
    except Exception as exc:  # onnx and ORT raise their own untyped errors: translate once
        raise ModelBuildError(f"cannot quantise {src.name}: {exc}") from exc
    finally:
        root.setLevel(level)
        pre.unlink(missing_ok=True)


def _fp32_nodes(model: Any) -> list[str]:
    """The nodes kept in fp32: the convolution of the input, and the mask head (everything
    from the one-channel convolutions, the side outputs and their fusion, to the outputs).
    A few percent of the FLOPs, and closer to u2net's masks in fp32: mean IoU on the first
    100 PASCAL-S photos 0.946 -> 0.956, 60 ECSSD 0.983 -> 0.984 (``bench/int8_bench.py``)."""
    g = model.graph
    weights = {t.name: t for t in g.initializer}
    inputs = {i.name for i in g.input}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    first = [n for n in g.node if n.op_type == "Conv" and n.input[0] in inputs]
    stack = [
        n
        for n in g.node
        if n.op_type == "Conv" and n.input[1] in weights and weights[n.input[1]].dims[0] == 1
    ]
    tail: dict[str, Any] = {}
    while stack:
        n = stack.pop()
        if n.name not in tail:
            tail[n.name] = n
            stack += [c for out in n.output for c in consumers.get(out, [])]
    return [n.name for n in first] + list(tail)


def check(spec: ModelSpec, fp32: Path, int8: Path, tensors: Sequence[Tensor]) -> BuildCheck:
    """IoU of the int8 mask (alpha > 0.5) against the fp32 one on each tensor."""
    t0 = time.perf_counter()
    a, b = ModelSession.load(spec, fp32), ModelSession.load(spec, int8)
    ious = []
    for t in tensors:
        ma, mb = a.normalise(a.run(t)) > 0.5, b.normalise(b.run(t)) > 0.5
        union = int(np.count_nonzero(ma | mb))
        ious.append(1.0 if union == 0 else int(np.count_nonzero(ma & mb)) / union)
    return BuildCheck(tuple(ious), time.perf_counter() - t0)


def quantize_checked(
    spec: ModelSpec,
    src: Path,
    dest: Path,
    tensors: Sequence[Tensor],
    work: Path,
    progress: Progress | None = None,
) -> BuildCheck:
    """``quantize``, then ``check``: ``ModelBuildError`` if the masks disagree."""
    say = progress or (lambda _msg: None)
    say(f"  quantising {spec.name} on {len(tensors)} views (minutes)")
    quantize(src, dest, spec.input_name, tensors, work)
    result = check(spec, src, dest, tensors)
    say(f"  {result.describe(spec.name)}")
    if not result.passed():
        raise ModelBuildError(
            f"the int8 build of {spec.name} fails its check: {result.describe(spec.name)}"
        )
    return result


def build_int8(
    spec: ModelSpec,
    src: Path,
    dest: Path,
    pip_cmd: Sequence[str],
    work: Path,
    progress: Progress | None = None,
) -> BuildCheck:
    """Quantise ``spec``'s verified fp32 file ``src`` into ``dest``, calibrated on every view
    of the ``CALIBRATION`` photos (fetched into ``work``), and check it."""
    if progress:
        progress(f"  calibration photos: {CALIBRATION.describe()}")
    tensors = calibration_tensors(spec, fetch_photos(pip_cmd, work))
    return quantize_checked(spec, src, dest, tensors, work, progress)
