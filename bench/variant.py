"""Faster variants of the U-2-Net models: FLOPs, this CPU's peak, tuned and int8 sessions.

For each model (u2net, u2netp) this prints

1. the FLOPs of one 1x3x320x320 inference (2 x MACs of Conv/ConvTranspose/MatMul/Gemm, shapes
   from ONNX shape inference),
2. this CPU's theoretical and measured fp32 peak and the share of it the engine's session reaches,
3. the speed-up of faster variants over the engine's fp32 session (session settings, int8 static
   quantisation in QDQ and QOperator form, dynamic int8, fp16), timed alternately,
4. each variant's mask IoU (> 0.5) against the fp32 mask and against ECSSD's ground truth.

Calibration uses ECSSD images 0901-1000 (``--calib``), evaluation images 0001-0200 (``--limit``):
disjoint sets. Quantised files are built once into ``bench/out/`` (git-ignored) and reused.

    nice -n 19 .venv/bin/python bench/variant.py [--models u2net,u2netp] [--limit 200]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import shape_inference, version_converter
from PIL import Image

from clearbg.engine.models import ModelSpec, ModelStore
from clearbg.engine.pipeline import Engine
from clearbg.engine.session import ModelSession

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ecssd"
OUT = ROOT / "bench" / "out"
CALIB_FIRST = 901  # calibration: ECSSD 0901..(0900 + calib); evaluation: 0001..limit
Tensor = NDArray[np.float32]


# -- 1. FLOPs --------------------------------------------------------------------------------
def count_macs(path: Path) -> dict[str, int]:
    """MACs per op type of one inference, from the static shapes ONNX shape inference finds."""
    model = shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)
    g = model.graph
    shapes: dict[str, list[int]] = {}
    for v in [*g.input, *g.value_info, *g.output]:
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
    macs: dict[str, int] = {}

    def attr(node: onnx.NodeProto, name: str, default: int) -> int:
        for a in node.attribute:
            if a.name == name:
                return int(a.i)
        return default

    for n in g.node:
        if n.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        out, w = shapes.get(n.output[0], []), shapes.get(n.input[1], [])
        if not out or not w or 0 in out:
            raise RuntimeError(f"{n.name or n.output[0]}: shape unknown ({out}, {w})")
        if n.op_type == "Conv":  # w: Cout x Cin/g x kh x kw; every output pixel costs one filter
            m = int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type == "ConvTranspose":  # w: Cin x Cout/g x kh x kw; every input pixel scatters
            inp = shapes[n.input[0]]
            m = int(np.prod(inp)) * int(np.prod(w[1:]))
        elif n.op_type == "MatMul":
            m = int(np.prod(out)) * shapes[n.input[0]][-1]
        else:
            a = shapes[n.input[0]]
            m = int(np.prod(out)) * (a[0] if attr(n, "transA", 0) else a[-1])
        macs[n.op_type] = macs.get(n.op_type, 0) + m
    return macs


# -- 2. peak -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Peak:
    cores: int
    ghz: float
    fma_units: int
    lanes: int
    measured: float  # FLOP/s of a large float32 matmul on all cores (numpy / OpenBLAS)
    measured_ort: float  # the same matmul in ONNX Runtime (MLAS), the engine's own kernels

    @property
    def theoretical(self) -> float:
        return self.cores * self.ghz * 1e9 * self.fma_units * self.lanes * 2


def _lscpu() -> dict[str, str]:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def measure_peak(n: int = 4096, repeats: int = 7) -> Peak:
    info = _lscpu()
    cores = int(info.get("Core(s) per socket", "1")) * int(info.get("Socket(s)", "1"))
    name = info.get("Model name", "")
    ghz = float(name.rsplit("@", 1)[1].strip().removesuffix("GHz")) if "@" in name else 2.0
    flags = info.get("Flags", "").split()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma_units = 2  # Xeon Scalable (Sapphire Rapids, model 143/207): two 512-bit FMA ports per core
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up (threads, pages)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    numpy_flops = 2 * n**3 / statistics.median(times)
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [n, n])],
        [onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n, n])],
        [onnx.numpy_helper.from_array(b, "b")],
    )
    model = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8  # what this onnxruntime reads
    sess = ort.InferenceSession(
        model.SerializeToString(), session_options()(), providers=["CPUExecutionProvider"]
    )
    sess.run(None, {"a": a})
    times = [_timed(lambda: sess.run(None, {"a": a})) for _ in range(repeats)]
    ort_flops = 2 * n**3 / statistics.median(times)
    return Peak(cores, ghz, fma_units, lanes, numpy_flops, ort_flops)


# -- data --------------------------------------------------------------------------------------
def ecssd_ids(first: int, count: int) -> list[str]:
    return [f"{i:04d}" for i in range(first, first + count)]


def model_inputs(engine: Engine, spec: ModelSpec, ids: list[str]) -> Iterator[Tensor]:
    """Each photo exactly as clearbg feeds it: decode, Lanczos to 320x320, ``prepare``."""
    prep = ModelSession(spec, None, spec.input_name)
    for i in ids:
        data = (DATA / "images" / f"{i}.jpg").read_bytes()
        yield prep.prepare(engine.decode(data, spec.name).model_input)


class Reader:
    """``CalibrationDataReader`` over prepared tensors."""

    def __init__(self, name: str, tensors: list[Tensor]) -> None:
        self.name = name
        self.tensors = tensors
        self.pos = 0

    def get_next(self) -> dict[str, Tensor] | None:
        if self.pos >= len(self.tensors):
            return None
        self.pos += 1
        return {self.name: self.tensors[self.pos - 1]}

    def __len__(self) -> int:
        return len(self.tensors)

    def rewind(self) -> None:
        self.pos = 0


# -- variants ----------------------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    kind: str  # "session" (fp32, same outputs) or "model" (different weights/ops)
    path: Path
    options: Callable[[], Any] | None  # SessionOptions factory; None = the engine's own session
    note: str = ""
    build_s: float = 0.0
    load_s: float = 0.0
    session: Any = None
    times: list[float] = field(default_factory=list)

    def open(self, spec: ModelSpec) -> None:
        t0 = time.perf_counter()
        if self.options is None:
            self.session = ModelSession.load(spec, self.path).session
        else:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=self.options(), providers=["CPUExecutionProvider"]
            )
        self.load_s = time.perf_counter() - t0

    def run(self, name: str, x: Tensor) -> Tensor:
        out = self.session.run(None, {name: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(out.shape[-2], out.shape[-1])


def session_options(
    threads: int = 0,
    spinning: bool = True,
    parallel: bool = False,
    level: Any = None,
    save_to: Path | None = None,
    denormal_zero: bool = False,
) -> Callable[[], Any]:
    def make() -> Any:
        o = ort.SessionOptions()
        o.graph_optimization_level = level or ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.log_severity_level = 3
        if threads:
            o.intra_op_num_threads = threads
        if not spinning:
            o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if parallel:
            o.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            o.inter_op_num_threads = 2
        if denormal_zero:
            o.add_session_config_entry("session.set_denormal_as_zero", "1")
        if save_to is not None:
            o.optimized_model_filepath = str(save_to)
        return o

    return make


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fake_quant_weights(model: onnx.ModelProto, convs: set[str]) -> onnx.ModelProto:
    """A copy whose named Convs have int8 per-channel (symmetric) rounded fp32 weights."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Conv" and n.name in convs and n.input[1] in inits:
            t = inits[n.input[1]]
            w = onnx.numpy_helper.to_array(t)
            scale = np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127
            scale[scale == 0] = 1
            scale = scale.reshape(-1, *([1] * (w.ndim - 1)))
            q = np.clip(np.round(w / scale), -127, 127) * scale
            t.CopyFrom(onnx.numpy_helper.from_array(q.astype(np.float32), t.name))
    return m


