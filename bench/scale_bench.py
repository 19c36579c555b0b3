"""Bulk throughput on the scale-out stack with 1 and 2 workers, and the round trips per image.

Starts PostgreSQL (with pg_stat_statements), Redis and SeaweedFS as `make test-scale` does
(tests/scale/stack.py), one API process and one or two `clearbg worker` processes (u2netp, one
engine thread each), and submits JOBS bulk jobs of PHOTOS photos at once; a job runs on one
worker, so two workers run two jobs at a time. Rounds alternate 1 and 2 workers; medians.

Round trips are counted by the servers themselves over one job on one worker: PostgreSQL's
pg_stat_statements (every statement of the API and the worker, the bench's own status polls
subtracted) and Redis' commandstats (minus the idle consumers' polling, measured beforehand).

    python bench/scale_bench.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402

from tests.scale.stack import ADMIN_TOKEN, Stack, servers  # noqa: E402

OWN = "%pg_stat_statements%"


def make_key(stack: Stack) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    app = httpx.post(
        f"{stack.url}/admin/applications", json={"name": f"bench-{time.time_ns()}"}, headers=admin
    ).json()
    made = httpx.post(
        f"{stack.url}/admin/applications/{app['id']}/keys", json={"unlimited": True}, headers=admin
    )
    return str(made.json()["secret"])


def submit(stack: Stack, key: str, photos: list[Path]) -> str:
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    answer = httpx.post(f"{stack.url}/v1/bulk", headers={"X-Api-Key": key}, files=files, timeout=60)
    answer.raise_for_status()
    return str(answer.json()["job_id"])


def status(stack: Stack, key: str, job_id: str) -> str:
    answer = httpx.get(f"{stack.url}/v1/bulk/{job_id}", headers={"X-Api-Key": key}, timeout=30)
    return str(answer.json()["status"])


def run_jobs(stack: Stack, key: str, photos: list[Path], jobs: int) -> tuple[float, int]:
    """Seconds from the first submission to the last job's end; the status polls made."""
    started = time.perf_counter()
    pending = {submit(stack, key, photos) for _ in range(jobs)}
    polls = 0
    while pending:
        time.sleep(0.5)
        for job_id in list(pending):
            polls += 1
            if status(stack, key, job_id) in ("completed", "failed"):
                pending.discard(job_id)
    return time.perf_counter() - started, polls


def pg_calls(stack: Stack) -> tuple[int, list[tuple[int, str]]]:
    with psycopg.connect(stack.dsn()) as conn:
        rows = conn.execute(
            "SELECT calls, query FROM pg_stat_statements WHERE query NOT LIKE %s "
            "ORDER BY calls DESC",
            (OWN,),
        ).fetchall()
    return sum(int(r[0]) for r in rows), [(int(r[0]), str(r[1])) for r in rows]


def pg_reset(stack: Stack) -> None:
    with psycopg.connect(stack.dsn()) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def redis_calls(conn: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = conn.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def round_trips(stack: Stack, key: str, photos: list[Path]) -> None:
    conn = redis.Redis(port=stack.redis_port)
    # the idle rate: consumers polling the queue, leases renewed, nothing to do
    conn.config_resetstat()
    time.sleep(5)
    idle = sum(redis_calls(conn).values()) / 5
    # what one status poll costs the database
    job_id = submit(stack, key, photos[:1])
    while status(stack, key, job_id) != "completed":
        time.sleep(0.5)
    pg_reset(stack)
    conn.config_resetstat()
    started = time.perf_counter()
    for _ in range(10):
        status(stack, key, job_id)
    per_poll = pg_calls(stack)[0] / 10
    redis_per_poll = (
        sum(redis_calls(conn).values()) - 1 - idle * (time.perf_counter() - started)
    ) / 10
    # one job of len(photos) images, end to end
    pg_reset(stack)
    conn.config_resetstat()
    seconds, polls = run_jobs(stack, key, photos, 1)
    total, top = pg_calls(stack)
    by_command = redis_calls(conn)
    images = len(photos)
    db = (total - polls * per_poll) / images
    rd = (sum(by_command.values()) - idle * seconds - polls * redis_per_poll) / images
    print(f"\nround trips per image ({images}-photo job, one worker, {seconds:.1f} s):")
    print(f"  database statements: {db:.1f}  (status polls subtracted: {polls} x {per_poll:.1f})")
    print(
        f"  redis commands:      {rd:.1f}  (subtracted: idle polling {idle:.1f}/s, "
        f"status polls {polls} x {redis_per_poll:.1f})"
    )
    print("  top statements:")
    for calls, query in top[:8]:
        print(f"    {calls:5d}  {' '.join(query.split())[:90]}")
    print("  redis commands:", ", ".join(f"{k} {v}" for k, v in sorted(by_command.items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--photos", type=int, default=6, help="photos per job")
    ap.add_argument("--jobs", type=int, default=4, help="jobs submitted at once")
    ap.add_argument("--rounds", type=int, default=2, help="0: the round trips only")
    args = ap.parse_args()
    photos = sorted((args.data / "photos").glob("*.jpg"))[: args.photos]
    images = args.photos * args.jobs
    with (
        tempfile.TemporaryDirectory(prefix="clearbg-scale-bench-") as root,
        servers(Path(root)) as stack,
    ):
        stack.start_api(workers=1)
        stack.start_worker("worker-1")
        key = make_key(stack)
        run_jobs(stack, key, photos[:1], 1)  # warm: the model loaded, connections open
        timings: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.rounds):
            for workers in (1, 2):
                if workers == 2:
                    stack.start_worker("worker-2")
                seconds, _ = run_jobs(stack, key, photos, args.jobs)
                if workers == 2:
                    stack.kill("worker-2", signal.SIGTERM)
                timings[workers].append(seconds)
                print(f"round {r + 1}, {workers} worker(s): {images / seconds:.2f} images/s")
        for workers, runs in timings.items():
            if not runs:
                continue
            median = statistics.median(runs)
            print(
                f"bulk, {workers} worker(s): {images / median:.2f} images/s "
                f"(median of {len(runs)}: {median:.1f} s for {args.jobs} jobs x {args.photos})"
            )
        round_trips(stack, key, photos)


if __name__ == "__main__":
    main()
