"""The console end to end: real `clearbg serve`, real Chromium, real clicks."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from clearbg.store.db import make_engine
from clearbg.store.models import ApiKey, Application
from tests.conftest import PHOTOS
from tests.console.conftest import PASSWORD, Serve, shot, sign_in

pytestmark = pytest.mark.slow  # each test drives Chromium against a `clearbg serve`


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Application").get_by_role("link", name=name).click()


def test_admin_creates_app_and_key_runs_playground_sees_usage_and_revokes(
    serve: Serve, page: Page
) -> None:
    admin = serve.user(f"{_name('admin')}@example.com", role="admin")
    page.goto(serve.url + "/console/apps")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    shot(page, "01-sign-in")
    sign_in(page, serve, admin)
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()

    # create an application
    app_name = _name("Shop")
    page.get_by_label("Name").fill(app_name)
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", name=app_name)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("application was created")
    app_key = page.get_by_label("Application key").input_value()
    assert app_key.startswith("app_")

    # create a key with credits: the secret is shown once
    page.get_by_label("Label").fill("playground key")
    page.get_by_label("Credits", exact=True).fill("3")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("New API key").input_value()
    assert re.fullmatch(r"cbg_\w{8}_\w{32}", secret)
    shot(page, "02-application-new-key")
    page.goto(page.url)  # the same address again: the application, with only the prefix
    expect(page.get_by_label("New API key")).to_have_count(0)
    assert secret not in page.content()
    expect(page.get_by_role("cell", name=secret[:12], exact=True)).to_be_visible()
    # an admin tops the key up: 3 + 2 credits
    page.get_by_label(f"Credits to add to {secret[:12]}").fill("2")
    page.get_by_role("button", name="Top up").click()
    expect(page.get_by_role("status")).to_contain_text("credits were added")
    expect(page.get_by_role("row").filter(has_text=secret[:12])).to_contain_text("5")

    # the playground: a real photo through POST /api/v1/clearbg, then download the PNG
    _tab(page, "Playground")
    page.get_by_label("Photo").set_input_files(str(PHOTOS / "animal-1.jpg"))
    page.get_by_label("Size").select_option("preview")
    page.get_by_label("Charge it to").select_option(secret[:12])  # signed by the server
    page.get_by_role("button", name="Remove background").click()
    expect(page.locator("#pg-status")).to_contain_text("Done", timeout=60_000)
    expect(page.locator("#pg-status")).to_contain_text("1 credit charged")  # the app's cost
    page.get_by_label("Before / after").fill("30")
    shot(page, "03-playground")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the result").click()
    path = download.value.path()
    assert download.value.suggested_filename == "cutout.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGBA"
        assert im.width * im.height <= 300_000  # preview size
        alpha = im.getchannel("A")
        lo, hi = alpha.getextrema()
        assert lo == 0 and hi == 255  # a transparent background around an opaque subject

    # that request in usage: one 200 on this key, the credits it cost
    _tab(page, "Usage")
    by_key = page.get_by_role("table", name=re.compile("by key"))
    row = by_key.get_by_role("row").filter(has_text=secret[:12])
    for _ in range(50):  # usage is committed just after each answer: reload until it shows
        if row.count():
            break
        page.wait_for_timeout(100)
        page.reload()
    expect(row).to_contain_text("200: 1")
    expect(row.get_by_role("cell").nth(3)).to_have_text("1")  # credits
    expect(page.locator("svg.chart")).to_have_count(2)
    shot(page, "04-usage")

    _tab(page, "API")
    expect(page.locator("#gw-curl")).to_contain_text(f"X-App-Key: {app_key}")
    expect(page.locator("#gw-python")).to_contain_text("INSERT_YOUR_USER_API_KEY")
    expect(page.locator("#ai-node")).to_contain_text("/v1/removebg")
    shot(page, "05-api")

    # revoke the key: an API call with it answers 401
    _tab(page, "Overview")
    with httpx.Client(base_url=serve.url, timeout=60) as client:
        headers = {"X-App-Key": app_key, "X-Api-Key": secret}
        photo = (PHOTOS / "car-1.jpg").read_bytes()
        files = {"image": ("car.jpg", photo), "size": (None, "preview")}
        assert client.post("/api/v1/clearbg", headers=headers, files=files).status_code == 200
        page.locator("summary", has_text=secret[:12]).click()  # Manage
        page.get_by_role("button", name=f"Revoke key {secret[:12]}").click()
        expect(page.get_by_role("status")).to_contain_text("revoked")
        expect(page.get_by_role("row").filter(has_text=secret[:12])).to_contain_text("revoked")
        refused = client.post("/api/v1/clearbg", headers=headers, files=files)
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_api_key"
        assert (
            client.post("/v1/removebg", headers={"X-API-Key": secret}, files=files).status_code
            == 401
        )
    shot(page, "06-application-revoked")


def test_member_sees_only_the_applications_they_belong_to(serve: Serve, browser: Browser) -> None:
    mine, theirs = _name("alpha"), _name("beta")
    serve.cli("apps", "create", mine)
    serve.cli("apps", "create", theirs)
    alice = serve.user(f"{_name('alice')}@example.com", app=mine)
    serve.user(f"{_name('bob')}@example.com", app=theirs)
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, serve, alice)
    expect(page.get_by_role("link", name=mine)).to_be_visible()
    expect(page.get_by_role("link", name=theirs)).to_have_count(0)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)  # admins only
    shot(page, "07-member-applications")
    page.get_by_role("link", name=mine).click()
    own_url = page.url
    # a member may make keys (without credits) but not change the gateway settings
    expect(page.get_by_role("button", name="Save settings")).to_be_disabled()
    expect(page.get_by_label("Credits", exact=True)).to_have_count(0)
    page.get_by_label("Label").fill("alice's key")
    page.get_by_role("button", name="Create key").click()
    assert page.get_by_label("New API key").input_value().startswith("cbg_")
    token = page.locator("input[name=csrf_token]").first.input_value()
    forged = page.request.post(
        own_url + "/keys", form={"csrf_token": token, "label": "rich", "credits": "100"}
    )
    assert forged.status == 403  # giving credits is for admins
    # the application's starting credits go to a member's first key only: more keys mint none
    again = page.request.post(own_url + "/keys", form={"csrf_token": token, "label": "second"})
    assert again.ok
    with Session(make_engine(f"sqlite:///{serve.data_dir / 'clearbg.db'}")) as db:
        app_id = select(Application.id).where(Application.name == mine).scalar_subquery()
        made = db.scalars(select(ApiKey).where(ApiKey.application_id == app_id))
        balances = {k.label: k.balance_cents for k in made}
    assert balances == {"alice's key": 1000, "second": 0}
    forged = page.request.post(
        own_url + "/settings", form={"csrf_token": token, "name": "renamed", "upstream": "none"}
    )
    assert forged.status == 403
    page.goto(own_url)
    other_id = int(re.findall(r"\d+", own_url)[-1]) + 1  # `theirs` was created right after
    response = page.goto(f"{serve.url}/console/apps/{other_id}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    for sub in ("usage", "api", "playground"):
        response = page.goto(f"{serve.url}/console/apps/{other_id}/{sub}")
        assert response is not None and response.status == 404
    assert theirs not in page.content()
    shot(page, "08-member-not-found")
    # the admin-only pages and actions answer 403
    response = page.goto(serve.url + "/console/users")
    assert response is not None and response.status == 403
    context.close()


def test_forms_without_their_csrf_token_are_refused(serve: Serve, page: Page) -> None:
    admin = serve.user(f"{_name('root')}@example.com", role="admin")
    sign_in(page, serve, admin)
    name = _name("forged")
    for token in (None, "0" * 64):
        form = {"name": name} | ({"csrf_token": token} if token else {})
        answer = page.request.post(serve.url + "/console/apps", form=form, max_redirects=0)
        assert answer.status == 403
        assert "security token" in answer.text()
    page.goto(serve.url + "/console/apps")
    expect(page.get_by_role("link", name=name)).to_have_count(0)
    # the token of one session is no good in another
    token = page.locator("input[name=csrf_token]").first.input_value()
    with httpx.Client(base_url=serve.url) as other:
        answer = other.post("/console/apps", data={"name": name, "csrf_token": token})
        assert answer.status_code == 303 and "/console/login" in answer.headers["location"]
    # sign-in itself needs the token of its form
    with httpx.Client(base_url=serve.url) as anonymous:
        answer = anonymous.post("/console/login", data={"email": admin, "password": PASSWORD})
        assert answer.status_code == 403
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/console/login"))
    assert page.goto(serve.url + "/console/apps") is not None
    expect(page).to_have_url(re.compile(r"/console/login\?next="))


def test_pages_fit_a_phone_have_labelled_fields_and_work_by_keyboard(
    serve: Serve, browser: Browser
) -> None:
    admin = serve.user(f"{_name('phone')}@example.com", role="admin")
    serve.cli("apps", "create", _name("mobile"))
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(serve.url + "/console/login")
    # by keyboard only: the email field has focus, Tab to the password, Enter submits
    expect(page.get_by_label("Email")).to_be_focused()  # autofocus lands after the load
    page.keyboard.type(admin)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/apps")
    page.get_by_role("link", name=re.compile("^mobile-")).first.click()
    app_url = page.url
    for sub, name in (
        ("", "phone-app"),
        ("/usage", "phone-usage"),
        ("/api", "phone-api"),
        ("/playground", "phone-playground"),
        ("/../../users", "phone-users"),
        ("/../../account", "phone-account"),
    ):
        page.goto(app_url + sub)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{page.url} is {overflow}px wider than a phone"
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
               .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
               .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], f"{page.url}: fields without a label: {unlabelled}"
        if name:
            shot(page, name)
    context.close()


def test_a_user_changes_their_password_and_their_other_sessions_end(
    serve: Serve, browser: Browser
) -> None:
    email = serve.user(f"{_name('pw')}@example.com")
    here, there = browser.new_context(), browser.new_context()
    page, other = here.new_page(), there.new_page()
    sign_in(page, serve, email)
    sign_in(other, serve, email)
    page.get_by_role("link", name=re.compile(re.escape(email))).click()
    page.wait_for_url("**/console/account")

    def change(current: str, new: str, again: str) -> None:
        page.get_by_label("Current password").fill(current)
        page.get_by_label("New password (8 characters or more)").fill(new)
        page.get_by_label("New password again").fill(again)
        page.get_by_role("button", name="Change password").click()

    change("not it", "a new password", "a new password")
    expect(page.get_by_role("alert")).to_contain_text("current password is wrong")
    change(PASSWORD, "a new password", "another new one")
    expect(page.get_by_role("alert")).to_contain_text("differ")
    change(PASSWORD, "a new password", "a new password")
    expect(page.get_by_role("status")).to_contain_text("password was changed")
    shot(page, "account")

    page.goto(serve.url + "/console/apps")  # this session goes on
    expect(page).to_have_url(re.compile(r"/console/apps$"))
    other.goto(serve.url + "/console/apps")  # the other one has ended
    expect(other).to_have_url(re.compile(r"/console/login"))
    sign_in(other, serve, email, "a new password")
    here.close()
    there.close()


def test_a_wrong_password_is_refused_and_sign_in_attempts_are_throttled(
    own_serve: Serve, page: Page
) -> None:
    serve = own_serve  # it spends this IP's sign-in attempts: not on the others' server
    email = serve.user(f"{_name('slow')}@example.com")
    page.goto(serve.url + "/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong email or password")
    statuses = []
    for _ in range(40):
        token = page.locator("input[name=csrf_token]").input_value()
        answer = page.request.post(
            serve.url + "/console/login",
            form={"csrf_token": token, "email": email, "password": "guess"},
            max_redirects=0,
        )
        statuses.append(answer.status)
        if answer.status == 429:
            assert int(answer.headers["retry-after"]) >= 1
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}
    # the throttle also holds for the right password until the minute is over
    answer = page.request.post(
        serve.url + "/console/login",
        form={"csrf_token": token, "email": email, "password": PASSWORD},
        max_redirects=0,
    )
    assert answer.status == 429
