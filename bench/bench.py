"""``make bench``: ClearBG against rembg, same model (u2net), same photos, same machine.

Prints raw ``session.run`` time, per-photo end-to-end time (bytes in -> PNG bytes out) and its
ratio to raw inference, folder throughput of both CLIs (whole process), peak RSS with the 24 MP
input, ``--help`` start-up time, and the parity of our alpha (refinement off) with rembg's, each
next to its target. Ours runs in this process (refinement and foreground estimation off); rembg
runs in its own venv (``bench/rembg_env.py``), in a worker for the in-process figures and as
child processes for the rest. Runs alternate between the two and figures are medians, because
the machine may be shared.

    .venv/bin/python bench/bench.py --data ../shared/data [--reps 15] [--only e2e,folder]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine import Engine, RemoveOptions
from clearbg.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rembg_env import BenchError, RembgEnv, Worker, expected_md5, install, make_home, md5

HERE = Path(__file__).resolve().parent
SECTIONS = ("raw", "e2e", "folder", "rss", "help")
SMALL_MP = 2.0
TARGET_SMALL = 1.05  # median e2e / raw, photos up to 2 MP
TARGET_LARGE = 1.6  # the 24 MP photo
TARGET_FOLDER = 1.25  # our images/s over rembg's
TARGET_RSS_GB = 0.9
TARGET_HELP_S = 0.3
TARGET_PARITY = 0.005
CHILD_TIMEOUT = 600.0


@dataclass
class Verdicts:
    rows: list[tuple[str, str, bool]] = field(default_factory=list)

    def add(self, name: str, figure: str, ok: bool) -> str:
        self.rows.append((name, figure, ok))
        return "PASS" if ok else "FAIL"


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    max_rss_mb: float  # MiB, from wait4's rusage of this very child
    code: int


def run_child(cmd: list[str], env: dict[str, str], log: Path) -> ChildRun:
    """Run ``cmd`` to completion through ``measure.py``: its wall time and its own peak RSS."""
    result = log.with_suffix(".result.json")
    result.unlink(missing_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        launcher = [sys.executable, str(HERE / "measure.py"), str(result), "--", *cmd]
        proc = subprocess.Popen(
            launcher,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,  # its own process group, so a timeout ends all of it
        )
        try:
            proc.wait(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise BenchError(
                f"{' '.join(cmd)} took over {CHILD_TIMEOUT:.0f} s; see {log}"
            ) from None
    if proc.returncode != 0 or not result.exists():
        raise BenchError(f"cannot measure {' '.join(cmd)}; see {log}")
    got = json.loads(result.read_text())
    if got["code"] != 0:
        raise BenchError(f"{' '.join(cmd)} exited {got['code']}; see {log}")
    return ChildRun(float(got["seconds"]), got["max_rss_kib"] / 1024, int(got["code"]))


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def load_note() -> str:
    one, five, _ = os.getloadavg()
    busy = "  (BUSY: figures are noisy)" if one > 1.0 else ""
    return f"load average {one:.2f} / {five:.2f} on {os.cpu_count()} cores{busy}"


def section(title: str) -> None:
    print(f"\n== {title}   [{load_note()}]", flush=True)


def alpha_of(png: bytes) -> NDArray[np.uint8]:
    im = Image.open(io.BytesIO(png))
    if "A" not in im.getbands():
        return np.full((im.height, im.width), 255, np.uint8)
    return np.asarray(im.getchannel("A"))


def megapixels(path: Path) -> float:
    with Image.open(path) as im:
        return im.width * im.height / 1e6


def bench_photos(data: Path) -> list[Path]:
    """The photos both tools cut out: every file in ``data``/photos but rembg's outputs."""
    found = (data / "photos").iterdir()
    return sorted(p for p in found if p.is_file() and not p.name.endswith(".out.png"))


def bench_options(model: str) -> RemoveOptions:
    """Ours in the comparison: the model alone, refinement off, as rembg cuts out."""
    return RemoveOptions(model=model, combine=False, refine=False, foreground=False)


