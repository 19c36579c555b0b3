"""Job leases on the stack's real Redis: a worker ends only its own lease, and a renewal that
meets a Redis error keeps renewing."""

from __future__ import annotations

import secrets
import threading

import pytest
import redis

from clearbg.jobs.leases import Leases
from tests.scale.stack import Stack


@pytest.fixture
def conn(stack: Stack) -> redis.Redis:
    return redis.Redis(port=stack.redis_port, db=5)


def test_a_worker_that_lost_its_lease_does_not_end_the_new_holders(conn: redis.Redis) -> None:
    leases = Leases(conn, lease_seconds=30, queued_seconds=60)
    job = "job-" + secrets.token_hex(4)
    key = f"clearbg.lease.{job}"
    with leases.hold(job):
        conn.set(key, "running other-host.1:4242")  # the lease lapsed, another worker took it
    assert conn.get(key) == b"running other-host.1:4242"
    with leases.hold(job):
        pass
    assert conn.get(key) is None  # its own lease it ends


class FlakyRedis(redis.Redis):
    """Redis whose first renewal fails as a dropped connection does."""

    failed = False

    def set(self, *args: object, **kwargs: object) -> bool | None:  # type: ignore[override]
        if "nx" not in kwargs and self.get(str(args[0])) is not None and not self.failed:
            self.failed = True
            raise redis.ConnectionError("connection reset")
        return super().set(*args, **kwargs)  # type: ignore[arg-type]


def test_a_renewal_outlives_a_redis_error(stack: Stack) -> None:
    conn = FlakyRedis(port=stack.redis_port, db=5)
    leases = Leases(conn, lease_seconds=0.6, queued_seconds=1)
    job = "job-" + secrets.token_hex(4)
    with leases.hold(job):
        threading.Event().wait(1.5)  # past the lease: only renewals keep it
        assert conn.failed
        assert conn.get(f"clearbg.lease.{job}") is not None
