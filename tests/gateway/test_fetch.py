"""Image URLs are fetched without SSRF: private, loopback, link-local and metadata addresses are
refused (also behind a DNS name or a redirect), the download is capped and timed out."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from clearbg.engine import Engine
from clearbg.gateway.fetch import is_public_address, system_resolver
from tests.gateway.conftest import Gateway, start_gateway
from tests.gateway.test_clearbg import assert_cutout, assert_problem


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Gateway]:
    """A gateway with the default (empty) allow-list, one for the module: each test makes its
    own application."""
    gw, stop = start_gateway(tmp_path_factory.mktemp("strict"), api_engine)
    yield gw
    stop()  # type: ignore[operator]


@pytest.fixture
def app(gateway: Gateway, request: pytest.FixtureRequest) -> str:
    """An application of this test's own on the module's server: no other test sees its rows."""
    return gateway.make_app(f"fetching {request.node.name}", anon_daily_limit=1000)


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/img.png",
        "http://localhost:{port}/img.png",
        "http://[::1]:{port}/img.png",
        "http://[::ffff:127.0.0.1]:{port}/img.png",
        "http://2130706433:{port}/img.png",
        "http://10.0.0.1/img.png",
        "http://192.168.1.1/img.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://0.0.0.0:{port}/img.png",
        "https://100.100.100.200/latest/meta-data/",
    ],
)
def test_private_addresses_are_refused(strict: Gateway, image_host: str, target: str) -> None:
    app = strict.make_app(f"strict-{abs(hash(target))}", anon_daily_limit=10)
    key = strict.make_key(app, credits_=1)
    url = target.format(port=_port(image_host))
    assert_problem(strict.post(app, key, text=url), 400, "url_not_allowed")
    assert strict.server.balance(key) == 1


def test_the_allowed_url_works_only_with_the_allow_list(
    gateway: Gateway, strict: Gateway, app: str, image_host: str
) -> None:
    assert_cutout(gateway.post(app, text=image_host + "/img.png"))
    other = strict.make_app("strict-allow", anon_daily_limit=10)
    assert_problem(strict.post(other, text=image_host + "/img.png"), 400, "url_not_allowed")


def test_a_name_resolving_to_a_private_address_is_refused(gateway: Gateway, app: str) -> None:
    svc = gateway.server.services
    assert svc is not None
    answers = {"evil.test": ["93.184.215.14", "10.1.2.3"], "inside.test": ["192.168.0.7"]}
    svc.fetcher.resolver = lambda host: answers.get(host) or system_resolver(host)
    try:
        for name in answers:
            resp = gateway.post(app, text=f"http://{name}/img.png")
            assert_problem(resp, 400, "url_not_allowed")
    finally:
        svc.fetcher.resolver = system_resolver


def test_the_connection_goes_to_the_checked_address_with_the_name_kept(
    gateway: Gateway, app: str, image_host: str
) -> None:
    svc = gateway.server.services
    assert svc is not None
    calls: list[str] = []

    def resolver(host: str) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if host == "images.test" else system_resolver(host)

    svc.fetcher.resolver = resolver
    try:
        resp = gateway.post(app, text=f"http://images.test:{_port(image_host)}/img.png")
    finally:
        svc.fetcher.resolver = system_resolver
    assert_cutout(resp)
    assert calls == ["images.test"]  # resolved once, then connected to that address


def test_a_redirect_to_a_private_address_is_refused(
    gateway: Gateway, app: str, image_host: str
) -> None:
    for target in ("http://10.0.0.1/img.png", "http://169.254.169.254/", "file:///etc/passwd"):
        resp = gateway.post(app, text=f"{image_host}/redirect?to={quote(target)}")
        assert_problem(resp, 400, "url_not_allowed")
    ok = gateway.post(app, text=f"{image_host}/redirect?to={quote(image_host + '/img.png')}")
    assert_cutout(ok)


def test_more_than_five_redirects_are_refused(gateway: Gateway, app: str, image_host: str) -> None:
    def chain(n: int) -> str:
        url = image_host + "/img.png"
        for _ in range(n):
            url = f"{image_host}/redirect?to={quote(url, safe='')}"
        return url

    assert_cutout(gateway.post(app, text=chain(5)))
    assert_problem(gateway.post(app, text=chain(6)), 400, "url_fetch_failed")


def test_an_oversize_download_is_cut_off(gateway: Gateway, app: str, image_host: str) -> None:
    assert_problem(gateway.post(app, text=image_host + "/big"), 413, "payload_too_large")


def test_a_slow_server_times_out(gateway: Gateway, app: str, image_host: str) -> None:
    started = time.monotonic()
    resp = gateway.post(app, text=image_host + "/slow")
    assert_problem(resp, 400, "url_fetch_failed")
    assert time.monotonic() - started < 2.9  # read_timeout is 1 s in these tests


def test_a_page_that_is_no_image_and_a_404_are_400(
    gateway: Gateway, app: str, image_host: str
) -> None:
    assert_problem(gateway.post(app, text=image_host + "/page"), 400, "not_an_image")
    assert_problem(gateway.post(app, text=image_host + "/missing"), 400, "url_fetch_failed")


def test_a_refused_connection_is_400(gateway: Gateway, app: str) -> None:
    from tests.api.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/img.png"
    assert_problem(gateway.post(app, text=url), 400, "url_fetch_failed")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.20.30.40", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.215.14", True),
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::", False),
        ("fd00:ec2::254", False),
    ],
)
def test_address_classes(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public
