"""Request bodies and broken requests over real HTTP, as a plain or hostile client sends them:
an upload over the limit, a body or headers that stall, too many stalled bodies from one IP,
and requests uvicorn cannot parse. Every answer is problem+json and every connection ends."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clearbg.engine import Engine
from clearbg.store.models import LedgerEntry
from tests.api.conftest import Server, start_server
from tests.conftest import PHOTOS

CAR = (PHOTOS / "car-1.jpg").read_bytes()
BOUNDARY = "b0undary"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Server]:
    server, stop = start_server(
        tmp_path_factory.mktemp("bodies"),
        api_engine,
        server={"body_timeout": 3.0, "header_timeout": 2.0, "uploads_per_ip": 2},
    )
    yield server
    stop()


PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
    f"Content-Type: image/jpeg\r\n\r\n"
).encode()


def multipart(image: bytes) -> bytes:
    return PART + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def connect(server: Server, timeout: float = 10) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response; the server must then close the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def assert_problem_bytes(headers: dict[str, str], body: bytes, code: str) -> None:
    assert headers["content-type"] == "application/problem+json", body
    problem = json.loads(body)
    assert problem["code"] == code and problem["detail"] and problem["type"].endswith(code)


def ledger_rows(server: Server) -> int:
    with server.db() as db:
        return int(db.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def test_a_plain_client_reads_the_413_of_an_upload_over_25_mb(srv: Server) -> None:
    key = srv.make_key(credits_=5)
    before = ledger_rows(srv)
    conn = http.client.HTTPConnection(srv.url.removeprefix("http://"), timeout=60)
    headers = {"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    over_25_mb = multipart(b"\0" * (26 * 1024 * 1024))
    conn.request("POST", "/v1/removebg", body=over_25_mb, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 413
    assert resp.getheader("content-type") == "application/problem+json"
    assert json.loads(resp.read())["code"] == "payload_too_large"
    conn.close()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        yield PART
        for _ in range(27):
            yield b"\0" * (1024 * 1024)

    conn = http.client.HTTPConnection(srv.url.removeprefix("http://"), timeout=60)
    conn.request("POST", "/v1/removebg", body=chunks(), headers=headers, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["code"] == "payload_too_large"
    conn.close()
    assert srv.balance(key) == 5 and ledger_rows(srv) == before  # refused before any credit


def test_a_plain_client_reads_an_answer_given_before_its_body_was_read(srv: Server) -> None:
    # the gateway refuses a request without X-App-Key before it reads the 8 MB body
    conn = http.client.HTTPConnection(srv.url.removeprefix("http://"), timeout=60)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    conn.request("POST", "/api/v1/clearbg", body=multipart(b"\0" * (8 << 20)), headers=headers)
    resp = conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["code"] == "missing_app_key"
    conn.close()


def test_a_body_that_stalls_is_408_and_the_connection_closes(srv: Server) -> None:
    key = srv.make_key(credits_=5)
    with connect(srv) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=" + BOUNDARY.encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n" + multipart(CAR)[:500]
        )
        status, headers, body = read_answer(sock)
        waited = time.monotonic() - started
    assert status == 408 and 2.5 < waited < 10
    assert_problem_bytes(headers, body, "request_timeout")
    assert srv.balance(key) == 5


def test_one_ip_holds_at_most_its_share_of_stalled_bodies(srv: Server) -> None:
    request = (
        b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        b"boundary=" + BOUNDARY.encode() + b"\r\nContent-Length: 100000\r\n\r\n--"
    )
    stalled = [connect(srv) for _ in range(2)]
    try:
        for sock in stalled:
            sock.sendall(request)
        time.sleep(1)  # both are now waiting for the rest of their bodies
        with connect(srv) as third:
            started = time.monotonic()
            third.sendall(request)
            status, headers, body = read_answer(third)
            assert time.monotonic() - started < 2  # refused at once, not after the timeout
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert_problem_bytes(headers, body, "too_many_uploads")
        for sock in stalled:  # and the two still end with their own 408
            assert read_answer(sock)[0] == 408
    finally:
        for sock in stalled:
            sock.close()
    key = srv.make_key(credits_=1)
    conn = http.client.HTTPConnection(srv.url.removeprefix("http://"), timeout=60)
    headers = {"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    conn.request("POST", "/v1/removebg", body=multipart(CAR), headers=headers)
    assert conn.getresponse().status == 200  # the IP is welcome again once they are gone
    conn.close()


def test_a_trusted_proxy_may_hold_more_stalled_bodies(tmp_path: Path, api_engine: Engine) -> None:
    server, stop = start_server(
        tmp_path,
        api_engine,
        server={"body_timeout": 1.0, "uploads_per_ip": 1},
        gateway={"trusted_proxies": ["127.0.0.0/8"]},
    )
    head = (
        b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        b"boundary=" + BOUNDARY.encode() + b"\r\nContent-Length: 100\r\n\r\n--"
    )
    try:
        stalled = [connect(server) for _ in range(3)]
        for sock in stalled:
            sock.sendall(head)
        assert [read_answer(sock)[0] for sock in stalled] == [408, 408, 408]
    finally:
        for sock in stalled:
            sock.close()
        stop()


@pytest.mark.parametrize(
    "head",
    [
        b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
        b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000,  # h11 keeps 16 KB
    ],
    ids=["negative", "not-a-number", "two-lengths", "bad-chunk", "bad-header", "tls", "huge-head"],
)
def test_a_request_uvicorn_cannot_parse_is_a_problem_400(srv: Server, head: bytes) -> None:
    with connect(srv) as sock:
        sock.sendall(head)
        status, headers, body = read_answer(sock)
    assert status == 400
    assert_problem_bytes(headers, body, "malformed_request")


@pytest.mark.parametrize("sent", [b"", b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\n"])
def test_headers_that_never_end_are_408_and_closed(srv: Server, sent: bytes) -> None:
    with connect(srv) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        status, headers, body = read_answer(sock)
        waited = time.monotonic() - started
    assert status == 408 and 1.5 < waited < 8
    assert_problem_bytes(headers, body, "request_timeout")
