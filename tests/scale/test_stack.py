"""Over real HTTP on the running stack (PostgreSQL, Redis, S3, two API processes, two workers):
exact credits, rate limits and bulk jobs across processes, results from S3, the gateway and
the console's sign-in."""

from __future__ import annotations

import io
import signal
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import redis

from tests.scale.conftest import new_app, new_key, small_jpeg
from tests.scale.stack import BUCKET, Stack


def _balance_and_ledger(stack: Stack, key: str) -> tuple[int, int, int]:
    """(balance, sum of the ledger's charges, number of usage records) of a key, in cents."""
    prefix = key.split("_")[1]
    with psycopg.connect(stack.dsn()) as conn:
        row = conn.execute(
            "SELECT k.id, k.balance_cents, "
            "(SELECT COALESCE(SUM(amount_cents), 0) FROM credit_ledger l "
            " WHERE l.api_key_id = k.id AND l.reason = 'charge') "
            "FROM api_keys k WHERE k.prefix LIKE %s",
            (f"%{prefix}%",),
        ).fetchone()
        assert row is not None
        usage = conn.execute(
            "SELECT COUNT(*) FROM usage_records WHERE api_key_id = %s AND status = 200", (row[0],)
        ).fetchone()
    return int(row[1]), int(row[2]), int(usage[0]) if usage else 0


def test_removebg_answers_a_cutout(stack: Stack, admin: httpx.Client) -> None:
    key = new_key(admin, new_app(admin), credits=2)
    answer = httpx.post(
        f"{stack.url}/v1/removebg",
        headers={"X-Api-Key": key},
        files={"image": ("a.jpg", small_jpeg(), "image/jpeg")},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"


def test_hundred_parallel_paid_requests_on_thirty_credits(
    stack: Stack, admin: httpx.Client
) -> None:
    key = new_key(admin, new_app(admin, rate_per_minute=1000), credits=30)
    photo = small_jpeg(size=64)

    def one(_: int) -> int:
        return httpx.post(
            f"{stack.url}/v1/removebg",
            headers={"X-Api-Key": key},
            files={"image": ("a.jpg", photo, "image/jpeg")},
            timeout=180,
        ).status_code

    with ThreadPoolExecutor(100) as pool:
        codes = list(pool.map(one, range(100)))
    assert codes.count(200) == 30, codes
    assert codes.count(402) == 70, codes
    time.sleep(1)  # usage records are written just after their answers
    balance, charged, usage = _balance_and_ledger(stack, key)
    assert balance == 0
    assert charged == -3000  # the ledger holds exactly the thirty charges
    assert usage == 30


def test_rate_limit_is_shared_by_the_processes(stack: Stack, admin: httpx.Client) -> None:
    key = new_key(admin, new_app(admin, rate_per_minute=20), credits=1)

    def one(_: int) -> int:
        return httpx.get(f"{stack.url}/v1/account", headers={"X-Api-Key": key}).status_code

    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(one, range(40)))
    assert codes.count(200) == 20, codes
    assert codes.count(429) == 20, codes


def _submit(stack: Stack, key: str, photos: int) -> str:
    files = [("image", (f"p{n}.jpg", small_jpeg(n), "image/jpeg")) for n in range(photos)]
    answer = httpx.post(f"{stack.url}/v1/bulk", headers={"X-Api-Key": key}, files=files, timeout=60)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


def _job(stack: Stack, key: str, job_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.url}/v1/bulk/{job_id}", headers={"X-Api-Key": key}, timeout=30)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def _wait(stack: Stack, key: str, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(stack, key, job_id)
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not finished: {job}")


