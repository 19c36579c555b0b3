"""The SDK tries a 429 and a 503 again, after their Retry-After, with one Idempotency-Key: a
real 503 from a full engine queue (one slot, no queue) and a real 429 from the key's rate limit,
each followed by one delivered cut-out, charged once (the ledger says so)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from clearbg import Client
from clearbg.engine import Engine
from clearbg.errors import OverloadedError, RateLimitedError
from tests.api.conftest import Server, start_server
from tests.client.conftest import charges, small_jpeg, statuses
from tests.conftest import PHOTOS
from tests.waiting import wait_for

LARGE = PHOTOS / "food-1.out.alpha.jpg"  # a 24 MP PNG: holds the engine's one slot for a while


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory, sdk_engine: Engine) -> Iterator[Server]:
    srv, stop = start_server(
        tmp_path_factory.mktemp("busy"),
        sdk_engine,
        server={"engine_slots": 1, "queue_limit": 0},
    )
    yield srv
    stop()


@pytest.fixture(scope="module")
def limited_server(
    tmp_path_factory: pytest.TempPathFactory, sdk_engine: Engine
) -> Iterator[Server]:
    srv, stop = start_server(tmp_path_factory.mktemp("limited"), sdk_engine, app={"rate": 1})
    yield srv
    stop()


def _hold_the_engine(srv: Server) -> threading.Thread:
    """A large photo in the engine's only slot, sent by another key, until it is done."""
    other = srv.make_key(unlimited=True)

    def send() -> None:
        with srv.client(other, timeout=300) as c:
            c.post("/v1/removebg", files={"image": ("large.png", LARGE.read_bytes())})

    thread = threading.Thread(target=send)
    thread.start()
    assert srv.services is not None
    limit = srv.services.paid.limit
    wait_for(lambda: limit.running, seconds=60, what="the large photo in the engine")
    return thread


@pytest.mark.slow
def test_a_503_is_tried_again_and_charged_once(busy_server: Server) -> None:
    key = busy_server.make_key(credits_=5)
    holder = _hold_the_engine(busy_server)
    try:
        with Client(busy_server.url, key, retries=0) as impatient:
            with pytest.raises(OverloadedError) as busy:
                impatient.remove(small_jpeg())
            assert busy.value.retry_after >= 1
        with Client(busy_server.url, key, retries=60) as client:
            cut = client.remove(small_jpeg())
    finally:
        holder.join()
    assert cut.credits_charged == 1
    assert charges(busy_server, key) == [-100]
    found = wait_for(lambda: statuses(busy_server, key), lambda s: 200 in s, what="usage")
    assert found.count(503) >= 2  # the impatient one's, and at least one the client retried


@pytest.mark.slow
def test_a_429_is_tried_again_after_retry_after_and_charged_once(limited_server: Server) -> None:
    srv = limited_server
    key = srv.make_key(credits_=5)
    with Client(srv.url, key, retries=0) as client:
        client.remove(small_jpeg())  # the key's one request of this minute
        with pytest.raises(RateLimitedError) as limited:
            client.remove(small_jpeg())
    assert 1 <= limited.value.retry_after <= 60
    with Client(srv.url, key, retries=1) as patient:
        cut = patient.remove(small_jpeg())  # waits out the minute, then is served
    assert cut.credits_charged == 1
    assert charges(srv, key) == [-100, -100]
    found = wait_for(lambda: statuses(srv, key), lambda s: len(s) == 4, what="usage")
    assert sorted(found) == [200, 200, 429, 429]
