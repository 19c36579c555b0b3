"""Bulk jobs go through the paid-call service: their images show in usage like single calls,
their callback URL passes the same guard as an image URL, and a stored job keeps its options."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from clearbg.accounts import users
from clearbg.engine import Engine, Margin, RemoveOptions
from clearbg.jobs.bulk import stored_options
from clearbg.store.models import ApiKey, BulkJob, LedgerEntry
from tests.api.conftest import Server, start_server
from tests.api.test_bulk import _Receiver, receiver, small_jpeg, submit, wait_done


@pytest.mark.parametrize("host", ["127.0.0.2", "[::1]", "localhost"])
def test_a_callback_to_a_private_address_is_refused_at_submission(
    server: Server, host: str
) -> None:
    with server.client(server.make_key()) as c:
        resp = submit(c, [("a.jpg", small_jpeg())], callback_url=f"http://{host}:9/hook")
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "url_not_allowed"


def test_a_callback_is_checked_again_when_it_is_called(
    tmp_path: Path, api_engine: Engine, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    port = httpx.URL(url).port
    srv, stop = start_server(tmp_path, api_engine)
    assert srv.services is not None
    answers = iter([["93.184.215.14"]])  # public when submitted; loopback once it is called
    srv.services.fetcher.resolver = lambda host: next(answers, ["127.0.0.1"])
    try:
        with srv.client(srv.make_key()) as c:
            resp = submit(c, [("a.jpg", small_jpeg())], callback_url=f"http://localhost:{port}/")
            assert resp.status_code == 202, resp.text
            wait_done(c, resp.json()["job_id"])
        time.sleep(1.5)  # the callback task runs just after the job: give it time to (not) call
    finally:
        stop()
    assert handler.calls == []


def _console_credits(srv: Server, email: str, password: str) -> str:
    with httpx.Client(base_url=srv.url, follow_redirects=True) as web:
        form = web.get("/console/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf is not None
        signed = web.post(
            "/console/login",
            data={"email": email, "password": password, "csrf_token": csrf.group(1)},
        )
        assert signed.status_code == 200, signed.text[:300]
        page = web.get(f"/console/apps/{srv.app_id}/usage").text
    found = re.search(r"Credits spent</span><strong>([^<]+)<", page)
    assert found is not None, page[:500]
    return found.group(1)


def test_bulk_images_count_in_usage_like_the_ledger(tmp_path: Path, api_engine: Engine) -> None:
    srv, stop = start_server(tmp_path, api_engine)
    try:
        key = srv.make_key(credits_=20)
        with srv.client(key) as c:
            job = submit(c, [(f"{n}.jpg", small_jpeg(120 + n)) for n in range(3)]).json()
            assert wait_done(c, job["job_id"])["status"] == "completed"
            single = c.post("/v1/removebg", files={"image": ("s.jpg", small_jpeg())})
            assert single.status_code == 200
            account = c.get("/v1/account").json()
        with srv.db() as db, db.begin():
            key_id = db.scalar(select(ApiKey.id).where(ApiKey.prefix == key[:12]))
            spent = -int(
                db.scalar(
                    select(func.sum(LedgerEntry.amount_cents)).where(
                        LedgerEntry.api_key_id == key_id, LedgerEntry.reason != "topup"
                    )
                )
                or 0
            )
            users.create_user(db, "ops@example.com", "a long password", role="admin")
        assert spent == 400  # three bulk images and one single call, one credit each
        assert account["credits_spent"] == 4 and account["images"] == 4
        deadline = time.monotonic() + 10  # the single call's row is written after its answer
        shown = _console_credits(srv, "ops@example.com", "a long password")
        while shown != "4" and time.monotonic() < deadline:
            time.sleep(0.1)
            shown = _console_credits(srv, "ops@example.com", "a long password")
        assert shown == "4"
    finally:
        stop()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "clearbg.cli",
            "admin",
            "--data-dir",
            str(tmp_path / "data"),
            "usage",
            "--days",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    row = next(line for line in out.splitlines() if key[:12] in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[4] == "4" and cells[-1] == "4", row  # images, credits


def test_every_option_survives_a_round_trip_through_its_text() -> None:
    changed = RemoveOptions(
        model="isnet",  # the best pipeline's model
        pipeline="best",
        size="preview",
        format="jpg",
        bg_color=(16, 32, 48, 255),
        channels="alpha",
        crop=True,
        crop_margin=Margin(5, "%"),
        combine=False,
        refine=False,
        flip=True,
        foreground=False,
        quality=55,
    )
    default = RemoveOptions()
    same = [
        f.name
        for f in fields(RemoveOptions)
        if getattr(changed, f.name) == getattr(default, f.name)
    ]
    assert same == [], f"give {same} a value other than the default here"
    assert RemoveOptions.from_fields(changed.to_fields()) == changed


def test_a_stored_job_keeps_every_option(server: Server) -> None:
    form = {
        "size": "preview",
        "format": "jpg",
        "bg_color": "#102030",
        "crop": "true",
        "crop_margin": "5%",
        "combine": "false",
        "refine": "false",
        "flip": "true",
        "foreground": "false",
        "quality": "55",
    }
    with server.client(server.make_key()) as c:
        resp = submit(c, [("a.jpg", small_jpeg())], **form)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        wait_done(c, job_id)
    with server.db() as db:
        job = db.get(BulkJob, job_id)
        assert job is not None
        assert stored_options(job) == RemoveOptions.from_fields(form)


def test_bulk_images_share_the_engine_limit_with_single_requests(
    tmp_path: Path, api_engine: Engine
) -> None:
    # one photo in the engine, none waiting: while a bulk image runs, a single call is 503
    srv, stop = start_server(tmp_path, api_engine, server={"engine_slots": 1, "queue_limit": 0})
    try:
        with srv.client(srv.make_key(credits_=50)) as c:
            job = submit(c, [(f"{n}.jpg", small_jpeg(400)) for n in range(8)]).json()
            seen = set()
            while c.get(f"/v1/bulk/{job['job_id']}").json()["status"] == "processing":
                resp = c.post("/v1/removebg", files={"image": ("s.jpg", small_jpeg(64))})
                seen.add((resp.status_code, resp.json()["code"] if resp.status_code != 200 else ""))
    finally:
        stop()
    assert (503, "overloaded") in seen


__all__ = ["receiver"]  # the fixture, imported from test_bulk
