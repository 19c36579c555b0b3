"""Many photos at once: side by side (a photo per core, one model thread each), or on one
core as a pipeline (decode ahead, infer, and compose/encode behind, on three threads), so a
folder or a bulk job goes faster than one photo after another. At most ``lookahead`` photos
wait beyond those being worked on, which bounds memory.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from clearbg.errors import ClearbgError

if TYPE_CHECKING:
    from clearbg.engine.options import RemoveOptions
    from clearbg.engine.pipeline import Cutout, Decoded, Engine, MaskResult

__all__ = ["remove_many", "side_by_side_workers"]

K = TypeVar("K")


def remove_many(
    engine: Engine,
    items: Iterable[tuple[K, Callable[[], bytes]]],
    options: RemoveOptions,
    lookahead: int = 2,
    side_by_side: int | None = None,
) -> Generator[tuple[K, Cutout | ClearbgError], None, None]:
    """Yield ``(key, cutout or error)`` in the order of ``items``; ``read()`` gives the bytes.

    A ``ClearbgError`` from reading, decoding or encoding one photo is yielded for that photo
    and the others go on. Closing the iterator early stops the threads.

    ``side_by_side=N`` (N >= 2; by default one per core, at most 4) runs N photos at once,
    each all the way through on its own thread with a one-thread model session: no stage waits
    for another, and a thread per photo uses a core better than two threads on one photo
    (``python bench/bench.py --only folder`` times it against rembg). With one core, or
    ``side_by_side`` 0 or 1, the photos go through the staged pipeline.
    """
    workers = side_by_side_workers(side_by_side)
    if workers >= 2:
        yield from _side_by_side(engine, items, options, workers, lookahead)
        return
    source = iter(items)
    reader = ThreadPoolExecutor(1, "clearbg-read")
    writer = ThreadPoolExecutor(1, "clearbg-write")
    decoding: deque[tuple[K, Future[Decoded]]] = deque()
    writing: deque[tuple[K, Future[Cutout] | ClearbgError]] = deque()

    def load(read: Callable[[], bytes]) -> Decoded:
        return engine.decode(read(), options.model)

    def feed() -> None:
        nxt = next(source, None)
        if nxt is not None:
            decoding.append((nxt[0], reader.submit(load, nxt[1])))

    def finish(result: MaskResult) -> Cutout:
        return engine.finish(result, options)

    try:
        for _ in range(lookahead):
            feed()
        while decoding:
            key, fut = decoding.popleft()
            feed()
            try:
                result = engine.predict(
                    fut.result(), options.flip, combine=options.combine, partner=options.partner
                )
                writing.append((key, writer.submit(finish, result)))
            except ClearbgError as exc:
                writing.append((key, exc))
            yield from _drain(writing, lookahead)
        yield from _drain(writing, 0)
    finally:
        for _, f in decoding:
            f.cancel()
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)


def side_by_side_workers(side_by_side: int | None = None) -> int:
    """How many photos ``remove_many`` runs at once (below 2: the staged pipeline instead)."""
    return min(os.cpu_count() or 1, 4) if side_by_side is None else side_by_side


def _side_by_side(
    engine: Engine,
    items: Iterable[tuple[K, Callable[[], bytes]]],
    options: RemoveOptions,
    workers: int,
    lookahead: int,
) -> Generator[tuple[K, Cutout | ClearbgError], None, None]:
    def one(read: Callable[[], bytes]) -> Cutout:
        return engine.remove(read(), options, threads=1)

    source = iter(items)
    pool = ThreadPoolExecutor(workers, "clearbg-photo")
    running: deque[tuple[K, Future[Cutout] | ClearbgError]] = deque()
    try:
        for key, read in source:
            running.append((key, pool.submit(one, read)))
            yield from _drain(running, workers + lookahead - 1)
        yield from _drain(running, 0)
    finally:
        for _, f in running:
            if isinstance(f, Future):
                f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _drain(
    queue: deque[tuple[K, Future[Cutout] | ClearbgError]], keep: int
) -> Generator[tuple[K, Cutout | ClearbgError], None, None]:
    """Results from the front of ``queue``, in order: while more than ``keep`` wait (blocking
    on the first), and then as long as the first is ready. ``keep=0`` empties it."""
    while len(queue) > keep or (queue and _ready(queue[0][1])):
        key, pending = queue.popleft()
        if isinstance(pending, ClearbgError):
            yield key, pending
            continue
        try:
            yield key, pending.result()
        except ClearbgError as exc:
            yield key, exc


def _ready(pending: Future[Cutout] | ClearbgError) -> bool:
    return isinstance(pending, ClearbgError) or pending.done()
