"""The console as a team uses it (issue 25), end to end: real `clearbg serve`, real Chromium.

The playground signs its call on the server with a key picked from a list; keys are renamed,
rotated (the old secret lasts the grace period chosen) and revoked, with full prefixes and a
credit history from the ledger; bulk jobs are followed, opened and cancelled; users are
deactivated (their sessions end at once) and reactivated; every change is in the audit log.
Usage, `clearbg admin usage`, /v1/account and the ledger agree after bulk and single calls.
Each page is checked and saved at 390 px and 1366 px (`make screenshots` commits them)."""

from __future__ import annotations

import io
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from clearbg.accounts import ledger
from clearbg.store.db import make_engine, sessions
from clearbg.store.models import ApiKey
from tests.conftest import PHOTOS
from tests.console.conftest import PASSWORD, Serve, running_serve, shot_widths, sign_in

pytestmark = pytest.mark.slow  # each test drives Chromium against a `clearbg serve`

NOT_AN_IMAGE = b"x"  # past every check of the caller, then refused cheaply (400 not_an_image)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Application").get_by_role("link", name=name).click()


@pytest.fixture(scope="module")
def worker_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """A server whose job consumer runs, for the tests that need bulk jobs done."""
    with running_serve(tmp_path_factory.mktemp("team"), CLEARBG_JOBS__CONSUMER="true") as srv:
        yield srv


def _gateway_status(serve: Serve, app_key: str, secret: str) -> int:
    """What the gateway answers this secret: 400 (not an image) once the key is accepted."""
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        return client.post(
            "/api/v1/clearbg",
            headers={"X-App-Key": app_key, "X-Api-Key": secret},
            files={"image": ("x.jpg", NOT_AN_IMAGE)},
        ).status_code


def _new_key(page: Page, label: str, amount: str | None = None) -> str:
    page.get_by_label("Label").fill(label)
    if amount is not None:
        page.get_by_label("Credits", exact=True).fill(amount)
    page.get_by_role("button", name="Create key").click()
    return page.get_by_label("New API key").input_value()


def _playground_run(page: Page, prefix: str) -> None:
    page.get_by_label("Photo").set_input_files(str(PHOTOS / "animal-1.jpg"))
    page.get_by_label("Size").select_option("preview")
    page.get_by_label("Charge it to").select_option(prefix)
    page.get_by_role("button", name="Remove background").click()


