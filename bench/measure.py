"""Run one command and write its wall time and peak RSS as JSON: ``measure.py RESULT -- CMD...``.

``bench/bench.py`` measures every child process through this small launcher, because on Linux a
child's ``ru_maxrss`` starts from the RSS of the process that forked (or vforked) it: measured
straight from the benchmark, which holds a loaded model, every child would look as big as it.
The launcher is a fresh, small interpreter, and it times only its child (not its own start-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> int:
    result, sep, *cmd = sys.argv[1:]
    if sep != "--" or not cmd:
        print("usage: measure.py RESULT -- CMD...", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as f:
        json.dump({"seconds": seconds, "max_rss_kib": usage.ru_maxrss, "code": code}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