def test_bulk_results_and_archive_come_from_s3(stack: Stack, admin: httpx.Client) -> None:
    key = new_key(admin, new_app(admin), credits=10)
    job_id = _submit(stack, key, 3)
    job = _wait(stack, key, job_id)
    assert job["status"] == "completed" and job["done"] == 3
    s3: Any = stack.s3_client()
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"clearbg/jobs/{job_id}/out/")
    assert len(listed.get("Contents", [])) == 3
    assert not (stack.root / "data" / "results" / "jobs").exists()  # nothing local
    image = httpx.get(
        f"{stack.url}/v1/bulk/{job_id}/images/1", headers={"X-Api-Key": key}, timeout=30
    )
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    archive = httpx.get(
        f"{stack.url}/v1/bulk/{job_id}/archive", headers={"X-Api-Key": key}, timeout=30
    )
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert sorted(zf.namelist()) == ["00-p0.png", "01-p1.png", "02-p2.png"]


def test_a_job_whose_worker_is_killed_completes_each_image_charged_once(
    stack: Stack, admin: httpx.Client
) -> None:
    key = new_key(admin, new_app(admin), credits=20)
    job_id = _submit(stack, key, 14)
    leases = redis.Redis(port=stack.redis_port, db=0)
    deadline = time.monotonic() + 120
    holder = None
    while time.monotonic() < deadline:
        lease = leases.get(f"clearbg.lease.{job_id}")
        if lease and lease.startswith(b"running ") and _job(stack, key, job_id)["done"] >= 2:
            holder = int(lease.split(b":")[-1])
            break
        time.sleep(0.1)
    assert holder is not None, "no worker took the job"
    name = next(n for n, p in stack.procs.items() if p.pid == holder)
    stack.kill(name, signal.SIGKILL)
    assert _job(stack, key, job_id)["done"] < 14  # killed mid-job
    job = _wait(stack, key, job_id)
    again = stack.worker_metrics if name == "worker-1" else 0
    stack.start_worker(name, metrics_port=again)  # the stack has two workers again
    assert job["status"] == "completed"
    assert job["done"] == 14 and all(i["status"] == "done" for i in job["images"])
    with psycopg.connect(stack.dsn()) as conn:
        refs = [
            r[0]
            for r in conn.execute(
                "SELECT reference FROM credit_ledger WHERE reference LIKE %s", (f"job:{job_id}:%",)
            )
        ]
    assert sorted(refs) == sorted(f"job:{job_id}:{n}" for n in range(14))
    balance, charged, _ = _balance_and_ledger(stack, key)
    assert balance == 600 and charged == -1400


def test_gateway_answers_over_the_stack(stack: Stack, admin: httpx.Client) -> None:
    app = new_app(admin, gateway_enabled=True, upstream="local")
    key = new_key(admin, app, credits=2)
    answer = httpx.post(
        f"{stack.url}/api/v1/clearbg",
        headers={"X-App-Key": str(app["app_key"]), "X-Api-Key": key},
        files={"image": ("a.jpg", small_jpeg(), "image/jpeg")},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("image/")


def test_console_sign_in_over_the_stack(stack: Stack) -> None:
    email, password = "scale-admin@example.com", "a long scale password"
    made = stack.clearbg(
        "admin", "users", "create", email, "--role", "admin", "--password-stdin",
        input_text=password + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with httpx.Client(base_url=stack.url, timeout=30) as browser:
        form = browser.get("/console/login")
        token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = browser.post(
            "/console/login", data={"csrf_token": token, "email": email, "password": password}
        )
        assert answer.status_code == 303, answer.text
        assert browser.get("/console/apps").status_code == 200


def _count(text: str, line_start: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(line_start))


def test_metrics_sum_the_api_processes_and_workers_have_their_own(stack: Stack) -> None:
    route = 'clearbg_requests_total{route="/healthz",status="200"}'
    before = _count(httpx.get(f"{stack.url}/metrics").text, route)
    for _ in range(20):  # spread over both processes
        httpx.get(f"{stack.url}/healthz")
    assert _count(httpx.get(f"{stack.url}/metrics").text, route) == before + 20
    worker = httpx.get(f"http://127.0.0.1:{stack.worker_metrics}/metrics").text
    assert "clearbg_worker_queue_depth" in worker
    assert "clearbg_worker_images_total" in worker
