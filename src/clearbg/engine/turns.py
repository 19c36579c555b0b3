"""Jobs shared by the calling thread and one pool thread, taken in turn.

A strip of a cut-out costs more or less as its rows hold more or less of the subject
(transparent rows compress at once): handing each thread a fixed half leaves one idle while the
other finishes. Here each thread takes the next job
when it is free. The calling thread starts at once and never waits for the pool: a helper the
pool has not started by the time the jobs are done (its threads busy with other requests) is
cancelled.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

__all__ = ["run_in_turn"]

T = TypeVar("T")


def run_in_turn(jobs: Sequence[Callable[[], T]], pool: Executor | None) -> list[T]:
    """Every job's result, in the jobs' order; the jobs run on this thread and on one thread
    of ``pool`` (if given), each taking the next job not yet taken. A job's exception is
    raised here (after the other thread has stopped taking jobs)."""
    done: dict[int, T] = {}
    turn = itertools.count()  # next() on it is atomic: each job is taken once
    failed: list[bool] = []

    def work() -> None:
        while not failed and (i := next(turn)) < len(jobs):
            try:
                done[i] = jobs[i]()
            except BaseException:
                failed.append(True)
                raise

    helper = pool.submit(work) if pool is not None and len(jobs) > 1 else None
    try:
        work()
    finally:
        if helper is not None and not helper.cancel():
            helper.result()  # re-raises the helper's exception, if it had one
    return [done[i] for i in range(len(jobs))]