class Bench:
    def __init__(self, args: argparse.Namespace, rembg: RembgEnv, worker: Worker) -> None:
        self.args = args
        self.rembg = rembg
        self.worker = worker
        self.model: str = args.model
        self.out: Path = args.out
        self.engine = Engine(Settings().engine)
        self.opts = bench_options(self.model)
        self.verdicts = Verdicts()
        self.photos = bench_photos(args.data)
        if not self.photos:
            raise BenchError(f"no photos in {args.data / 'photos'}")
        self.large = max(self.photos, key=megapixels)
        self.raw_ours = 0.0
        self.raw_rembg = 0.0
        self.raw_once: dict[str, Callable[[], float]] = {}  # one raw session.run, by tool
        # children: bytecode may be cached, as in any installed CLI (start-up figures)
        self.child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.clearbg = str(Path(sys.executable).parent / "clearbg")

    # -- raw session.run ---------------------------------------------------------------------
    def raw(self) -> None:
        section(f"raw session.run, {self.model}, one 320x320 tensor, alternating")
        ms = self.engine.session(self.model)
        size = ms.family.input_size
        with Image.open(self.photos[0]) as im:
            rgb = np.asarray(im.convert("RGB").resize(size, Image.Resampling.LANCZOS))
        feed = {ms.input_name: ms.prepare(rgb)}

        def ours() -> float:
            t0 = time.perf_counter()
            ms.session.run(None, feed)
            return time.perf_counter() - t0

        def theirs() -> float:
            return float(self.worker.ask(op="raw", path=str(self.photos[0]), n=1)["times"][0])

        self.raw_once = {"clearbg": ours, "rembg": theirs}

        for _ in range(2):  # warm-up
            ours(), theirs()
        a: list[float] = []
        b: list[float] = []
        for i in range(self.args.raw_runs):
            first, second = (ours, theirs) if i % 2 == 0 else (theirs, ours)
            x, y = first(), second()
            a.append(x if first is ours else y)
            b.append(y if first is ours else x)
        self.raw_ours, self.raw_rembg = med(a), med(b)
        print(f"  clearbg  median {self.raw_ours:.3f} s  (min {min(a):.3f}, max {max(a):.3f})")
        print(f"  rembg    median {self.raw_rembg:.3f} s  (min {min(b):.3f}, max {max(b):.3f})")

    # -- end to end, and parity -------------------------------------------------------------
    def e2e(self) -> None:
        reps = self.args.reps
        section(f"end to end: bytes in -> PNG bytes out, median of {reps}, alternating")
        if not self.raw_ours:
            raise BenchError("the e2e section needs the raw section")
        parity_dir = self.out / "parity"
        shutil.rmtree(parity_dir, ignore_errors=True)
        parity_dir.mkdir(parents=True)
        warm = self.photos[0]
        self.engine.remove(warm.read_bytes(), self.opts)
        self.worker.ask(op="e2e", path=str(warm))
        head = (
            f"  {'photo':20} {'MP':>5} | {'ours s':>6} {'/raw':>5} {'/inf':>5} {'+ms':>5} |"
            f" {'rembg s':>7} {'/raw':>5} {'/inf':>5} {'+ms':>5} | {'faster':>6} | {'parity':>6}"
        )
        print(head)
        print("  " + "-" * (len(head) - 2))
        small: list[tuple[float, float, str]] = []  # e2e/raw, e2e/inf, photo
        large_ratio = large_inf = 0.0
        parities: list[tuple[str, float]] = []
        breakdown: dict[str, dict[str, float]] = {}
        for photo in self.photos:
            data = photo.read_bytes()
            mp = megapixels(photo)
            ours_t: list[float] = []
            ours_inf: list[float] = []
            stages: list[dict[str, float]] = []
            theirs_t: list[float] = []
            theirs_inf: list[float] = []
            # a raw session.run next to every end-to-end run: the ratio's two sides are
            # measured within a second of each other, not minutes apart on a drifting machine
            beside: dict[str, list[float]] = {"clearbg": [], "rembg": []}
            ours_png = b""
            rembg_png = parity_dir / f"{photo.stem}.rembg.png"
            for r in range(reps):
                for who in ("clearbg", "rembg") if r % 2 == 0 else ("rembg", "clearbg"):
                    beside[who].append(self.raw_once[who]())
                    if who == "clearbg":
                        seconds, timings, png = self._ours_e2e(data)
                        ours_t.append(seconds)
                        ours_inf.append(timings["inference"])
                        stages.append(timings)
                        ours_png = ours_png or png
                    else:
                        out = str(rembg_png) if r == 0 else None
                        reply = self.worker.ask(op="e2e", path=str(photo), out=out)
                        theirs_t.append(float(reply["seconds"]))
                        theirs_inf.append(float(reply["inference"]))
            (parity_dir / f"{photo.stem}.clearbg.png").write_bytes(ours_png)
            mine, ref = alpha_of(ours_png), alpha_of(rembg_png.read_bytes())
            if mine.shape != ref.shape:
                raise BenchError(f"{photo.name}: alpha {mine.shape} vs rembg's {ref.shape}")
            mad = float(np.abs(mine.astype(np.int16) - ref).mean() / 255)
            parities.append((photo.name, mad))
            o, t = med(ours_t), med(theirs_t)
            # each run over the raw run right before it, then the median of those ratios: a
            # slow minute slows both sides of one ratio, where a ratio of medians mixes minutes
            ro = med([x / y for x, y in zip(ours_t, beside["clearbg"], strict=True)])
            rt = med([x / y for x, y in zip(theirs_t, beside["rembg"], strict=True)])
            plus_o = med([x - y for x, y in zip(ours_t, ours_inf, strict=True)]) * 1000
            plus_t = med([x - y for x, y in zip(theirs_t, theirs_inf, strict=True)]) * 1000
            io = med([x / y for x, y in zip(ours_t, ours_inf, strict=True)])
            it = med([x / y for x, y in zip(theirs_t, theirs_inf, strict=True)])
            if photo == self.large:
                large_ratio, large_inf = ro, io
            elif mp <= SMALL_MP:
                small.append((ro, io, photo.name))
            breakdown[photo.name] = {k: med([t[k] for t in stages]) for k in stages[0]}
            print(
                f"  {photo.name[:20]:20} {mp:5.2f} | {o:6.3f} {ro:5.2f} {io:5.2f} {plus_o:5.0f} |"
                f" {t:7.3f} {rt:5.2f} {it:5.2f} {plus_t:5.0f} | {t / o:6.2f} | {mad:6.4f}",
                flush=True,
            )
        print("  (/raw: median of each e2e run over the raw session.run timed right before it;")
        print("   /inf and +ms: e2e over and minus the session.run inside the same call, medians;")
        print("   faster: rembg e2e / ours; parity: mean |alpha ours - rembg's|, 0..1)")
        biggest_small = max((p for p in self.photos if p != self.large), key=megapixels)
        for photo in (biggest_small, self.large):
            parts = ", ".join(f"{k} {v * 1000:.0f}" for k, v in breakdown[photo.name].items())
            print(f"  ours, {photo.name} (Cutout.timings, ms, medians): {parts}")
        worst, _, worst_name = max(small)
        v = self.verdicts
        # three decimals: at two, a ratio just over the target printed as the target itself
        verdict = v.add(
            f"photos <= {SMALL_MP:g} MP: e2e/raw <= {TARGET_SMALL}",
            f"worst {worst:.3f} ({worst_name}), median {med([r for r, _, _ in small]):.3f}",
            worst <= TARGET_SMALL,
        )
        print(
            f"  photos <= {SMALL_MP:g} MP: worst e2e/raw {worst:.3f} ({worst_name}; /inf worst"
            f" {max(i for _, i, _ in small):.3f})  [{verdict}]"
        )
        verdict = v.add(
            f"{self.large.name}: e2e/raw <= {TARGET_LARGE}",
            f"{large_ratio:.3f}",
            large_ratio <= TARGET_LARGE,
        )
        print(f"  {self.large.name} e2e/raw {large_ratio:.3f} (/inf {large_inf:.3f})  [{verdict}]")
        name, worst_mad = max(parities, key=lambda p: p[1])
        fails = [n for n, m in parities if m > TARGET_PARITY]
        verdict = v.add(
            f"parity <= {TARGET_PARITY} on every photo",
            f"max {worst_mad:.4f} ({name})" + (f", {len(fails)} over" if fails else ""),
            not fails,
        )
        print(f"  parity max {worst_mad:.4f} ({name})  [{verdict}]")
        if fails:
            print(f"  over {TARGET_PARITY}: {', '.join(fails)}")

    def _ours_e2e(self, data: bytes) -> tuple[float, dict[str, float], bytes]:
        t0 = time.perf_counter()
        cut = self.engine.remove(data, self.opts)
        return time.perf_counter() - t0, dict(cut.timings), cut.data

    # -- folder throughput (whole process) ---------------------------------------------------
    def folder(self) -> None:
        runs = self.args.folder_runs
        section(f"folder of {len(self.photos)} photos, whole process, median of {runs}")
        root = self.out / "folder"
        shutil.rmtree(root, ignore_errors=True)
        src = root / "in"
        src.mkdir(parents=True)
        for p in self.photos:
            shutil.copy(p, src / p.name)
        log = root / "runs.log"
        n = len(self.photos)
        ours_s: list[float] = []
        theirs_s: list[float] = []
        rss: dict[str, float] = {"clearbg": 0.0, "rembg": 0.0}
        for i in range(runs):
            for who in ("clearbg", "rembg") if i % 2 == 0 else ("rembg", "clearbg"):
                dest = root / f"{who}-{i}"  # rembg skips outputs that exist: a new folder each run
                if who == "clearbg":
                    cmd = [self.clearbg, "remove", str(src), "-o", str(dest), "-q"]
                    cmd += ["--no-combine", "--no-refine", "--no-foreground", "-m", self.model]
                    run = run_child(cmd, self.child_env, log)
                    ours_s.append(run.seconds)
                else:
                    cmd = [str(self.rembg.cli), "p", "-m", self.model, str(src), str(dest)]
                    run = run_child(cmd, self.rembg.environ(self.child_env), log)
                    theirs_s.append(run.seconds)
                rss[who] = max(rss[who], run.max_rss_mb)
                made = len(list(dest.glob("*.png")))
                if made != n:
                    raise BenchError(f"{who} wrote {made} of {n} cut-outs into {dest}; see {log}")
        o, t = n / med(ours_s), n / med(theirs_s)
        for label, times, who in (
            ("clearbg remove", ours_s, "clearbg"),
            ("rembg p", theirs_s, "rembg"),
        ):
            rate = n / med(times)
            peak = rss[who]
            print(
                f"  {label + ':':16} {med(times):6.2f} s {rate:5.2f} images/s, peak {peak:.0f} MiB"
            )
        verdict = self.verdicts.add(
            f"folder: images/s >= {TARGET_FOLDER} x rembg", f"{o / t:.2f} x", o / t >= TARGET_FOLDER
        )
        print(f"  ours / rembg: {o / t:.2f} x  [{verdict}]")

    # -- peak RSS, u2net + 24 MP ------------------------------------------------------------
    def rss(self) -> None:
        section(f"peak RSS: one child process each, {self.model} + {self.large.name}")
        root = self.out / "rss"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        log = root / "runs.log"
        ours_cmd = [self.clearbg, "remove", str(self.large), "-o", str(root / "clearbg.png")]
        ours_cmd += ["--no-combine", "--no-refine", "--no-foreground", "-q", "-m", self.model]
        rembg_cmd = [str(self.rembg.cli), "i", "-m", self.model, str(self.large)]
        rembg_cmd += [str(root / "rembg.png")]
        ours = run_child(ours_cmd, self.child_env, log)
        theirs = run_child(rembg_cmd, self.rembg.environ(self.child_env), log)
        small = min(self.photos, key=megapixels)  # the model's share: the same with a tiny photo
        ours_cmd[2], ours_cmd[4] = str(small), str(root / "clearbg-small.png")
        rembg_cmd[4], rembg_cmd[5] = str(small), str(root / "rembg-small.png")
        ours_small = run_child(ours_cmd, self.child_env, log)
        theirs_small = run_child(rembg_cmd, self.rembg.environ(self.child_env), log)
        gb = ours.max_rss_mb * 1024 * 1024 / 1e9
        print(
            f"  clearbg remove: {ours.max_rss_mb:6.0f} MiB  ({gb:.2f} GB)  in {ours.seconds:.2f} s"
        )
        print(f"  rembg i:        {theirs.max_rss_mb:6.0f} MiB  in {theirs.seconds:.2f} s")
        print(
            f"  with {small.name} ({megapixels(small):.2f} MP) instead: clearbg"
            f" {ours_small.max_rss_mb:.0f} MiB, rembg {theirs_small.max_rss_mb:.0f} MiB"
        )
        verdict = self.verdicts.add(
            f"peak RSS (u2net + 24 MP) <= {TARGET_RSS_GB} GB", f"{gb:.2f} GB", gb <= TARGET_RSS_GB
        )
        print(f"  ours {gb:.2f} GB vs target {TARGET_RSS_GB} GB  [{verdict}]")

    # -- --help start-up ----------------------------------------------------------------------
    def help(self) -> None:
        runs = self.args.help_runs
        section(f"--help start-up, median of {runs}, alternating (after one warm-up each)")
        log = self.out / "help.log"
        log.unlink(missing_ok=True)
        rembg_env = self.rembg.environ(self.child_env)
        ours = [self.clearbg, "--help"]
        theirs = [str(self.rembg.cli), "--help"]
        run_child(ours, self.child_env, log)
        run_child(theirs, rembg_env, log)
        a: list[float] = []
        b: list[float] = []
        for _ in range(runs):
            a.append(run_child(ours, self.child_env, log).seconds)
            b.append(run_child(theirs, rembg_env, log).seconds)
        print(f"  clearbg --help: {med(a):.3f} s  (min {min(a):.3f})")
        print(f"  rembg --help:   {med(b):.3f} s  (min {min(b):.3f})")
        verdict = self.verdicts.add(
            f"clearbg --help < {TARGET_HELP_S} s", f"{med(a):.3f} s", med(a) < TARGET_HELP_S
        )
        print(f"  clearbg --help {med(a):.3f} s  [{verdict}]")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=HERE / "out", help="scratch (git-ignored)")
    ap.add_argument("--model", default="u2net")
    # 15: one u2net run varies by several percent and the verdict is the worst photo's
    # median ratio; fewer runs let that median swing across the target
    ap.add_argument("--reps", type=int, default=15, help="end-to-end runs per photo and tool")
    ap.add_argument("--raw-runs", type=int, default=10)
    ap.add_argument("--folder-runs", type=int, default=3)
    ap.add_argument("--help-runs", type=int, default=7)
    ap.add_argument("--rembg-spec", default="rembg[cpu,cli]", help="what pip installs")
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}"
    )
    return ap.parse_args()


