"""What ``engine/native.py``'s heap trim saves: the RSS of a fresh process that loaded a model
and ran it twice, with and without the trim (alternating, a child process each, medians).

    .venv/bin/python bench/heap_trim.py [--model u2net] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

_CHILD = """
import sys
import numpy as np
from clearbg.engine import session
from clearbg.engine.models import ModelStore
from clearbg.settings import EngineSettings
if sys.argv[2] == "off":
    session.trim_heap = lambda: None
store = ModelStore.from_settings(EngineSettings())
spec = store.spec(sys.argv[1])
model = session.ModelSession.load(spec, store.ensure(sys.argv[1]))
for _ in range(2):
    model.predict(np.zeros((*spec.preprocessing.input_size[::-1], 3), np.uint8))
status = open("/proc/self/status").read().split("VmRSS:")[1]
print(int(status.split()[0]) // 1024)
"""


def rss_mb(model: str, trim: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, model, trim], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="u2net")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    got: dict[str, list[int]] = {"on": [], "off": []}
    for run in range(args.runs):
        for trim in ("on", "off") if run % 2 == 0 else ("off", "on"):
            got[trim].append(rss_mb(args.model, trim))
    on, off = statistics.median(got["on"]), statistics.median(got["off"])
    print(f"{args.model}, RSS after loading and two runs: {on:.0f} MB trimmed, {off:.0f} MB not")


if __name__ == "__main__":
    main()
