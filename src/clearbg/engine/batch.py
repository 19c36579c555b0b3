"""Many photos as a pipeline: decode ahead, infer, and compose/encode behind, on three threads.

The model keeps both cores busy most of the time; decoding the next photo and encoding the
previous one fill the gaps, so a folder or a bulk job goes faster than one photo after another.
At most ``lookahead`` photos wait on each side, which bounds memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from clearbg.errors import ClearbgError

if TYPE_CHECKING:
    from clearbg.engine.options import RemoveOptions
    from clearbg.engine.pipeline import Cutout, Decoded, Engine, MaskResult

__all__ = ["remove_many"]

K = TypeVar("K")


def remove_many(
    engine: Engine,
    items: Iterable[tuple[K, Callable[[], bytes]]],
    options: RemoveOptions,
    lookahead: int = 2,
) -> Generator[tuple[K, Cutout | ClearbgError], None, None]:
    """Yield ``(key, cutout or error)`` in the order of ``items``; ``read()`` gives the bytes.

    A ``ClearbgError`` from reading, decoding or encoding one photo is yielded for that photo
    and the others go on. Closing the iterator early stops the threads.
    """
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

    def settle(key: K, pending: Future[Cutout] | ClearbgError) -> tuple[K, Cutout | ClearbgError]:
        if isinstance(pending, ClearbgError):
            return key, pending
        try:
            return key, pending.result()
        except ClearbgError as exc:
            return key, exc

    try:
        for _ in range(lookahead):
            feed()
        while decoding:
            key, fut = decoding.popleft()
            feed()
            try:
                writing.append(
                    (key, writer.submit(finish, engine.predict(fut.result(), options.flip)))
                )
            except ClearbgError as exc:
                writing.append((key, exc))
            while len(writing) > lookahead or (writing and _ready(writing[0][1])):
                yield settle(*writing.popleft())
        while writing:
            yield settle(*writing.popleft())
    finally:
        for _, f in decoding:
            f.cancel()
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)


def _ready(pending: Future[Cutout] | ClearbgError) -> bool:
    return isinstance(pending, ClearbgError) or pending.done()