def prepare_rembg(args: argparse.Namespace, weights: Path) -> RembgEnv:
    env = RembgEnv(args.out / "rembg-venv", args.out / "u2net-home")
    install(env.venv, args.rembg_spec)
    make_home(env.home, args.model, weights)
    want, have = expected_md5(env, args.model), md5(weights)
    if want is None:
        print(f"  rembg pins no md5 for {args.model}; the file is used as it is")
    elif want != have:
        raise BenchError(f"rembg expects md5 {want} for {args.model}.onnx, ours is {have}")
    else:
        print(f"  weights: {weights} (md5 {have}, the one rembg pins)")
    return env


def main() -> int:
    args = parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        print(f"bench: unknown sections {sorted(unknown)}; choose from {SECTIONS}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"ClearBG vs rembg, {time.strftime('%Y-%m-%d %H:%M:%S')}, {platform.platform()}")
    print(f"  python {platform.python_version()}, {load_note()}")
    try:
        engine = Engine(Settings().engine)
        weights = engine.store.ensure(args.model)
        rembg = prepare_rembg(args, weights)
        with Worker(rembg, args.out / "rembg-worker.log") as worker:
            info = worker.ask(op="load", model=args.model)
            print(
                f"  rembg {info['rembg']} (onnxruntime {info['onnxruntime']}, pillow"
                f" {info['pillow']}, numpy {info['numpy']}), {info['providers']},"
                f" model {info['model_path']}, loaded in {info['load_seconds']:.2f} s"
            )
            bench = Bench(args, rembg, worker)
            print(
                f"  {len(bench.photos)} photos in {args.data / 'photos'}; large: {bench.large.name}"
            )
            for name in SECTIONS:
                if name in only:
                    getattr(bench, name)()
    except BenchError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        return 1
    print(f"\n== targets   [{load_note()}; {time.perf_counter() - t_start:.0f} s in all]")
    for name, figure, ok in bench.verdicts.rows:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:44} {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
