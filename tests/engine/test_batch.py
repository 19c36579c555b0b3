"""``remove_many``: many photos at once, side by side or as a pipeline, with the real u2netp.
Results come in the order given, match one photo at a time, and one bad photo stops nothing."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from clearbg.engine import Engine, RemoveOptions
from clearbg.engine.batch import remove_many
from clearbg.errors import ClearbgError, NotAnImageError
from tests.conftest import PHOTOS

FAST = RemoveOptions(refine=False, foreground=False)
NAMES = ["car-1.jpg", "girl-1.jpg", "car-3.jpg", "girl-2.jpg"]


def _items(names: list[str]) -> list[tuple[str, Callable[[], bytes]]]:
    def reader(name: str) -> Callable[[], bytes]:
        if name == "broken":
            return lambda: b"no image at all"
        return (PHOTOS / name).read_bytes

    return [(name, reader(name)) for name in names]


def _alpha(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).getchannel("A"), dtype=np.int16)


@pytest.mark.slow
@pytest.mark.parametrize("side_by_side", [0, 2], ids=["pipeline", "side-by-side"])
def test_results_come_in_order_and_match_one_at_a_time(engine: Engine, side_by_side: int) -> None:
    names = [*NAMES[:2], "broken", *NAMES[2:]]
    results = list(remove_many(engine, _items(names), FAST, side_by_side=side_by_side))
    assert [k for k, _ in results] == names
    for name, outcome in results:
        if name == "broken":
            assert isinstance(outcome, NotAnImageError)
            continue
        assert not isinstance(outcome, ClearbgError)
        alone = engine.remove((PHOTOS / name).read_bytes(), FAST)
        assert (outcome.width, outcome.height) == (alone.width, alone.height)
        # one model thread or two may round a float differently: a level at most, here and there
        diff = np.abs(_alpha(outcome.data) - _alpha(alone.data))
        assert diff.max() <= 2 and diff.mean() < 0.01


def test_closing_early_stops_the_workers(engine: Engine) -> None:
    results = remove_many(engine, _items(NAMES * 3), FAST, side_by_side=2)
    first = next(results)
    assert first[0] == NAMES[0]
    results.close()  # returns once the photos under way are done; the rest never start
    assert not [t for t in threading.enumerate() if t.name.startswith("clearbg-photo")]