def test_playground_signs_for_the_user_and_keys_are_renamed_rotated_and_audited(
    serve: Serve, page: Page
) -> None:
    admin = serve.user(f"{_name('lead')}@example.com", role="admin")
    sign_in(page, serve, admin)
    shot_widths(page, "apps")
    app_name = _name("Team")
    page.get_by_label("Name").fill(app_name)
    page.get_by_role("button", name="Create application").click()
    app_url = page.url.split("?")[0]
    app_key = page.get_by_label("Application key").input_value()
    # keys made in the console start with the application's starting credits (10)
    expect(page.get_by_label("Starting credits of a key made in the console")).to_have_value("10")
    secret = _new_key(page, "web shop")
    prefix = secret[:12]
    row = page.get_by_role("row").filter(has_text=prefix)
    expect(row).to_contain_text("10")
    # the whole prefix is shown, not cut: it is what `clearbg admin credits` takes
    cell = row.get_by_role("cell").first
    expect(cell).to_have_text(prefix)
    assert cell.locator("code").evaluate("e => e.scrollWidth <= e.clientWidth")

    # the playground: pick the key, the server signs; no secret on the page
    _tab(page, "Playground")
    assert secret not in page.content()
    _playground_run(page, prefix)
    expect(page.locator("#pg-status")).to_contain_text("Done", timeout=90_000)
    expect(page.locator("#pg-status")).to_contain_text("1 credit charged")
    shot_widths(page, "playground")

    # a key without credits: said before the call, and the call's answer says what to do
    _tab(page, "Overview")
    empty = _new_key(page, "empty", "0")[:12]
    _tab(page, "Playground")
    page.get_by_label("Charge it to").select_option(empty)
    expect(page.locator("#pg-empty")).to_be_visible()
    expect(page.locator("#pg-empty")).to_contain_text("no credits left")
    _playground_run(page, empty)
    expect(page.locator("#pg-status")).to_contain_text("Error 403", timeout=60_000)
    expect(page.locator("#pg-status")).to_contain_text("top it up")
    # anonymous calls are offered only where the application takes them
    expect(page.get_by_role("option", name=re.compile("^anonymous"))).to_be_disabled()

    # rename, then rotate with a grace period: both secrets work, then only the newest
    _tab(page, "Overview")
    page.locator("summary", has_text=prefix).click()
    page.get_by_label(f"Rename {prefix} to").fill("web shop (prod)")
    page.get_by_role("button", name="Rename").first.click()
    expect(page.get_by_role("status")).to_contain_text("renamed")
    expect(page.get_by_role("row").filter(has_text=prefix)).to_contain_text("web shop (prod)")
    page.locator("summary", has_text=prefix).click()
    page.locator(f"#grace-{prefix}").select_option("1")
    page.get_by_role("button", name=f"Rotate key {prefix}").click()
    rotated = page.get_by_label("New API key").input_value()
    assert rotated != secret and rotated.startswith(prefix)
    expect(page.get_by_role("row").filter(has_text=prefix)).to_contain_text("old secret valid")
    shot_widths(page, "application")
    assert _gateway_status(serve, app_key, secret) == 400  # in its grace hour
    assert _gateway_status(serve, app_key, rotated) == 400
    page.goto(app_url)
    page.locator("summary", has_text=prefix).click()
    page.locator(f"#grace-{prefix}").select_option("0")
    page.get_by_role("button", name=f"Rotate key {prefix}").click()
    newest = page.get_by_label("New API key").input_value()
    assert _gateway_status(serve, app_key, secret) == 401
    assert _gateway_status(serve, app_key, rotated) == 401
    assert _gateway_status(serve, app_key, newest) == 400

    # the key's credit history: the starting credits, then the playground's charge
    page.goto(app_url)
    page.get_by_role("link", name=prefix, exact=True).click()
    history = page.get_by_role("table", name=re.compile("Credit history"))
    expect(history.get_by_role("row").filter(has_text="initial credits")).to_contain_text("+10")
    charge = history.get_by_role("row").filter(has_text="charge")
    expect(charge).to_contain_text("-1")
    expect(charge).to_contain_text(re.compile(r"request [0-9a-f]{32}"))
    shot_widths(page, "key-history")

    # the audit log: who did what
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    log = page.get_by_role("table", name=re.compile("Who did what"))
    for did, to in (
        ("made an application", app_name),
        ("made a key", prefix),
        ("renamed a key", prefix),
        ("rotated a key", prefix),
    ):
        expect(
            log.get_by_role("row").filter(has_text=did).filter(has_text=to).first
        ).to_contain_text(admin)
    expect(log.get_by_role("row").filter(has_text="rotated a key")).to_have_count(2)
    # one application's events, then all again
    page.get_by_label("Application").select_option(label=app_name)
    page.get_by_role("button", name="Show").click()
    expect(log.get_by_role("row").filter(has_text="rotated a key")).to_have_count(2)
    assert all(app_name in r for r in log.get_by_role("row").all_inner_texts()[1:])
    shot_widths(page, "audit-log")
    page.get_by_label("Application").select_option("")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    for path, name in (("/console/account", "account"), (app_url + "/api", "api")):
        page.goto(serve.url + path if path.startswith("/") else path)
        shot_widths(page, name)


