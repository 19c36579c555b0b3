"""Jobs shared by the calling thread and one pool thread."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from clearbg.engine.turns import run_in_turn


def _jobs(count: int, seconds: float, log: list[tuple[int, str]]) -> list[Callable[[], int]]:
    def job(i: int) -> int:
        time.sleep(seconds)  # lets go of the GIL, as the real jobs' numpy and ISA-L calls do
        log.append((i, threading.current_thread().name))
        return i * i

    return [functools.partial(job, i) for i in range(count)]


@pytest.mark.parametrize("pool", [None, 1, 2])
def test_every_job_runs_once_and_the_results_keep_their_order(pool: int | None) -> None:
    log: list[tuple[int, str]] = []
    if pool is None:
        results = run_in_turn(_jobs(7, 0.001, log), None)
    else:
        with ThreadPoolExecutor(pool, thread_name_prefix="helper") as executor:
            results = run_in_turn(_jobs(7, 0.001, log), executor)
    assert results == [i * i for i in range(7)]
    assert sorted(i for i, _ in log) == list(range(7))


def test_a_free_pool_thread_takes_jobs_beside_the_caller() -> None:
    log: list[tuple[int, str]] = []
    with ThreadPoolExecutor(2, thread_name_prefix="helper") as executor:
        run_in_turn(_jobs(10, 0.03, log), executor)
    threads = {name for _, name in log}
    assert threading.current_thread().name in threads
    assert len([name for name in threads if name.startswith("helper")]) == 1  # one helper only


def test_a_busy_pool_leaves_every_job_to_the_caller() -> None:
    log: list[tuple[int, str]] = []
    release = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="helper") as executor:
        blocker = executor.submit(release.wait, 30)
        assert run_in_turn(_jobs(5, 0.001, log), executor) == [0, 1, 4, 9, 16]
        assert not blocker.done()  # not waited for
        release.set()
    assert {name for _, name in log} == {threading.current_thread().name}


def test_a_failing_job_is_raised_and_no_new_job_starts_after_it() -> None:
    started: list[int] = []

    def job(i: int) -> int:
        started.append(i)
        if i == 2:
            raise ValueError("strip 2 is broken")
        return i

    with (
        ThreadPoolExecutor(1) as executor,
        pytest.raises(ValueError, match="strip 2 is broken"),
    ):
        run_in_turn([functools.partial(job, i) for i in range(50)], executor)
    assert len(started) < 50