def sensitive_convs(pre: Path, input_name: str, xs: list[Tensor], floor: float = 0.98) -> list[str]:
    """Convs whose int8 weights alone move the mask (IoU < floor on ``xs``), by bisection."""
    model = onnx.load(str(pre))
    so = session_options()()

    def masks(m: onnx.ModelProto) -> list[NDArray[np.bool_]]:
        s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return [minmax(s.run(None, {input_name: x})[0][0, 0]) > 0.5 for x in xs]

    ref = masks(model)

    def ok(group: list[str]) -> bool:
        got = masks(fake_quant_weights(model, set(group)))
        return min(iou(a, b) for a, b in zip(got, ref, strict=True)) >= floor

    def search(group: list[str]) -> list[str]:
        if ok(group):
            return []
        if len(group) == 1:
            return group
        half = len(group) // 2
        return search(group[:half]) + search(group[half:])

    return search([n.name for n in model.graph.node if n.op_type == "Conv"])


def build_variants(
    spec: ModelSpec, src: Path, calib: Callable[[], list[Tensor]], rebuild: bool
) -> list[Variant]:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = OUT / spec.name
    out.mkdir(parents=True, exist_ok=True)
    fresh = rebuild

    def need(p: Path) -> bool:
        return fresh or not p.is_file()

    vs = [Variant("fp32 engine", "session", src, None, "ModelSession.load: ORT_ENABLE_ALL")]
    vs.append(Variant("fp32 no-spin", "session", src, session_options(spinning=False)))
    vs.append(Variant("fp32 parallel", "session", src, session_options(parallel=True)))
    vs.append(Variant("fp32 daz", "session", src, session_options(denormal_zero=True)))
    opt = out / "fp32-opt.onnx"  # basic+extended fusions saved; ENABLE_ALL again at load
    b = 0.0
    if need(opt):
        ext = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        b = _timed(
            lambda: ort.InferenceSession(
                str(src),
                session_options(level=ext, save_to=opt)(),
                providers=["CPUExecutionProvider"],
            )
        )
    vs.append(Variant("fp32 saved-opt", "session", opt, session_options(), "", b))

    pre = out / "pre.onnx"
    if need(pre):

        def prepare() -> None:  # per-channel QDQ needs opset >= 13; the files are opset 11
            o13 = out / "opset13.onnx"
            onnx.save(version_converter.convert_version(onnx.load(str(src)), 13), str(o13))
            quant_pre_process(str(o13), str(pre), skip_symbolic_shape=True)  # no sympy here
            o13.unlink()

        b = _timed(prepare)
    pre_s = b
    cache = out / "calib-minmax.json"
    tensors: list[Tensor] = []

    sens_file = out / "sensitive.json"
    if need(sens_file):
        tensors = calib()
        t0 = time.perf_counter()
        sens_file.write_text(json.dumps(sensitive_convs(pre, spec.input_name, tensors[:2])))
        pre_s += time.perf_counter() - t0
    sensitive: list[str] = json.loads(sens_file.read_text())

    def static(fmt: Any, act: Any, wt: Any, dest: Path, exclude: list[str]) -> float:
        if not need(dest):
            return 0.0
        nonlocal tensors
        if not cache.is_file() or fresh:
            tensors = tensors or calib()
        reader = Reader(spec.input_name, tensors)
        return _timed(
            lambda: quantize_static(
                str(pre),
                str(dest),
                reader if tensors else None,
                quant_format=fmt,
                activation_type=act,
                weight_type=wt,
                per_channel=True,
                reduce_range=False,  # VNNI: no u8 x s8 overflow, so the full range is safe
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=exclude,
                calibration_cache_path=str(cache),
                extra_options={"CalibMaxIntermediateOutputs": 8},
            )
        )

    u8, s8 = QuantType.QUInt8, QuantType.QInt8
    fp32_convs = f"per-channel, MinMax, fp32: {', '.join(sensitive) or 'none'}"
    for label, fmt, act, exclude, note in (
        ("int8 QDQ u8s8", QuantFormat.QDQ, u8, [], "per-channel, MinMax, all Convs"),
        ("int8 QOp u8s8", QuantFormat.QOperator, u8, [], "per-channel, MinMax, all Convs"),
        ("int8 QDQ s8s8", QuantFormat.QDQ, s8, [], "per-channel, MinMax, all Convs"),
        ("int8 QDQ mixed", QuantFormat.QDQ, u8, sensitive, fp32_convs),
        ("int8 QOp mixed", QuantFormat.QOperator, u8, sensitive, fp32_convs),
    ):
        if label.endswith("mixed") and not sensitive:
            continue  # no weight-sensitive Conv: the same model as the one above
        dest = out / (label.replace(" ", "-") + ".onnx")
        first = not cache.is_file()
        b = static(fmt, act, s8, dest, exclude) + (pre_s if first else 0.0)
        vs.append(Variant(label, "model", dest, session_options(), note, b))

    dyn = out / "int8-dynamic.onnx"
    b = 0.0
    if need(dyn):
        b = _timed(
            lambda: quantize_dynamic(
                str(pre), str(dyn), per_channel=True, weight_type=QuantType.QUInt8
            )
        )
    vs.append(Variant("int8 dynamic", "model", dyn, session_options(), "ConvInteger", b))

    f16 = out / "fp16.onnx"
    b = 0.0
    if need(f16):
        from onnxruntime.transformers.float16 import convert_float_to_float16

        def half() -> None:
            m = convert_float_to_float16(
                onnx.load(str(pre)), keep_io_types=True, op_block_list=["Resize"]
            )
            onnx.save(m, str(f16))

        b = _timed(half)
    vs.append(Variant("fp16", "model", f16, session_options(), "keep_io_types", b))
    return vs


