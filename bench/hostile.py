"""A hostile client against `clearbg serve` (a child process on 127.0.0.1 with u2netp and a
temporary data folder; every loop is bounded and the script stops the server itself).

Sends malformed HTTP (raw sockets), broken multipart, wrong types and bad options to
/v1/removebg and the gateway, oversized and stalled uploads, bad keys, URL tricks for the
gateway's image URL (private and loopback addresses in their odd spellings, odd schemes, and
redirects to them from an allowed host), then 100 parallel paid requests on a key with 30
credits. Prints requests by status class, every 5xx and every 4xx that is not problem+json
(both must be empty), answers that never came, and credits spent against images delivered
against the ledger.

    python bench/hostile.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from api_bench import Server, start

ALLOWED = "127.0.0.5"  # the one loopback address the gateway may fetch from (fetch_allow)
BOUNDARY = "hostile"
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Answer:
    group: str
    name: str
    status: int  # 0: no answer (reset, closed or timed out)
    content_type: str = ""
    code: str = ""
    detail_len: int = 0
    note: str = ""


def _problem(status: int, content_type: str, body: bytes) -> tuple[str, int]:
    if content_type != PROBLEM:
        return "", 0
    try:
        problem = json.loads(body)
    except ValueError:
        return "", 0
    return str(problem.get("code", "")), len(str(problem.get("detail", "")))


def raw(group: str, name: str, port: int, data: bytes, wait: float = 15) -> Answer:
    """Bytes on a fresh connection; the answer the server writes before it closes."""
    got = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                got += chunk
    except (TimeoutError, ConnectionError) as exc:
        if not got:
            return Answer(group, name, 0, note=type(exc).__name__)
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        return Answer(group, name, 0, note=f"not HTTP: {got[:40]!r}")
    headers = dict(ln.lower().split(": ", 1) for ln in lines[1:] if ": " in ln)
    status, content_type = int(lines[0].split()[1]), headers.get("content-type", "")
    body = body[: int(headers.get("content-length", len(body)))]  # the first answer's body
    return Answer(group, name, status, content_type, *_problem(status, content_type, body))


def via_httpx(group: str, name: str, call: Callable[[], httpx.Response]) -> Answer:
    try:
        resp = call()
    except httpx.HTTPError as exc:
        return Answer(group, name, 0, note=type(exc).__name__)
    content_type = resp.headers.get("content-type", "")
    return Answer(
        group, name, resp.status_code, content_type, *_problem(0, content_type, resp.content)
    )


def via_http_client(
    group: str, name: str, port: int, body: object, headers: dict[str, str]
) -> Answer:
    """Python's plain client: it writes the whole body before it reads the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        chunked = not isinstance(body, bytes)
        conn.request("POST", "/v1/removebg", body=body, headers=headers, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return Answer(group, name, 0, note=type(exc).__name__)
    finally:
        conn.close()
    content_type = resp.getheader("content-type") or ""
    return Answer(group, name, resp.status, content_type, *_problem(0, content_type, data))


def multipart(fields: list[tuple[str, bytes, str | None]]) -> bytes:
    out = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def protocol_cases(port: int, key: str) -> list[Answer]:
    """Requests uvicorn (h11) must refuse, and bodies and headers that stall."""
    post = b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode() + b"\r\n"
    form = b"Content-Type: multipart/form-data; boundary=" + BOUNDARY.encode() + b"\r\n"
    cases = {
        "cl-negative": post + b"Content-Length: -1\r\n\r\n",
        "cl-text": post + b"Content-Length: ten\r\n\r\n",
        "cl-plus": post + b"Content-Length: +5\r\n\r\nhello",
        "cl-hex": post + b"Content-Length: 0x10\r\n\r\n",
        "cl-two": post + b"Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        "cl-comma": post + b"Content-Length: 5, 6\r\n\r\nhello",
        "cl-huge": post + form + b"Content-Length: 99999999999999999999\r\n\r\nabc",
        "cl-and-chunked": post
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "chunk-bad": post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
        "chunk-huge": post + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
        "te-unknown": post + b"Transfer-Encoding: gzip\r\n\r\n",
        "header-no-colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBroken\r\n\r\n",
        "header-space-name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n",
        "header-nul": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        "header-fold": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
        "header-16k": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000,
        "no-host": b"GET /healthz HTTP/1.1\r\n\r\n",
        "two-hosts": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "bad-version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        "bad-line": b"GET\r\n\r\n",
        "spaces-in-target": b"GET /he althz HTTP/1.1\r\nHost: x\r\n\r\n",
        "non-ascii-target": b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        "lf-only": b"GET /healthz HTTP/1.1\nHost: x\n\n",
        "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        "garbage": b"\x00\x01\x02\x03 hello there\r\n\r\n",
        "expect-oversize": post
        + form
        + b"Expect: 100-continue\r\nContent-Length: 40000000\r\n\r\n",
        "headers-stall": b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\n",
        "nothing-sent": b"",
    }
    for i in range(12):  # bodies that promise more than they send
        cases[f"body-stall-{i}"] = (
            post + form + b"Content-Length: 100000\r\n\r\n--" + BOUNDARY.encode()
        )
    with ThreadPoolExecutor(48) as pool:
        return list(pool.map(lambda kv: raw("protocol", kv[0], port, kv[1]), cases.items()))


def stalled_flood(port: int, per_ip: int) -> list[Answer]:
    """More stalled bodies from one IP than it may hold: the extra ones are refused at once."""
    head = (
        b"POST /v1/removebg HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary="
        + BOUNDARY.encode()
        + b"\r\nContent-Length: 100000\r\n\r\n--"
    )
    with ThreadPoolExecutor(per_ip + 10) as pool:
        return list(
            pool.map(lambda i: raw("stall-flood", f"stall-{i}", port, head), range(per_ip + 10))
        )


def removebg_cases(srv: Server, port: int, key: str, photo: bytes) -> list[Answer]:
    png_bomb = (  # a PNG header that claims 100000 x 100000 pixels
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x06\x00\x00\x00"
        b"\x00\x00\x00\x00"
    )
    files: dict[str, list[tuple[str, bytes, str | None]]] = {
        "no-image": [("size", b"auto", None)],
        "image-as-text": [("image", b"hello", None)],
        "two-images": [("image", photo, "a.jpg"), ("image", photo, "b.jpg")],
        "empty-image": [("image", b"", "a.jpg")],
        "not-an-image": [("image", b"hello world" * 100, "a.jpg")],
        "truncated-jpeg": [("image", photo[: len(photo) // 3], "a.jpg")],
        "png-header-only": [("image", photo[:0] + b"\x89PNG\r\n\x1a\n", "a.png")],
        "png-bomb": [("image", png_bomb, "a.png")],
        "gif-1x1": [("image", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "a.gif")],
        "svg": [("image", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg")],
    }
    for field, value in [
        ("size", b""),
        ("size", b"99999x99999"),
        ("size", b"huge"),
        ("bg_color", b"rgb(300,0,0)"),
        ("bg_color", b"#" + b"f" * 10_000),
        ("bg_color", b"notacolor"),
        ("format", b"gif"),
        ("format", b"../../etc/passwd"),
        ("channels", b"cmyk"),
        ("crop", b"maybe"),
        ("crop_margin", b"-5"),
        ("crop_margin", b"1000%"),
        ("crop_margin", b"NaN"),
        ("model", b"../../etc/passwd"),
        ("model", b"nope"),
        ("flip", b"banana"),
        ("size", b"\xff\xfe"),
    ]:
        files[f"{field}={value[:16]!r}"] = [("image", photo, "a.jpg"), (field, value, None)]
    content_type = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    calls: dict[str, Callable[[], httpx.Response]] = {}
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        for name, parts in files.items():
            body = multipart(parts)
            calls[name] = lambda b=body: c.post(
                "/v1/removebg", content=b, headers={"X-API-Key": key, **content_type}
            )
        other = {
            "no-key": ({}, multipart([("image", photo, "a.jpg")])),
            "empty-key": ({"X-API-Key": ""}, multipart([("image", photo, "a.jpg")])),
            "wrong-key": ({"X-API-Key": "cbg_" + "x" * 40}, multipart([("image", photo, "a.jpg")])),
            "huge-key": ({"X-API-Key": "k" * 8000}, multipart([("image", photo, "a.jpg")])),
            "json-body": ({"X-API-Key": key, "Content-Type": "application/json"}, b'{"image": 1}'),
            "urlencoded": (
                {"X-API-Key": key, "Content-Type": "application/x-www-form-urlencoded"},
                b"image=abc",
            ),
            "no-boundary": ({"X-API-Key": key, "Content-Type": "multipart/form-data"}, b"--x\r\n"),
            "wrong-boundary": (
                {"X-API-Key": key, "Content-Type": "multipart/form-data; boundary=other"},
                multipart([("image", photo, "a.jpg")]),
            ),
            "truncated-multipart": (
                {"X-API-Key": key, **content_type},
                multipart([("image", photo, "a.jpg")])[:-200],
            ),
            "idempotency-10k": (
                {"X-API-Key": key, "Idempotency-Key": "i" * 10_000, **content_type},
                multipart([("image", b"x", "a.jpg")]),
            ),
        }
        for name, (headers, body) in other.items():
            calls[name] = lambda h=headers, b=body: c.post("/v1/removebg", content=b, headers=h)
        calls["get-removebg"] = lambda: c.get("/v1/removebg", headers={"X-API-Key": key})
        calls["put-removebg"] = lambda: c.put("/v1/removebg", headers={"X-API-Key": key})
        calls["dotdot-path"] = lambda: c.get("/v1/../v1/account", headers={"X-API-Key": key})
        calls["bulk-no-files"] = lambda: c.post("/v1/bulk", headers={"X-API-Key": key})
        calls["job-bad-id"] = lambda: c.get("/v1/bulk/%00' or 1=1", headers={"X-API-Key": key})
        calls["admin-no-token"] = lambda: c.get("/admin/applications")
        answers = [via_httpx("removebg", n, f) for n, f in calls.items()]
    too_big = multipart([("image", b"\0" * (26 * 1024 * 1024), "a.jpg")])
    headers = {"X-API-Key": key, **content_type}
    answers.append(via_http_client("oversize", "26MB-http.client", port, too_big, headers))
    chunks = iter([too_big[i : i + (1 << 20)] for i in range(0, len(too_big), 1 << 20)])
    answers.append(via_http_client("oversize", "26MB-chunked", port, chunks, headers))
    return answers


class _Images(http.server.BaseHTTPRequestHandler):
    """The allowed host: a photo, text, a huge and a slow answer, and redirects anywhere."""

    photo = b""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.end_headers()
        elif self.path == "/slow":
            time.sleep(4)
            self.send_response(200)
            self.end_headers()
        else:
            body = {"/photo": self.photo, "/big": b"\0" * (30 << 20)}.get(self.path, b"hello")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # the gateway stops reading at its limit
                self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def gateway_cases(srv: Server, app_key: str, key: str, images: str) -> list[Answer]:
    port = srv.url.rsplit(":", 1)[1]
    loop = f"127.0.0.1:{port}"
    urls = [
        f"http://{loop}/healthz",
        f"http://localhost:{port}/healthz",
        f"http://[::1]:{port}/healthz",
        f"http://0.0.0.0:{port}/healthz",
        f"http://127.1:{port}/healthz",
        f"http://2130706433:{port}/healthz",
        f"http://0x7f000001:{port}/healthz",
        f"http://0177.0.0.1:{port}/healthz",
        f"http://[::ffff:127.0.0.1]:{port}/healthz",
        f"http://[::ffff:7f00:1]:{port}/healthz",
        f"http://127.0.0.2:{port}/healthz",
        f"http://user:pw@{loop}/healthz",
        f"http://{loop}\\@example.com/",
        f"HTTP://{loop}/healthz",
        f"  http://{loop}/healthz  ",
        f"http://%31%32%37.0.0.1:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[::1",
        "http:/127.0.0.1/",
        "//127.0.0.1/",
        "file:///etc/passwd",
        f"ftp://{loop}/",
        f"gopher://{loop}/_x",
        "dict://127.0.0.1:11211/stats",
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "data:image/png;base64,!!!!",
        "data:image/png,rawbytes",
        f"{images}/text",
        f"{images}/big",
        f"{images}/slow",
    ]
    redirects = [
        f"http://{loop}/healthz",
        f"http://localhost:{port}/healthz",
        f"http://[::1]:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        f"gopher://{loop}/",
        f"http://0.0.0.0:{port}/",
        f"{images}/redirect?to={images}/redirect?to={images}/redirect?to={images}/redirect?to="
        f"{images}/redirect?to={images}/redirect?to={images}/text",
    ]
    urls += [f"{images}/redirect?to={target}" for target in redirects]
    paid = {"X-App-Key": app_key, "X-Api-Key": key}
    with httpx.Client(base_url=srv.url, timeout=60) as c:

        def send(headers: dict[str, str], image: str, **extra: str) -> httpx.Response:
            return c.post(
                "/api/v1/clearbg", files={"image": (None, image)}, data=extra, headers=headers
            )

        calls: dict[str, Callable[[], httpx.Response]] = {
            f"url {u[:60]}": (lambda u=u: send(paid, u)) for u in urls
        }
        calls["no-app-key"] = lambda: send({}, f"{images}/photo")
        calls["unknown-app-key"] = lambda: send({"X-App-Key": "app_nope"}, f"{images}/photo")
        calls["anonymous"] = lambda: send({"X-App-Key": app_key}, f"{images}/photo")
        calls["wrong-api-key"] = lambda: send(
            {"X-App-Key": app_key, "X-Api-Key": "cbg_nope"}, f"{images}/photo"
        )
        calls["empty-image"] = lambda: send(paid, "")
        calls["bad-base64"] = lambda: send(paid, "@@@@")
        calls["base64-not-image"] = lambda: send(paid, "aGVsbG8gd29ybGQ=")
        calls["bad-option"] = lambda: send(paid, f"{images}/photo", size="huge")
        calls["not-multipart"] = lambda: c.post("/api/v1/clearbg", json={"image": 1}, headers=paid)
        calls["two-images"] = lambda: c.post(
            "/api/v1/clearbg", files=[("image", ("a", b"x")), ("image", ("b", b"y"))], headers=paid
        )
        calls["26MB-file"] = lambda: c.post(
            "/api/v1/clearbg", files={"image": ("a.png", b"\0" * (26 << 20))}, headers=paid
        )
        calls["allowed-photo"] = lambda: send(paid, f"{images}/photo")
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda kv: via_httpx("gateway", kv[0], kv[1]), calls.items()))


def paid_race(srv: Server, app_key: str, key: str, photo: bytes) -> list[Answer]:
    """100 paid requests at once on a 30-credit key, half on each paid route."""

    def one(i: int) -> Answer:
        with httpx.Client(base_url=srv.url, timeout=300) as c:
            if i % 2:
                headers = {"X-App-Key": app_key, "X-Api-Key": key}
                return via_httpx(
                    "race",
                    "gateway",
                    lambda: c.post(
                        "/api/v1/clearbg", files={"image": ("a", photo)}, headers=headers
                    ),
                )
            return via_httpx(
                "race",
                "removebg",
                lambda: c.post(
                    "/v1/removebg", files={"image": ("a", photo)}, headers={"X-API-Key": key}
                ),
            )

    with ThreadPoolExecutor(100) as pool:
        return list(pool.map(one, range(100)))


def _admin(data_dir: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "clearbg.cli", "admin", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def report(answers: list[Answer], ledger: tuple[int, int, int], key: str, srv: Server) -> int:
    groups = sorted({a.group for a in answers}, key=[a.group for a in answers].index)
    print(f"{'group':12} {'sent':>5} {'2xx':>5} {'3xx':>5} {'4xx':>5} {'5xx':>5} {'none':>5}")
    for g in [*groups, "all"]:
        mine = [a for a in answers if g in ("all", a.group)]
        by = Counter("none" if a.status == 0 else f"{a.status // 100}xx" for a in mine)
        print(
            f"{g:12} {len(mine):5} {by['2xx']:5} {by['3xx']:5} {by['4xx']:5} {by['5xx']:5}"
            f" {by['none']:5}"
        )
    codes = Counter(f"{a.status} {a.code}" for a in answers if a.status >= 400)
    print("answers by status and code: " + ", ".join(f"{k} x{n}" for k, n in sorted(codes.items())))
    bad = [a for a in answers if a.status >= 500]
    plain = [a for a in answers if 400 <= a.status < 500 and not a.code]
    none = [a for a in answers if a.status == 0]
    print(
        f"5xx: {len(bad)}", *(f"  {a.group} {a.name}: {a.status} {a.code}" for a in bad), sep="\n"
    )
    print(
        f"4xx not problem+json: {len(plain)}",
        *(f"  {a.group} {a.name}: {a.status} {a.content_type}" for a in plain),
        sep="\n",
    )
    print(f"no answer: {len(none)}", *(f"  {a.group} {a.name}: {a.note}" for a in none), sep="\n")
    taken = [a for a in answers if 200 <= a.status < 300 and a.group != "race"]
    print(f"accepted: {len(taken)}", *(f"  {a.group} {a.name}" for a in taken), sep="\n")
    longest = max(answers, key=lambda a: a.detail_len)
    print(f"longest error detail: {longest.detail_len} chars ({longest.group} {longest.name})")
    race = [a for a in answers if a.group == "race"]
    delivered = sum(a.status == 200 for a in race)
    charges, refunds, net = ledger
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": key}) as c:
        balance = c.get("/v1/account").json()["credits"]
    print(
        f"paid race on 30 credits: {delivered} images delivered, "
        f"{Counter(a.status for a in race)}; balance {balance:g}, spent {30 - balance:g}; ledger "
        f"{charges} charges, {refunds} refunds, net {net / 100:g} credits"
    )
    ok = not bad and not plain and delivered == 30 - balance == -net / 100 and refunds == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    photo = (args.data / "photos" / "car-1.jpg").read_bytes()
    images_server = http.server.ThreadingHTTPServer((ALLOWED, 0), _Images)
    _Images.photo = photo
    images = f"http://{ALLOWED}:{images_server.server_address[1]}"
    threading.Thread(target=images_server.serve_forever, daemon=True).start()
    per_ip = 8
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        srv = start(
            "u2netp",
            data_dir,
            CLEARBG_ENGINE__COMBINE="false",
            CLEARBG_SERVER__BODY_TIMEOUT="2",
            CLEARBG_SERVER__HEADER_TIMEOUT="2",
            CLEARBG_SERVER__UPLOADS_PER_IP=str(per_ip),
            CLEARBG_SERVER__QUEUE_LIMIT="128",
            CLEARBG_GATEWAY__IP_PER_MINUTE="0",
            CLEARBG_GATEWAY__KEY_PER_MINUTE="0",
            CLEARBG_GATEWAY__READ_TIMEOUT="2",
            CLEARBG_GATEWAY__FETCH_ALLOW=f'["{ALLOWED}/32"]',
        )
        try:
            port = int(srv.url.rsplit(":", 1)[1])
            log = (data_dir / "serve.log").read_text()
            app_key = re.search(r"X-App-Key \(for /api/v1/clearbg\) is (\S+)", log).group(1)
            started = time.monotonic()
            answers = protocol_cases(port, srv.key)
            answers += stalled_flood(port, per_ip)
            answers += removebg_cases(srv, port, srv.key, photo)
            answers += gateway_cases(srv, app_key, srv.key, images)
            made = _admin(data_dir, "keys", "create", "default", "--credits", "30")
            race_key = made.strip().splitlines()[-1]
            prefix = made.split()[1]
            answers += paid_race(srv, app_key, race_key, photo)
            with sqlite3.connect(data_dir / "clearbg.db") as db:
                rows = db.execute(
                    "SELECT reason, amount_cents FROM credit_ledger JOIN api_keys "
                    "ON api_keys.id = credit_ledger.api_key_id WHERE api_keys.prefix = ?",
                    (prefix,),
                ).fetchall()
            ledger = (
                sum(r == "charge" for r, _ in rows),
                sum(r == "refund" for r, _ in rows),
                sum(a for r, a in rows if r != "topup"),
            )
            print(f"{len(answers)} requests in {time.monotonic() - started:.0f} s\n")
            return report(answers, ledger, race_key, srv)
        finally:
            srv.stop()
            images_server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
