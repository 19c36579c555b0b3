"""/v1/bulk over real HTTP: jobs, results, archive, cancel, callbacks, and a server killed
with SIGKILL mid-job that finishes the job after a restart, each image charged once."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from clearbg.engine import Engine
from clearbg.jobs import bulk
from clearbg.store.db import make_engine, sessions
from clearbg.store.models import LedgerEntry
from tests.api.conftest import Server, free_port, start_server, wait_ready
from tests.conftest import PHOTOS
from tests.waiting import wait_for

CAR = (PHOTOS / "car-1.jpg").read_bytes()


def small_jpeg(width: int = 160) -> bytes:
    buf = io.BytesIO()
    im = Image.open(io.BytesIO(CAR))
    im.resize((width, width * im.height // im.width)).save(buf, "JPEG")
    return buf.getvalue()


def submit(c: httpx.Client, images: list[tuple[str, bytes]], **form: str) -> httpx.Response:
    return c.post("/v1/bulk", files=[("image", img) for img in images], data=form)


def wait_done(c: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def job() -> dict[str, Any]:
        resp = c.get(f"/v1/bulk/{job_id}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    return wait_for(
        job, lambda body: body["status"] != "processing", seconds=timeout, what=f"job {job_id}"
    )


@pytest.mark.slow
def test_a_bulk_job_processes_every_image_and_charges_the_delivered_ones(server: Server) -> None:
    key = server.make_key(credits_=10)
    with server.client(key) as c:
        resp = submit(
            c,
            [("a.jpg", small_jpeg()), ("notes.txt", b"not an image"), ("b.jpg", small_jpeg(200))],
            format="webp",
        )
        assert resp.status_code == 202
        head = resp.json()
        assert head["status"] == "processing" and head["image_count"] == 3
        assert head["job_id"].startswith("job_")
        job = wait_done(c, head["job_id"])
        assert job["status"] == "completed" and job["progress"] == 1.0
        states = [(i["filename"], i["status"], i["error_code"]) for i in job["images"]]
        assert states == [
            ("a.jpg", "done", None),
            ("notes.txt", "failed", "not_an_image"),
            ("b.jpg", "done", None),
        ]
        first = c.get(job["images"][0]["result_url"])
        assert first.headers["content-type"] == "image/webp"
        assert len(first.content) == job["images"][0]["size"]
        assert c.get(f"/v1/bulk/{head['job_id']}/images/1").status_code == 404
        archive = zipfile.ZipFile(io.BytesIO(c.get(f"/v1/bulk/{head['job_id']}/archive").content))
        assert archive.namelist() == ["00-a.webp", "02-b.webp"]
        assert c.get("/v1/account").json()["credits"] == 8


def test_image_count_limits(server: Server) -> None:
    with server.client(server.make_key()) as c:
        too_many = submit(c, [(f"{n}.jpg", b"x") for n in range(51)])
        assert too_many.status_code == 400 and too_many.json()["code"] == "invalid_option"
        none = c.post("/v1/bulk", data={"size": "preview"})
        assert none.status_code == 400


def test_another_keys_job_is_404(server: Server) -> None:
    with server.client(server.make_key()) as owner:
        job_id = submit(owner, [("a.jpg", small_jpeg())]).json()["job_id"]
        wait_done(owner, job_id)
    with server.client(server.make_key()) as stranger:
        for path in ("", "/images/0", "/archive"):
            resp = stranger.get(f"/v1/bulk/{job_id}{path}")
            assert resp.status_code == 404 and resp.json()["code"] == "not_found"
        assert stranger.delete(f"/v1/bulk/{job_id}").status_code == 404


def test_cancel_stops_the_job_and_unprocessed_images_are_not_charged(server: Server) -> None:
    key = server.make_key(credits_=50)
    with server.client(key) as c:
        job_id = submit(c, [(f"{n}.jpg", small_jpeg(640)) for n in range(12)]).json()["job_id"]
        cancelled = c.delete(f"/v1/bulk/{job_id}").json()
        assert cancelled["status"] == "cancelled"
        # the queue has one worker: a job queued now runs once the cancelled one has stopped,
        # so an image that was running has finished, undelivered or delivered, not both
        wait_done(c, submit(c, [("next.jpg", small_jpeg())]).json()["job_id"])
        job = c.get(f"/v1/bulk/{job_id}").json()
        done = sum(1 for i in job["images"] if i["status"] == "done")
        assert any(i["status"] == "cancelled" for i in job["images"])
        assert c.get("/v1/account").json()["credits"] == 50 - done - 1


def test_results_expire(server: Server) -> None:
    with server.client(server.make_key()) as c:
        job_id = submit(c, [("a.jpg", small_jpeg())]).json()["job_id"]
        wait_done(c, job_id)
        assert server.services is not None
        ctx = server.services.queue.ctx
        assert bulk.expire_jobs(ctx, now=datetime.now(UTC) + timedelta(days=2)) >= 1
        assert c.get(f"/v1/bulk/{job_id}").status_code == 404
        assert ctx.files.sizes(bulk.job_prefix(job_id)) == {}
        assert not (server.settings.results_dir / "jobs" / job_id).exists()


def test_expiry_runs_once_per_schedule_slot(server: Server) -> None:
    assert server.services is not None
    queue = server.services.queue
    slot = 10 * 60 * 10_000_000  # a slot far from now, so the running consumer never took it
    assert queue.expire_once(now=slot)
    assert not queue.expire_once(now=slot + 30)  # a second consumer, the same slot
    assert queue.expire_once(now=slot + 600)  # the next slot


class _Receiver(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012 (one receiver per test)
    fail_first = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        status = 500 if type(self).fail_first and len(type(self).calls) == 1 else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"calls": []})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", handler
    httpd.shutdown()
    httpd.server_close()


def test_callback_is_signed_and_retried(
    tmp_path: Path, api_engine: Engine, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    srv, stop = start_server(
        tmp_path,
        api_engine,
        jobs={"callback_secret": "s3cret"},
        gateway={"fetch_allow": ["127.0.0.1/32"]},  # the receiver is on this machine
    )
    try:
        with srv.client(srv.make_key()) as c:
            job_id = submit(c, [("a.jpg", small_jpeg())], callback_url=url).json()["job_id"]
            wait_done(c, job_id)
            wait_for(lambda: len(handler.calls) >= 2, seconds=30, what="the callback again")
    finally:
        stop()
    assert len(handler.calls) == 2  # the first answer was 500: delivered again with back-off
    headers, body = handler.calls[-1]
    payload = json.loads(body)
    assert payload == {
        "job_id": job_id,
        "status": "completed",
        "image_count": 1,
        "succeeded": 1,
        "failed": 0,
    }
    stamp = headers["X-ClearBG-Timestamp"]
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-ClearBG-Signature"] == f"sha256={expected}"


def _serve(data_dir: Path, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLEARBG_ENGINE__DEFAULT_MODEL": "u2netp",
        "CLEARBG_SERVER__DATA_DIR": str(data_dir),
        "CLEARBG_SERVER__PORT": str(port),
        "CLEARBG_LIMITS__PER_MINUTE": "100000",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "clearbg.cli", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_a_job_survives_sigkill_and_each_image_is_charged_once(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        job_id, balance = _kill_and_restart(data_dir, port, url, log, out)
    factory = sessions(make_engine(f"sqlite:///{(data_dir / 'clearbg.db').resolve()}"))
    with factory() as db:
        refs = db.scalars(select(LedgerEntry.reference).where(LedgerEntry.reason == "charge")).all()
        total = db.scalar(select(func.sum(LedgerEntry.amount_cents)))
    count = 10
    assert sorted(refs) == sorted(f"job:{job_id}:{n}" for n in range(count))
    assert balance == 50 - count and total == (50 - count) * 100


def _kill_and_restart(
    data_dir: Path, port: int, url: str, log: Path, out: IO[bytes]
) -> tuple[str, float]:
    proc = _serve(data_dir, port, out)
    try:
        wait_ready(url, 60, alive=lambda: proc.poll() is None)
        first_start = log.read_text()
        key = next(
            line.strip() for line in first_start.splitlines() if line.strip().startswith("cbg_")
        )
        count = 10
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as c:
            job_id = submit(c, [(f"{n}.jpg", small_jpeg(900)) for n in range(count)]).json()[
                "job_id"
            ]
            done = wait_for(
                lambda: [
                    i for i in c.get(f"/v1/bulk/{job_id}").json()["images"] if i["status"] == "done"
                ],
                seconds=120,
                what="a first image done",
            )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = _serve(data_dir, port, out)
        wait_ready(url, 60, alive=lambda: proc.poll() is None)
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as c:
            job = wait_done(c, job_id)
            assert len(done) < count, "the job was not interrupted"
            assert job["status"] == "completed"
            assert all(i["status"] == "done" for i in job["images"])
            balance = c.get("/v1/account").json()["credits"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return job_id, balance


def test_bulk_idempotency_key_creates_one_job(server: Server) -> None:
    key = server.make_key(credits_=5)
    with server.client(key) as c:
        images = [("a.jpg", small_jpeg())]
        headers = {"Idempotency-Key": "bulk-1"}
        first = c.post("/v1/bulk", files=[("image", i) for i in images], headers=headers)
        again = c.post("/v1/bulk", files=[("image", i) for i in images], headers=headers)
        assert first.status_code == again.status_code == 202
        assert first.json()["job_id"] == again.json()["job_id"]
        wait_done(c, first.json()["job_id"])
        assert c.get("/v1/account").json()["credits"] == 4