def test_a_deactivated_user_is_signed_out_at_once_until_reactivated(
    serve: Serve, page: Page, browser: Browser
) -> None:
    admin = serve.user(f"{_name('boss')}@example.com", role="admin")
    member = serve.user(f"{_name('temp')}@example.com")
    theirs = browser.new_context()
    other = theirs.new_page()
    sign_in(other, serve, member)
    sign_in(page, serve, admin)
    page.goto(serve.url + "/console/users")
    page.get_by_role("button", name=f"Deactivate {member}").click()
    expect(page.get_by_role("status")).to_contain_text("deactivated")
    expect(page.get_by_role("row").filter(has_text=member)).to_contain_text("deactivated")
    expect(page.get_by_role("button", name=f"Deactivate {admin}")).to_have_count(0)  # not oneself
    shot_widths(page, "users")
    other.goto(serve.url + "/console/apps")  # the session ended at once
    expect(other).to_have_url(re.compile(r"/console/login"))
    other.get_by_label("Email").fill(member)
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    expect(other.get_by_role("alert")).to_contain_text("wrong email or password")
    shot_widths(other, "sign-in")
    page.get_by_role("button", name=f"Reactivate {member}").click()
    expect(page.get_by_role("status")).to_contain_text("reactivated")
    sign_in(other, serve, member)
    page.goto(serve.url + "/console/audit")
    log = page.get_by_role("table", name=re.compile("Who did what"))
    for did in ("deactivated a user", "reactivated a user"):
        expect(log.get_by_role("row").filter(has_text=did).filter(has_text=member)).to_contain_text(
            admin
        )
    theirs.close()


def _cli_usage_row(serve: Serve, app: str, prefix: str) -> tuple[int, float]:
    """Images and credits of the key in `clearbg admin usage` (one day of traffic)."""
    out = serve.cli("usage", "--app", app, "--days", "1")
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line)]
        if prefix in cells:
            head = ["day", "app", "key", "requests", "images", "errors", "p50", "p95", "credits"]
            values = dict(zip(head, [c for c in cells if c][: len(head)], strict=False))
            return int(values["images"]), float(values["credits"])
    raise AssertionError(f"no row of {prefix} in:\n{out}")


