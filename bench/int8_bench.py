"""``make bench``: ``u2net-int8`` against rembg with u2net, and against fp32 u2net's masks.

1. folder: ``clearbg remove DIR -m u2net-int8`` (refinement off, no companion) against
   ``rembg p -m u2net`` on the same photos, whole processes, alternating, median of
   ``--folder-runs``; target: at least 3 x rembg's images per second.
2. agreement: on every photo of ``pascal/`` and ``ECSSD`` (or the first ``--limit``), the IoU of
   u2net-int8's mask (alpha > 0.5, at the model's 320 x 320) against fp32 u2net's, both fed the
   very same input tensor; target: mean >= 0.98 on each set; the worst photo is named.

rembg is set up as for ``bench/bench.py`` (its own venv, our verified u2net weights).

    nice -n 19 .venv/bin/python bench/int8_bench.py --data ../shared/data [--limit 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from clearbg.engine import Engine
from clearbg.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rembg_env import BenchError

from bench import bench_photos, load_note, med, prepare_rembg, run_child, section

HERE = Path(__file__).resolve().parent
MODEL = "u2net-int8"
BASE = "u2net"
TARGET_FOLDER = 3.0  # our images/s over rembg's
TARGET_IOU = 0.98  # mean IoU against fp32 u2net's masks, each set
SETS = ("pascal", "ecssd")


def folder(args: argparse.Namespace, weights: Path) -> tuple[str, str, bool]:
    ns = argparse.Namespace(out=args.out, rembg_spec=args.rembg_spec, model=BASE)
    rembg = prepare_rembg(ns, weights)
    photos = bench_photos(args.data)
    runs = args.folder_runs
    section(f"folder of {len(photos)} photos, whole process, median of {runs}, alternating")
    root = args.out / "int8-folder"
    shutil.rmtree(root, ignore_errors=True)
    src = root / "in"
    src.mkdir(parents=True)
    for p in photos:
        shutil.copy(p, src / p.name)
    log = root / "runs.log"
    # children: bytecode may be cached, as in any installed CLI (as bench/bench.py runs them)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    clearbg = str(Path(sys.executable).parent / "clearbg")
    times: dict[str, list[float]] = {"clearbg": [], "rembg": []}
    for i in range(runs):
        for who in ("clearbg", "rembg") if i % 2 == 0 else ("rembg", "clearbg"):
            dest = root / f"{who}-{i}"  # rembg skips outputs that exist: a new folder each run
            if who == "clearbg":
                cmd = [clearbg, "remove", str(src), "-o", str(dest), "-q", "-m", MODEL]
                cmd += ["--no-combine", "--no-refine", "--no-foreground"]
                times[who].append(run_child(cmd, env, log).seconds)
            else:
                cmd = [str(rembg.cli), "p", "-m", BASE, str(src), str(dest)]
                times[who].append(run_child(cmd, rembg.environ(env), log).seconds)
            made = len(list(dest.glob("*.png")))
            if made != len(photos):
                raise BenchError(f"{who} wrote {made} of {len(photos)} cut-outs; see {log}")
    n = len(photos)
    ours, theirs = n / med(times["clearbg"]), n / med(times["rembg"])
    print(f"  clearbg remove -m {MODEL}: {med(times['clearbg']):6.2f} s {ours:5.2f} images/s")
    print(f"  rembg p -m {BASE}:          {med(times['rembg']):6.2f} s {theirs:5.2f} images/s")
    ok = ours / theirs >= TARGET_FOLDER
    print(f"  ours / rembg: {ours / theirs:.2f} x  [{'PASS' if ok else 'FAIL'}]")
    return (f"folder: images/s >= {TARGET_FOLDER} x rembg", f"{ours / theirs:.2f} x", ok)


def photo_set(data: Path, name: str, limit: int) -> list[Path]:
    found = sorted((data / name / "images").glob("*.jpg"))
    return found[:limit] if limit else found


def agreement(args: argparse.Namespace, engine: Engine, name: str) -> tuple[str, str, bool]:
    photos = photo_set(args.data, name, args.limit)
    if not photos:
        raise BenchError(f"no photos in {args.data / name / 'images'}")
    section(f"{MODEL} against {BASE}: mask IoU (alpha > 0.5) on {name}, {len(photos)} photos")
    fp32, int8 = engine.session(BASE), engine.session(MODEL)
    ious: list[float] = []
    seconds = {BASE: 0.0, MODEL: 0.0}
    for path in photos:
        rgb = engine.decode(path.read_bytes(), BASE).model_input
        a, sa = fp32.predict(rgb)
        b, sb = int8.predict(rgb)
        seconds[BASE] += sa
        seconds[MODEL] += sb
        ma, mb = a > 0.5, b > 0.5
        union = int(np.count_nonzero(ma | mb))
        ious.append(1.0 if union == 0 else int(np.count_nonzero(ma & mb)) / union)
    worst = int(np.argmin(ious))
    mean = statistics.fmean(ious)
    ok = mean >= TARGET_IOU
    print(
        f"  mean IoU {mean:.4f}, median {statistics.median(ious):.4f}, "
        f"{sum(i < 0.9 for i in ious)} photos below 0.9; worst {photos[worst].name} "
        f"{ious[worst]:.4f}  [{'PASS' if ok else 'FAIL'}]"
    )
    print(
        f"  session.run: {BASE} {1000 * seconds[BASE] / len(photos):.0f} ms, {MODEL} "
        f"{1000 * seconds[MODEL] / len(photos):.0f} ms a photo "
        f"({seconds[BASE] / seconds[MODEL]:.2f} x)"
    )
    return (f"{name}: mean IoU vs {BASE} >= {TARGET_IOU}", f"{mean:.4f}", ok)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=HERE / "out", help="scratch (git-ignored)")
    ap.add_argument("--limit", type=int, default=0, help="first N photos of each set (0: all)")
    ap.add_argument("--folder-runs", type=int, default=3)
    ap.add_argument("--rembg-spec", default="rembg[cpu,cli]", help="what pip installs")
    ap.add_argument("--only", default="folder," + ",".join(SETS))
    args = ap.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    t0 = time.perf_counter()
    print(f"u2net-int8 bench, {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    engine = Engine(Settings().engine)
    rows = []
    try:
        engine.store.ensure(MODEL)
        weights = engine.store.ensure(BASE)
        if "folder" in only:
            rows.append(folder(args, weights))
        rows += [agreement(args, engine, name) for name in SETS if name in only]
    except BenchError as exc:
        print(f"\nint8 bench: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    print(f"\n== targets   [{load_note()}; {time.perf_counter() - t0:.0f} s in all]")
    for name, figure, ok in rows:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:44} {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
