"""Mask quality of every model, raw and through the default pipeline, on three sets.

``pascal`` (PASCAL-S: cluttered scenes, several objects), ``ecssd`` (one clear subject) and
``matting`` (alphamatting.com: hair, fur, soft ground truth). Per model: ``raw`` (the model's
mask alone) and ``pipeline`` (what ``Engine.remove`` does by default: the mask fused with its
companion's where the model has one, ``pipeline.fuse``, then matting and ``harden``), each
change against raw, and ``best``, the best pipeline (``--pipeline best``: isnet's and u2net's
masks averaged, then fused and matted, the matte anchored (``matting.anchor``); ``best, flip``
with both mirrored passes, where cached). ``--ablation`` adds each step alone: the companion
joined by a per-pixel maximum (the fusion before ``fuse``), fused, matting without hardening,
the pipeline with an unknown band of every pixel the mask has between 0.05 and 0.95 (instead of
``matting.trimap``'s own limits), flipped; for the best pipeline its mask unrefined, its matte
not anchored (``matte_alpha``), and the oracle: per photo the raw mask (isnet, u2net or u2netp)
with the highest IoU, the bound of any choice between the models.

    python bench/eval.py --data ../shared/data [--models u2net,isnet] [--limit N] [--ablation]

Raw model-resolution masks are cached in ``bench/out/cache/<model>/<set>/<name>.npy`` (inference is
the slow part); ``--masks-only`` fills the cache and stops, ``--flip`` adds the mirrored passes
(``best, flip`` needs isnet's and u2net's). The masks depend on how the engine makes the
model's input: after changing that, give ``--cache`` a new folder (or delete the old).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine import Engine, matting, refine
from clearbg.engine.models import MODELS as MODEL_SPECS
from clearbg.engine.options import BEST_MODEL, BEST_PARTNER
from clearbg.engine.pipeline import average, fuse
from clearbg.settings import EngineSettings

MODELS = ("u2netp", "u2net", "isnet", "isnet-quint8")
SETS = ("pascal", "ecssd", "matting")
CACHE = Path(__file__).parent / "out" / "cache"


def list_images(data: Path, dataset: str, limit: int | None) -> list[Path]:
    images = sorted((data / dataset / "images").iterdir())
    return images[:limit] if limit else images


def cache_path(cache: Path, model: str, dataset: str, image: Path, flip: bool) -> Path:
    return cache / model / dataset / f"{image.stem}{'.flip' if flip else ''}.npy"


def compute_masks(
    engine: Engine, cache: Path, images: list[Path], model: str, dataset: str, flip: bool
) -> None:
    """Run the model on every image not cached yet (and on its mirror image if ``flip``)."""
    todo = [p for p in images if not cache_path(cache, model, dataset, p, flip).exists()]
    t0 = time.perf_counter()
    for i, path in enumerate(todo):
        data = path.read_bytes()
        if flip:
            decoded = engine.decode(data, model)
            mirrored = np.ascontiguousarray(decoded.model_input[:, ::-1])
            mask, _ = engine.session(model).predict(mirrored)
            mask = mask[:, ::-1]
        else:
            mask = engine.mask(data, model).mask
        out = cache_path(cache, model, dataset, path, flip)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, mask.astype(np.float32))
        if (i + 1) % 50 == 0:
            rate = (time.perf_counter() - t0) / (i + 1)
            print(
                f"  {model} {dataset}{' flip' if flip else ''}: {i + 1}/{len(todo)} "
                f"({rate:.2f} s/img)",
                file=sys.stderr,
                flush=True,
            )


# -- metrics -------------------------------------------------------------------------------------
def upsample(mask: NDArray[np.float32], size: tuple[int, int]) -> NDArray[np.float32]:
    """The model's mask at the photo's size, as the pipeline makes it (8-bit, Lanczos)."""
    im = Image.fromarray((mask * 255).astype(np.uint8))
    return np.asarray(im.resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255


def _edges(binary: NDArray[np.bool_]) -> NDArray[np.bool_]:
    b = binary.astype(np.uint8)
    inner = cv2.erode(b, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return (b - inner).astype(bool)


def boundary_f(pred: NDArray[np.bool_], gt: NDArray[np.bool_], tol: float = 3.0) -> float:
    """F-score of boundary pixels matched within ``tol`` px (precision and recall both ways)."""
    pe, ge = _edges(pred), _edges(gt)
    if not pe.any() and not ge.any():
        return 1.0
    if not pe.any() or not ge.any():
        return 0.0
    dist_to_g = cv2.distanceTransform((~ge).astype(np.uint8), cv2.DIST_L2, 3)
    dist_to_p = cv2.distanceTransform((~pe).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((dist_to_g[pe] <= tol).mean())
    recall = float((dist_to_p[ge] <= tol).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def scores(
    alpha: NDArray[np.float32], gt: NDArray[np.float32], band: NDArray[np.bool_] | None = None
) -> dict[str, float]:
    """IoU of alpha > 0.5, MAE, boundary F (3 px), SAD/1000 and MSE x 1000 of one image; with
    ``band`` (the dataset trimap's unknown region) also the SAD/1000 inside it alone: the edge
    error, apart from whole regions a model misses or invents."""
    pred, truth = alpha > 0.5, gt > 0.5
    union = int((pred | truth).sum())
    err = alpha - gt
    out = {
        "iou": 1.0 if union == 0 else int((pred & truth).sum()) / union,
        "mae": float(np.abs(err).mean()),
        "bf": boundary_f(pred, truth),
        "sad": float(np.abs(err).sum()) / 1000,
        "mse": float((err * err).mean()) * 1000,
    }
    if band is not None:
        out["sad_band"] = float(np.abs(err[band]).sum()) / 1000
    return out


Row = dict[str, float]


def _mean(rows: list[Row]) -> Row:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


def load_truth(data: Path, dataset: str, image: Path) -> NDArray[np.float32]:
    truth = Image.open(data / dataset / "masks" / f"{image.stem}.png").convert("L")
    return np.asarray(truth, dtype=np.float32) / 255


def load_band(data: Path, dataset: str, image: Path) -> NDArray[np.bool_] | None:
    """The unknown region of the dataset's own trimap (neither 0 nor 255), if it has one."""
    path = data / dataset / "trimaps" / f"{image.stem}.png"
    if not path.exists():
        return None
    tri = np.asarray(Image.open(path).convert("L"))
    return np.asarray((tri > 0) & (tri < 255))


Mask = NDArray[np.float32]


def _mask(cache: Path, model: str, dataset: str, image: Path, flip: bool) -> Mask | None:
    """The model's cached mask (with ``flip`` the mean with its mirrored pass), or None."""
    plain = cache_path(cache, model, dataset, image, False)
    mirror = cache_path(cache, model, dataset, image, True)
    if not plain.exists() or (flip and not mirror.exists()):
        return None
    if not flip:
        return np.asarray(np.load(plain), dtype=np.float32)
    return np.asarray((np.load(plain) + np.load(mirror)) / 2, dtype=np.float32)


def variants(
    rgb: NDArray[np.uint8], mask: Mask, other: Mask | None, size: tuple[int, int], ablation: bool
) -> dict[str, Mask]:
    """Alphas of one model on one photo: raw, the pipeline, and (``ablation``) each step."""
    raw = upsample(mask, size)
    joined = raw if other is None else upsample(fuse(mask, other), size)
    matte = matting.matte_alpha(rgb, joined, contrast=1.0)
    out = {"raw": raw}
    if ablation:
        if other is not None:
            most = np.maximum(mask, _at(other, mask))
            out["+ companion, per-pixel max"] = upsample(most, size)
            out["+ companion, fused"] = joined
        out["matting, not hardened"] = matte
        out["pipeline, unknown .05-.95"] = matting.matte_alpha(rgb, joined, sure=(0.05, 0.95))
        out["raw, hardened"] = matting.harden(raw)
    out["pipeline"] = matting.harden(matte)
    return out


def _at(other: Mask, mask: Mask) -> Mask:
    return np.asarray(cv2.resize(other, mask.shape[::-1]), dtype=np.float32)


def evaluate(
    data: Path,
    cache: Path,
    dataset: str,
    images: list[Path],
    models: list[str],
    ablation: bool = False,
) -> dict[str, list[Row]]:
    """Scores per model and variant (``variants``), the flipped pass and the best pipeline
    where their masks are cached."""
    rows: dict[str, list[Row]] = {}
    for image in images:
        rgb = np.asarray(Image.open(image).convert("RGB"))
        truth = load_truth(data, dataset, image)
        band = load_band(data, dataset, image)
        h, w = truth.shape
        for model in models:
            path = cache_path(cache, model, dataset, image, False)
            if not path.exists():
                continue
            companion = MODEL_SPECS[model].companion if model in MODEL_SPECS else None
            other_path = cache_path(cache, companion, dataset, image, False) if companion else None
            other = np.load(other_path) if other_path and other_path.exists() else None
            if companion and other is None:
                continue  # the pipeline needs the companion's mask too
            for name, alpha in variants(rgb, np.load(path), other, (w, h), ablation).items():
                rows.setdefault(f"{model} {name}", []).append(scores(alpha, truth, band))
            flipped = _mask(cache, model, dataset, image, True) if ablation else None
            if flipped is not None:
                rows.setdefault(f"{model} flip", []).append(
                    scores(upsample(flipped, (w, h)), truth, band)
                )
        for name, flip in (("best", False), ("best, flip", True)):
            pair = [_mask(cache, m, dataset, image, flip) for m in (BEST_MODEL, BEST_PARTNER)]
            if pair[0] is None or pair[1] is None:
                continue
            companion = _mask(cache, MODEL_SPECS[BEST_MODEL].companion or "", dataset, image, False)
            if companion is None:
                continue
            both = upsample(fuse(average(pair[0], pair[1]), companion), (w, h))
            matte = matting.matte_alpha(rgb, both)
            if ablation:
                rows.setdefault(f"{name}, not refined", []).append(scores(both, truth, band))
                free = scores(matte, truth, band)
                rows.setdefault(f"{name}, matte not anchored", []).append(free)
                if not flip:
                    oracle = _oracle([pair[0], pair[1], companion], (w, h), truth, band)
                    rows.setdefault("best raw model per photo (oracle)", []).append(oracle)
            anchored = matting.anchor(matte, both)
            rows.setdefault(name, []).append(scores(anchored, truth, band))
    return rows


def _oracle(
    masks: list[Mask],
    size: tuple[int, int],
    truth: NDArray[np.float32],
    band: NDArray[np.bool_] | None,
) -> Row:
    """The scores of whichever raw mask has the highest IoU on this photo: an upper bound for
    any choice between the models (not a pipeline: it needs the ground truth)."""
    return max((scores(upsample(m, size), truth, band) for m in masks), key=lambda r: r["iou"])


HEADS = {
    "iou": "IoU",
    "mae": "MAE",
    "bf": "bound F",
    "sad": "SAD/1000",
    "sad_band": "SAD band",
    "mse": "MSEx1000",
}
LOWER_IS_BETTER = ("mae", "sad", "sad_band", "mse")


def print_table(dataset: str, rows: dict[str, list[Row]]) -> None:
    """Mean scores per row, then each model's pipeline (and the best) against its raw mask:
    a change that is worse than raw is marked with ``!``."""
    first = next(iter(rows.values()), [{}])[0]
    soft = ("sad", "sad_band", "mse") if dataset == "matting" else ()  # soft ground truth only
    keys = ["iou", "mae", "bf"] + [k for k in soft if k in first]
    print(f"\n{dataset}")
    print(f"| {'variant':<40} | {'n':>4} | " + " | ".join(f"{HEADS[k]:>8}" for k in keys) + " |")
    print("|" + "---|" * (len(keys) + 2))
    for name, values in rows.items():
        m = _mean(values)
        cells = " | ".join(f"{m[k]:8.2f}" if k.startswith("sad") else f"{m[k]:8.4f}" for k in keys)
        print(f"| {name:<40} | {len(values):>4} | {cells} |")
    for name, values in rows.items():
        if not name.endswith(" raw"):
            continue
        model, base = name[:-4], _mean(values)
        best = ("best", "best, flip") if model == BEST_MODEL else ()
        for other in (f"{model} pipeline", *best):
            if other in rows:
                new = _mean(rows[other])
                changes = ", ".join(_change(k, base, new) for k in keys)
                print(f"  {other} against {model} raw: {changes}")


def _change(key: str, base: Row, new: Row) -> str:
    """One metric's change, in % for SAD and MSE; ``!`` where it is worse than raw."""
    diff = new[key] - base[key]
    worse = diff > 0 if key in LOWER_IS_BETTER else diff < 0
    text = f"{100 * diff / base[key]:+.1f}%" if key in LOWER_IS_BETTER[1:] else f"{diff:+.4f}"
    return f"{HEADS[key]} {text}{' !' if worse else ''}"


def time_refinement(data: Path, megapixels: float = 2.0, repeat: int = 5) -> tuple[float, float]:
    """Milliseconds per megapixel of matte_alpha and of estimate_foreground on a 2 MP photo."""
    photo = sorted((data / "matting" / "images").iterdir())[0]
    im = Image.open(photo).convert("RGB")
    scale = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    rgb = np.asarray(im)
    truth = load_truth(data, "matting", photo)
    small = Image.fromarray((truth * 255).astype(np.uint8)).resize((320, 320))
    coarse = upsample(np.asarray(small, dtype=np.float32) / 255, im.size)
    best_r = best_f = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        alpha = matting.matte_alpha(rgb, coarse)
        t1 = time.perf_counter()
        refine.estimate_foreground(rgb, alpha)
        t2 = time.perf_counter()
        best_r, best_f = min(best_r, t1 - t0), min(best_f, t2 - t1)
    mp = im.width * im.height / 1e6
    return 1000 * best_r / mp, 1000 * best_f / mp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--limit", type=int, default=None, help="first N images of each set")
    ap.add_argument("--flip", action="store_true", help="also compute mirrored passes")
    ap.add_argument("--masks-only", action="store_true", help="fill the mask cache and stop")
    ap.add_argument("--cached-only", action="store_true", help="score only cached masks")
    ap.add_argument("--ablation", action="store_true", help="also score each step alone")
    ap.add_argument("--cache", type=Path, default=CACHE, help="where the masks are kept")
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    # the pipeline fuses each model with its companion: their masks are needed too
    companions = [MODEL_SPECS[m].companion for m in models if m in MODEL_SPECS]
    needed = list(dict.fromkeys([*models, *(c for c in companions if c)]))
    flipped = [m for m in needed if m in models or m in (BEST_MODEL, BEST_PARTNER)]
    if not args.cached_only:
        engine = Engine(EngineSettings())
        for dataset in sets:
            images = list_images(args.data, dataset, args.limit)
            for model in needed:
                compute_masks(engine, args.cache, images, model, dataset, flip=False)
                if args.flip and model in flipped:
                    compute_masks(engine, args.cache, images, model, dataset, flip=True)
        engine.close()
    if args.masks_only:
        return 0
    for dataset in sets:
        images = list_images(args.data, dataset, args.limit)
        print_table(
            dataset, evaluate(args.data, args.cache, dataset, images, models, args.ablation)
        )
    ms_alpha, ms_fg = time_refinement(args.data)
    print(f"\nmatte_alpha {ms_alpha:.0f} ms/MP, estimate_foreground {ms_fg:.0f} ms/MP (2 MP photo)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