def test_usage_cli_account_and_the_ledger_agree_after_a_bulk_job_and_single_calls(
    worker_serve: Serve, page: Page
) -> None:
    serve = worker_serve
    admin = serve.user(f"{_name('ops')}@example.com", role="admin")
    app = _name("agree")
    serve.cli("apps", "create", app)
    secret = serve.cli("keys", "create", app, "--credits", "20").strip().splitlines()[-1]
    prefix = secret[:12]
    app_key = re.search(r"app_\w+", serve.cli("apps", "show", app))
    assert app_key is not None
    photo = (PHOTOS / "car-1.jpg").read_bytes()
    with httpx.Client(base_url=serve.url, timeout=120, headers={"X-API-Key": secret}) as api:
        # single calls: the AI API (0.25 a preview), the gateway (1), and a refused one (0)
        files = {"image": ("car.jpg", photo), "size": (None, "preview")}
        assert api.post("/v1/removebg", files=files).status_code == 200
        gateway = {"X-App-Key": app_key.group(), "X-Api-Key": secret}
        assert api.post("/api/v1/clearbg", headers=gateway, files=files).status_code == 200
        bad = {"image": ("x.jpg", NOT_AN_IMAGE)}
        assert api.post("/api/v1/clearbg", headers=gateway, files=bad).status_code == 400
        # a bulk job of two previews (0.25 each), polled until done: polls are not images
        job = api.post(
            "/v1/bulk",
            files=[("image", ("car.jpg", photo)), ("image", ("dog.jpg", photo))],
            data={"size": "preview"},
        )
        assert job.status_code == 202, job.text
        job_id = job.json()["job_id"]
        deadline = time.monotonic() + 180
        while (state := api.get(f"/v1/bulk/{job_id}").json())["status"] == "processing":
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert state["status"] == "completed" and state["done"] == 2

    # the playground's call is charged and counted like the others (1 credit)
    sign_in(page, serve, admin)
    page.get_by_role("link", name=app).click()
    app_url = page.url.split("?")[0]
    _tab(page, "Playground")
    _playground_run(page, prefix)
    expect(page.locator("#pg-status")).to_contain_text("Done", timeout=90_000)

    images, spent = 5, 0.25 + 1 + 0.25 * 2 + 1
    engine = make_engine(f"sqlite:///{serve.data_dir.resolve() / 'clearbg.db'}")
    with sessions(engine)() as db:
        key_id = db.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix))
        assert key_id is not None
        in_ledger = ledger.spent(db, [key_id])
    engine.dispose()
    assert in_ledger == ledger.Spent(images, spent)

    with httpx.Client(base_url=serve.url, timeout=30) as api:
        for _ in range(50):  # the playground's usage record is written just after its answer
            account = api.get("/v1/account", headers={"X-API-Key": secret}).json()
            if account["images"] == images:
                break
            time.sleep(0.1)
    assert (account["images"], account["credits_spent"]) == (images, spent)
    assert account["credits"] == 20 - spent
    assert _cli_usage_row(serve, app, prefix) == (images, spent)

    page.goto(app_url + "/usage")
    by_key = page.get_by_role("table", name=re.compile("by key")).get_by_role("row")
    row = by_key.filter(has_text=prefix)
    expect(row.get_by_role("cell").nth(3)).to_have_text(f"{spent:g}")  # credits
    expect(row.get_by_role("cell").nth(4)).to_have_text(str(images))
    p50 = float(row.get_by_role("cell").nth(5).inner_text())
    assert p50 >= 50, f"p50 {p50} ms: polls of the job must not count as image requests"
    expect(page.locator("#ledger-check")).to_contain_text(f"{images} images charged, {spent:g}")
    shot_widths(page, "usage")

    # the job in the console: status, progress, thumbnails, the archive
    _tab(page, "Bulk jobs")
    expect(page.get_by_role("row").filter(has_text=job_id)).to_contain_text("2 done of 2")
    shot_widths(page, "bulk-jobs")
    page.get_by_role("link", name=job_id).click()
    expect(page.locator("#job-status")).to_have_text("completed")
    thumbs = page.locator("ul.thumbs img")
    expect(thumbs).to_have_count(2)
    for i in range(2):
        thumbs.nth(i).scroll_into_view_if_needed()
        expect(thumbs.nth(i)).to_have_js_property("complete", True)
        assert thumbs.nth(i).evaluate("e => e.naturalWidth") > 0
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the archive (zip)").click()
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as zf:
        assert sorted(zf.namelist()) == ["00-car.png", "01-dog.png"]
    shot_widths(page, "bulk-job")


def test_a_job_still_queued_is_cancelled_from_the_console_and_costs_nothing(
    serve: Serve, page: Page
) -> None:
    # `serve` runs no job consumer: the job waits in the queue until cancelled
    admin = serve.user(f"{_name('cx')}@example.com", role="admin")
    app = _name("cancel")
    serve.cli("apps", "create", app)
    secret = serve.cli("keys", "create", app, "--credits", "5").strip().splitlines()[-1]
    with httpx.Client(base_url=serve.url, timeout=30, headers={"X-API-Key": secret}) as api:
        photo = (PHOTOS / "car-1.jpg").read_bytes()
        job_id = api.post("/v1/bulk", files=[("image", ("car.jpg", photo))]).json()["job_id"]
        sign_in(page, serve, admin)
        page.get_by_role("link", name=app).click()
        _tab(page, "Bulk jobs")
        page.get_by_role("link", name=job_id).click()
        expect(page.locator("#job-status")).to_have_text("processing")
        page.get_by_role("button", name="Cancel the job").click()
        expect(page.get_by_role("status")).to_contain_text("cancelled")
        expect(page.locator("#job-status")).to_have_text("cancelled")
        expect(page.get_by_role("button", name="Cancel the job")).to_have_count(0)
        assert api.get(f"/v1/bulk/{job_id}").json()["status"] == "cancelled"
        assert api.get("/v1/account").json()["credits"] == 5
