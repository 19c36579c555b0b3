"""A real `clearbg serve` (a subprocess on 127.0.0.1 with its own data folder and the u2netp
model), users made with `clearbg admin users create`, and Debian's Chromium driven by Playwright.
Every test saves screenshots of the pages it visits into build/screenshots/ (a test run leaves
the checkout as it was); `make screenshots` copies each page at both widths to the committed
tests/screenshots/."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.api.conftest import free_port, wait_ready

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
SHOT_HEIGHT = 2400
WIDTHS = ((390, 844), (1366, 768))
# the visible form controls whose right edge passes their card's (name, by how many px)
SPILLED = """[...document.querySelectorAll('.card input, .card select, .card button')]
  .filter(e => e.offsetParent !== null && e.type !== 'hidden')
  .map(e => [e.name || e.id || e.textContent.trim(),
             e.getBoundingClientRect().right - e.closest('.card').getBoundingClientRect().right])
  .filter(([, d]) => d > 0.5)"""
PASSWORD = "correct horse battery"
# the flags a closed network needs (no background connections that would be refused)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Serve:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str, stdin: str = "") -> str:
        out = subprocess.run(
            [sys.executable, "-m", "clearbg.cli", "admin", "--data-dir", str(self.data_dir), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
            env=_env(self.data_dir),
        )
        return out.stdout

    def user(self, email: str, role: str = "member", app: str | None = None) -> str:
        extra = ["--app", app] if app else []
        self.cli(
            "users",
            "create",
            email,
            "--role",
            role,
            "--password-stdin",
            *extra,
            stdin=PASSWORD + "\n",
        )
        return email


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CLEARBG_SERVER__DATA_DIR": str(data_dir),
        "CLEARBG_ENGINE__DEFAULT_MODEL": "u2netp",
        "CLEARBG_JOBS__CONSUMER": "false",
        "COLUMNS": "200",  # `clearbg admin usage` prints its whole table, uncut
        **extra,
    }


@contextlib.contextmanager
def running_serve(folder: Path, **extra: str) -> Iterator[Serve]:
    """`clearbg serve` on a free port with its data in ``folder``/data, stopped on exit;
    ``extra``: more environment (settings)."""
    data_dir = folder / "data"
    port = free_port()
    env = _env(
        data_dir,
        CLEARBG_SERVER__PORT=str(port),
        CLEARBG_CONSOLE__SIGN_IN_PER_MINUTE="30",
        CLEARBG_GATEWAY__IP_PER_MINUTE="0",
        **extra,
    )
    url = f"http://127.0.0.1:{port}"
    with (folder / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clearbg.cli", "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_ready(url, 60, alive=lambda: proc.poll() is None)
        except (RuntimeError, AssertionError):
            proc.kill()
            proc.wait()
            raise RuntimeError((folder / "serve.log").read_text()) from None
        try:
            yield Serve(url, data_dir, proc)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="package")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """One server for the package, for speed: each test makes its own users and applications
    (unique names). A test that spends the sign-in throttle uses ``own_serve``."""
    with running_serve(tmp_path_factory.mktemp("console")) as srv:
        yield srv


@pytest.fixture
def own_serve(tmp_path: Path) -> Iterator[Serve]:
    """A server of this test's own, for a test that spends what the others need."""
    with running_serve(tmp_path) as srv:
        yield srv


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()


def shot(page: Page, name: str, full: bool = True) -> None:
    """A screenshot in SHOTS, kept small (the pages at both widths are committed): at most
    SHOT_HEIGHT px tall, 256 colours."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(full_page=full)
    with Image.open(io.BytesIO(png)) as im:
        top = im.crop((0, 0, im.width, min(im.height, SHOT_HEIGHT))).convert("RGB")
    top.quantize(256).save(SHOTS / f"{name}.png", optimize=True)


def shot_widths(page: Page, name: str) -> None:
    """The page at a phone's width and a laptop's: no essential control may need a
    horizontal scroll (the page is no wider than the window), then a screenshot of each."""
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{page.url} is {overflow}px wider than {width}px"
        spilled = page.evaluate(SPILLED)
        assert spilled == [], f"{page.url} at {width}px: controls past their card: {spilled}"
        shot(page, f"{name}-{width}")


def sign_in(page: Page, serve: Serve, email: str, password: str = PASSWORD) -> None:
    page.goto(serve.url + "/console/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/apps")
