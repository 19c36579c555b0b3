"""``make bench``: ``u2net-int8`` against rembg with u2net, and against fp32 u2net's masks.

1. folder: ``clearbg remove DIR -m u2net-int8`` (refinement off, no companion) against
   ``rembg p -m u2net`` on the same photos, whole processes, alternating, median of
   ``--folder-runs``; target: at least 3 x rembg's images per second.
2. conv: one 3x3 convolution as u2net has them (256 -> 256 channels, 40 x 40), fp32 against
   int8 (QDQ as the build makes it: u8 activations, s8 per-channel weights), one thread,
   interleaved: the most int8 can gain on this CPU, since convolutions are u2net's work. Also
   whether full-range (8-bit) weights saturate here: the worst-case sum, exact or clipped.
3. agreement: on every photo of ``pascal/`` and ``ECSSD`` (or the first ``--limit``), the IoU of
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
import onnxruntime as ort
from numpy.typing import NDArray

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


def _conv_model(cin: int, size: int, weights: NDArray[np.int8] | None, out_scale: float) -> bytes:
    """One 3x3 Conv, fp32 (``weights`` None: random) or QDQ around it with ``weights`` (s8)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cout = cin if weights is None else weights.shape[0]
    nodes, inits = [], []
    if weights is None:
        w = rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) / 50
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]))
    else:
        inits += [
            numpy_helper.from_array(np.array(1.0, np.float32), "xs"),
            numpy_helper.from_array(np.array(0, np.uint8), "xz"),
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.ones(cout, np.float32), "ws"),
            numpy_helper.from_array(np.zeros(cout, np.int8), "wz"),
            numpy_helper.from_array(np.array(out_scale, np.float32), "ys"),
            numpy_helper.from_array(np.array(128, np.uint8), "yz"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
            helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
            helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
            helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"]),
        ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "conv", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what ONNX Runtime reads
    return bytes(model.SerializeToString())


def _session(model: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def conv(args: argparse.Namespace) -> None:
    cin, size = 256, 40
    section(f"one 3x3 conv {cin} -> {cin} at {size} x {size}, 1 thread, {args.rounds} rounds")
    rng = np.random.default_rng(1)
    w8 = rng.integers(-63, 64, (cin, cin, 3, 3), dtype=np.int8)  # 7-bit, as the build makes
    sessions = {
        "fp32": _session(_conv_model(cin, size, None, 1.0)),
        "int8": _session(_conv_model(cin, size, w8, 64.0)),
    }
    x = {"x": rng.uniform(0, 255, (1, cin, size, size)).astype(np.float32)}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        s.run(None, x)  # warm-up
    for i in range(args.rounds):
        for name in sessions if i % 2 == 0 else reversed(list(sessions)):
            t0 = time.perf_counter()
            sessions[name].run(None, x)
            times[name].append(time.perf_counter() - t0)
    macs = cin * cin * 9 * size * size
    for name, ts in times.items():
        print(f"  {name}: {1000 * med(ts):6.1f} ms, {macs / med(ts) / 1e9:5.1f} GMAC/s")
    print(f"  int8 / fp32 speed: {med(times['fp32']) / med(times['int8']):.2f} x")
    # worst case for u8 x s8 without VNNI: every activation 255, every weight 127
    full = np.full((2, 64, 3, 3), 127, np.int8)
    exact = 255 * 127 * 64 * 9
    got = _session(_conv_model(64, 8, full, 2.0 * exact / 127)).run(
        None, {"x": np.full((1, 64, 8, 8), 255, np.float32)}
    )[0][0, 0, 4, 4]
    print(
        f"  full-range weights, worst case: {got:.4g} against exact {exact:.4g} "
        f"({'exact' if abs(got - exact) < 0.02 * exact else 'saturated'})"
    )


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
    covers: list[float] = []  # the share of the frame u2net's mask covers
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
        covers.append(float(np.count_nonzero(ma)) / ma.size)
    worst = int(np.argmin(ious))
    mean = statistics.fmean(ious)
    ok = mean >= TARGET_IOU
    print(
        f"  mean IoU {mean:.4f}, median {statistics.median(ious):.4f}, "
        f"{sum(i < 0.9 for i in ious)} photos below 0.9; worst {photos[worst].name} "
        f"{ious[worst]:.4f}  [{'PASS' if ok else 'FAIL'}]"
    )
    # below 1% u2net finds almost nothing: its raw output peaks low, and min-max normalising
    # leaves a few hundred pixels above 0.5 that any rounding moves
    found = [i for i, c in zip(ious, covers, strict=True) if c >= 0.01]
    if found:
        print(
            f"  where {BASE}'s mask covers >= 1% of the frame: mean IoU "
            f"{statistics.fmean(found):.4f} on {len(found)} photos"
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
    ap.add_argument("--rounds", type=int, default=21, help="interleaved rounds of the conv")
    ap.add_argument("--rembg-spec", default="rembg[cpu,cli]", help="what pip installs")
    ap.add_argument("--only", default="folder,conv," + ",".join(SETS))
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
        if "conv" in only:
            conv(args)
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