# -- accuracy ------------------------------------------------------------------------------------
def minmax(raw: Tensor) -> Tensor:
    lo, hi = float(raw.min()), float(raw.max())
    return (raw - lo) / max(hi - lo, 1e-12)


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def to_gt_size(mask: Tensor, size: tuple[int, int]) -> NDArray[np.bool_]:
    """As the engine does: 8-bit mask, Lanczos to the photo's size; alpha >= 128 is object."""
    m8 = Image.fromarray((mask * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(m8) >= 128


# -- main ------------------------------------------------------------------------------------------
def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_model(name: str, args: argparse.Namespace, peak: Peak, report: dict[str, Any]) -> None:
    engine = Engine()
    store: ModelStore = engine.store
    spec = store.spec(name)
    src = store.ensure(name)
    print(f"\n=== {name} ({src.stat().st_size / 1e6:.1f} MB) ===")

    macs = count_macs(src)
    flops = 2 * sum(macs.values())
    parts = ", ".join(f"{k} {2 * v / 1e9:.2f}" for k, v in macs.items())
    print(f"FLOPs per 1x3x320x320 image: {flops / 1e9:.2f} GFLOP ({parts}; 2 x MACs, no bias)")

    eval_ids = ecssd_ids(1, args.limit)
    calib_ids = ecssd_ids(CALIB_FIRST, args.calib)
    t0 = time.perf_counter()
    vs = build_variants(
        spec, src, lambda: list(model_inputs(engine, spec, calib_ids)), args.rebuild
    )
    vs = [v for v in vs if not args.only or v.name == "fp32 engine" or args.only in v.name]
    print(f"variants ready in {time.perf_counter() - t0:.0f} s (built now, or reused from {OUT})")

    for v in list(vs):
        try:
            v.open(spec)
        except Exception as exc:  # ORT's own untyped errors: report the variant, go on
            print(f"{v.name}: cannot load ({str(exc).splitlines()[0][:160]})")
            vs.remove(v)
    x = next(model_inputs(engine, spec, ["0001"]))
    for v in vs:  # warm-up
        for _ in range(2):
            v.run(spec.input_name, x)
    before = load()
    for _ in range(args.runs):  # alternate so that load changes hit every variant alike
        for v in vs:
            v.times.append(_timed(lambda v=v: v.run(spec.input_name, x)))
    after = load()
    base = statistics.median(vs[0].times)
    print(
        f"timing: session.run on ECSSD 0001, {args.runs} alternating runs each, median; "
        f"{before} before, {after} after"
    )
    print(
        f"share of peak (fp32 engine session): {flops / base / 1e9:.1f} GFLOP/s = "
        f"{100 * flops / base / peak.theoretical:.1f}% of theoretical, "
        f"{100 * flops / base / peak.measured:.1f}% / "
        f"{100 * flops / base / peak.measured_ort:.1f}% of measured numpy / ORT matmul"
    )

    # accuracy on the evaluation set: variants with other weights or ops only
    acc_vs = [v for v in vs if v.kind == "model"]
    ious_ref: dict[str, list[float]] = {v.name: [] for v in acc_vs}
    ious_gt: dict[str, list[float]] = {v.name: [] for v in [vs[0], *acc_vs]}
    same = True
    t0 = time.perf_counter()
    for i, t in zip(eval_ids, model_inputs(engine, spec, eval_ids), strict=True):
        gt = np.asarray(Image.open(DATA / "masks" / f"{i}.png").convert("L")) > 127
        size = (gt.shape[1], gt.shape[0])
        ref = minmax(vs[0].run(spec.input_name, t))
        ious_gt[vs[0].name].append(iou(to_gt_size(ref, size), gt))
        if i == eval_ids[0]:  # session-only variants must give the same mask
            for v in vs[1:]:
                if v.kind == "session":
                    same &= bool(np.allclose(minmax(v.run(spec.input_name, t)), ref, atol=1e-4))
        for v in acc_vs:
            m = minmax(v.run(spec.input_name, t))
            ious_ref[v.name].append(iou(m > 0.5, ref > 0.5))
            ious_gt[v.name].append(iou(to_gt_size(m, size), gt))
    print(
        f"accuracy: ECSSD {eval_ids[0]}-{eval_ids[-1]} ({len(eval_ids)} images; calibration "
        f"{calib_ids[0]}-{calib_ids[-1]}), {time.perf_counter() - t0:.0f} s; "
        f"session-only variants give the fp32 mask: {same}"
    )

    print(
        f"\n{'variant':<16} {'run ms':>7} {'speed-up':>8} {'load s':>6} {'build s':>7} "
        f"{'MB':>6} {'IoU/fp32':>8} {'min':>5} {'IoU/GT':>6}  note"
    )
    rows = []
    gt0 = statistics.fmean(ious_gt[vs[0].name])
    for v in vs:
        med = statistics.median(v.times)
        r = ious_ref.get(v.name)
        g = ious_gt.get(v.name)
        ref_s = f"{statistics.fmean(r):8.4f} {min(r):5.3f}" if r else f"{'(same)':>8} {'':>5}"
        gt_s = f"{statistics.fmean(g):6.4f}" if g else f"{gt0:6.4f}"
        print(
            f"{v.name:<16} {1000 * med:7.1f} {base / med:7.2f}x {v.load_s:6.2f} "
            f"{v.build_s:7.0f} {v.path.stat().st_size / 1e6:6.1f} {ref_s} {gt_s}  {v.note}"
        )
        rows.append(
            {
                "variant": v.name,
                "median_s": med,
                "speedup": base / med,
                "times": v.times,
                "load_s": v.load_s,
                "build_s": v.build_s,
                "bytes": v.path.stat().st_size,
                "iou_vs_fp32": statistics.fmean(r) if r else 1.0,
                "min_iou_vs_fp32": min(r) if r else 1.0,
                "iou_vs_gt": statistics.fmean(g) if g else gt0,
            }
        )
    report[name] = {
        "gflops": flops / 1e9,
        "macs": macs,
        "variants": rows,
        "eval": [eval_ids[0], eval_ids[-1]],
        "calib": [calib_ids[0], calib_ids[-1]],
        "load": [before, after],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--models", default="u2net,u2netp")
    ap.add_argument("--limit", type=int, default=200, help="evaluation images (ECSSD 0001..)")
    ap.add_argument("--calib", type=int, default=100, help="calibration images (ECSSD 0901..)")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per variant")
    ap.add_argument("--only", default="", help="keep only variants whose name contains this")
    ap.add_argument("--rebuild", action="store_true", help="rebuild files in bench/out")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # quantize_static's pre-processing advice etc.

    print(f"onnxruntime {ort.__version__}, {load()}, nice {os.nice(0)}")
    peak = measure_peak()
    print(
        f"theoretical fp32 peak: {peak.cores} cores x {peak.ghz} GHz x {peak.fma_units} FMA "
        f"units x {peak.lanes} lanes x 2 = {peak.theoretical / 1e9:.1f} GFLOP/s "
        "(lscpu: base clock, avx512f; 2 FMA ports assumed for this Xeon, no turbo, "
        "AVX-512 licence down-clocking ignored)"
    )
    print(
        f"measured: float32 4096x4096 matmul (numpy/OpenBLAS, {peak.cores} threads), median of "
        f"7: {peak.measured / 1e9:.1f} GFLOP/s = {100 * peak.measured / peak.theoretical:.0f}% "
        "of theoretical"
    )
    print(
        f"measured: the same matmul in onnxruntime (MLAS): {peak.measured_ort / 1e9:.1f} GFLOP/s"
        f" = {100 * peak.measured_ort / peak.theoretical:.0f}% of theoretical"
    )
    report: dict[str, Any] = {
        "peak": {"theoretical": peak.theoretical, "numpy": peak.measured, "ort": peak.measured_ort}
    }
    for name in args.models.split(","):
        bench_model(name.strip(), args, peak, report)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "variant.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
