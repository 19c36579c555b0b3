"""Where the time beyond inference goes, and how low this machine's two cores could take it.

For each photo up to 2 MP, with the benchmark's settings (u2net, refinement off), medians of
``--reps``, each rep right after a raw ``session.run`` (as in bench.py):

- ``+wall``: a cut-out's time minus the ``session.run`` inside the call (bench.py's ``+ms``);
- ``work``: the same cut-out with the model's outputs replayed instead of computed (the very
  mask, at once): the wall time and the process's CPU time of everything but inference, the
  decode, model input, compose and encode, on every thread;
- ``bound``: that CPU over two cores, the least time the work can take when none of it runs
  beside inference. Inference keeps both cores busy (its CPU over its wall time is printed), so
  work beside it slows it down; for a PNG or a progressive JPEG nothing can go beside it anyway
  (the model needs the whole decode, the cut-out needs the mask);
- ``/raw``: ``+wall`` and ``bound`` as ratios, ``1 + ms / raw``, against bench.py's 1.05.

It explains a figure; it sets none. ``bench/bench.py`` is the benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clearbg.engine.pipeline import Engine
from clearbg.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SMALL_MP, bench_options, bench_photos, megapixels


class _Replay:
    """A session that answers every run with the outputs its model gave for the last photo."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._outputs: list[Any] | None = None

    def run(self, names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        if self._outputs is None:
            self._outputs = self._real.run(names, feed)
        return self._outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", default="u2net")
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    engine = Engine(Settings().engine)
    opts = bench_options(args.model)
    session = engine.session(args.model)
    feed = {session.input_name: session.prepare(np.zeros((320, 320, 3), np.uint8))}
    photos = []
    for path in bench_photos(args.data):  # bench.py's photos up to 2 MP
        if megapixels(path) <= SMALL_MP:
            with Image.open(path) as im:
                photos.append((path, f"{im.format} {im.mode} {im.width}x{im.height}"))
    print(f"{args.model}, refinement off; medians of {args.reps}; ms beyond inference")
    head = (
        f"  {'photo':14} {'what':22} | {'+wall':>5} | {'work':>5} {'cpu':>5} {'bound':>5} |"
        f" {'/raw':>5} {'bound/raw':>9} | inference cores"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    real = session.session
    for path, what in photos:
        data = path.read_bytes()
        engine.remove(data, opts)
        replay = _Replay(real)
        wall: list[float] = []
        work: list[float] = []
        cpu: list[float] = []
        raw: list[float] = []
        cores: list[float] = []
        for _ in range(args.reps):
            c0, t0 = time.process_time(), time.perf_counter()
            real.run(None, feed)
            raw.append(time.perf_counter() - t0)
            cores.append((time.process_time() - c0) / raw[-1])
            cut = engine.remove(data, opts)
            wall.append(cut.timings["total"] - cut.timings["inference"])
            real.run(None, feed)
            session.session = replay
            try:
                c0, t0 = time.process_time(), time.perf_counter()
                engine.remove(data, opts)
                work.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            finally:
                session.session = real
        w, k, c, r = (statistics.median(x) * 1000 for x in (wall, work, cpu, raw))
        print(
            f"  {path.stem[:14]:14} {what[:22]:22} | {w:5.1f} | {k:5.1f} {c:5.1f} {c / 2:5.1f} |"
            f" {1 + w / r:5.3f} {1 + c / 2 / r:9.3f} | {statistics.median(cores):.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
