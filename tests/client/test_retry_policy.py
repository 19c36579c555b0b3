"""When the SDK sends a call again: only where a repeat cannot charge twice, and never for
longer than a client should sleep."""

from __future__ import annotations

import httpx
import pytest

from clearbg.client.core import MAX_WAIT, Call, Options, remove_call, retry_delay

PAID = remove_call(b"photo", Options(), None)
GATEWAY = Call("POST", "/api/v1/clearbg")  # no Idempotency-Key: a repeat would pay again
READ = Call("GET", "/v1/account")


def answer(status: int, code: str = "", retry_after: str = "") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return httpx.Response(status, json={"code": code}, headers=headers)


def test_paid_calls_and_reads_are_repeatable_and_a_gateway_call_is_not() -> None:
    assert PAID.repeatable and len(PAID.headers["Idempotency-Key"]) >= 32
    assert READ.repeatable and not GATEWAY.repeatable


@pytest.mark.parametrize("call", [PAID, READ])
def test_a_lost_connection_is_tried_again_when_the_call_is_repeatable(call: Call) -> None:
    lost = httpx.ReadTimeout("timed out")
    assert retry_delay(call, lost, 0, 3) == 0.5
    assert retry_delay(call, lost, 2, 3) == 2.0
    assert retry_delay(call, lost, 3, 3) is None  # retries used up


def test_a_lost_connection_of_a_call_without_a_key_is_raised() -> None:
    assert retry_delay(GATEWAY, httpx.ConnectError("refused"), 0, 3) is None


def test_a_first_try_still_running_is_waited_for_but_other_conflicts_are_not() -> None:
    assert retry_delay(PAID, answer(409, "idempotency_in_progress"), 0, 3) == 0.5
    assert retry_delay(PAID, answer(409, "idempotency_mismatch"), 0, 3) is None


def test_retry_after_is_honoured_up_to_max_wait_and_a_daily_limit_is_raised_at_once() -> None:
    assert retry_delay(PAID, answer(429, "rate_limited", "7"), 0, 3) == 7
    assert retry_delay(GATEWAY, answer(503, "overloaded"), 1, 3) == 1.0
    hours = answer(429, "anonymous_limit_reached", "8647")
    assert retry_delay(GATEWAY, hours, 0, 3) is None
    assert MAX_WAIT < 8647
    assert retry_delay(PAID, answer(400, "invalid_option"), 0, 3) is None
