"""The public PNG decoders side by side: which one ``imageio`` decodes PNGs with.

For PNGs of each kind made from ../shared/data's 1.5 MP photo PNG (plants-1) and, with
``--large``, the 24 MP RGBA PNG: medians of ``--reps`` decodes to an RGB(A) numpy array, the
decoders taking turns in alternating order (the machine may be shared).

    .venv/bin/python bench/png_decoders.py --data ../shared/data [--reps 21] [--large]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyspng
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine.imageio import _decode_png

Decoder = Callable[[bytes], NDArray[np.generic] | None]
_TO_RGB = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}


def _opencv(data: bytes) -> NDArray[np.generic]:
    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(a, _TO_RGB[a.shape[2]]) if a.ndim == 3 else a


def _pillow(data: bytes) -> NDArray[np.generic]:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


DECODERS: dict[str, Decoder] = {
    "clearbg": _decode_png,  # pyspng, the CRCs checked, 16-bit scaled to 8
    "pyspng": pyspng.load,
    "opencv": _opencv,
    "pillow": _pillow,
}


def _png(a: NDArray[np.generic]) -> bytes:
    ok, buf = cv2.imencode(".png", a)  # OpenCV writes 16-bit colour; Pillow does not
    if not ok:
        raise RuntimeError("OpenCV could not write the PNG")
    return buf.tobytes()


def cases(data: Path, large: bool) -> dict[str, bytes]:
    photos = data / "photos"
    if large:
        return {"RGBA 24 MP": (photos / "food-1.out.alpha.jpg").read_bytes()}
    plants = (photos / "plants-1.jpg").read_bytes()
    rgba = np.asarray(Image.open(io.BytesIO(plants)))
    bgr = np.ascontiguousarray(rgba[..., 2::-1])
    palette = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[..., :3])).quantize(256).save(palette, "PNG")
    return {
        "RGBA 1.5 MP": plants,
        "RGB": _png(bgr),
        "grey": _png(np.ascontiguousarray(rgba[..., 0])),
        "palette": palette.getvalue(),
        "RGB 16-bit": _png(bgr.astype(np.uint16) * 257),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--large", action="store_true", help="the 24 MP PNG instead")
    args = ap.parse_args()
    print(f"{'':12}" + "".join(f"{name:>10}" for name in DECODERS) + "   (ms, medians)")
    for kind, png in cases(args.data, args.large).items():
        times: dict[str, list[float]] = {name: [] for name in DECODERS}
        for rep in range(args.reps):
            for name in list(DECODERS)[:: 1 if rep % 2 else -1]:
                t0 = time.perf_counter()
                DECODERS[name](png)
                times[name].append(time.perf_counter() - t0)
        row = "".join(f"{statistics.median(t) * 1000:10.1f}" for t in times.values())
        print(f"{kind:12}{row}", flush=True)


if __name__ == "__main__":
    main()
