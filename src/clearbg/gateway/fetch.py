"""Fetching an image from a URL a caller sent, without becoming a proxy into our network (SSRF).

Only ``http`` and ``https``; every address the host name resolves to must be public (not
loopback, private, link-local, multicast, reserved, unspecified, shared or a cloud metadata
address, IPv4 and IPv6, IPv4-mapped/6to4/Teredo/NAT64 included), unless the allow-list names
the host or a network holding the address. The connection goes to the address that was checked
(the ``Host`` header and, for https, the SNI name and certificate check keep the name), so a
second DNS answer cannot redirect it (DNS rebinding). Each redirect is checked again, the size
cap holds while downloading and time-outs bound every step.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
import httpx

from clearbg.errors import PayloadTooLargeError, UrlFetchError, UrlNotAllowedError

__all__ = ["FetchPolicy", "Fetcher", "Resolver", "is_public_address", "system_resolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], list[str]]
"""A host name -> every address it resolves to (a parameter, so tests can lie about DNS)."""

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def system_resolver(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlFetchError(f"the host {host!r} cannot be resolved") from exc
    found: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in found:
            found.append(addr)
    return found


def is_public_address(ip: IPAddress) -> bool:
    """Whether a URL may reach ``ip`` (when the allow-list does not name it)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: IPAddress | None = ip.ipv4_mapped or ip.sixtofour
        if ip.teredo is not None:
            embedded = ip.teredo[1]
        if ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    if ip in METADATA or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED):
        return False
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class FetchPolicy:
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 60.0
    max_bytes: int = 25 * 1024 * 1024
    max_redirects: int = 5
    allow: Sequence[str] = field(default_factory=tuple)  # host names or CIDRs


class Fetcher:
    def __init__(self, policy: FetchPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver
        self.allow_hosts: set[str] = set()
        self.allow_nets: list[IPNetwork] = []
        for raw in policy.allow:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                self.allow_nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allow_hosts.add(entry.rstrip("."))

    async def fetch(self, url: str) -> bytes:
        """The body of ``url`` (2xx, after at most ``max_redirects`` checked redirects)."""
        try:
            with anyio.fail_after(self.policy.total_timeout):
                return await self._fetch(url)
        except TimeoutError as exc:
            raise UrlFetchError(
                f"fetching the image took more than {self.policy.total_timeout:g} s"
            ) from exc

    async def _fetch(self, url: str) -> bytes:
        p = self.policy
        timeout = httpx.Timeout(p.read_timeout, connect=p.connect_timeout)
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            for _ in range(p.max_redirects + 1):
                target = self._parse(url)
                ip = await self._checked_address(target.host)
                headers = {"Host": _host_header(target), "Accept": "image/*,*/*;q=0.5"}
                extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
                request = client.build_request(
                    "GET",
                    target.copy_with(host=str(ip)),
                    headers=headers,
                    extensions=extensions,
                )
                try:
                    response = await client.send(request, stream=True)
                except httpx.TimeoutException as exc:
                    raise UrlFetchError(f"{_safe(url)} timed out") from exc
                except httpx.HTTPError as exc:
                    raise UrlFetchError(f"{_safe(url)} could not be fetched: {exc}") from exc
                try:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        url = str(target.join(response.headers["location"]))
                        continue
                    if not response.is_success:
                        raise UrlFetchError(
                            f"{_safe(url)} answered {response.status_code}, not an image"
                        )
                    return await self._read(response, url)
                finally:
                    await response.aclose()
        raise UrlFetchError(f"more than {p.max_redirects} redirects")

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        cap = self.policy.max_bytes
        too_large = PayloadTooLargeError(f"the image at the URL is larger than {cap} bytes")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise too_large
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise UrlFetchError(f"{_safe(url)} timed out while sending the image") from exc
        except httpx.HTTPError as exc:
            raise UrlFetchError(f"{_safe(url)} broke off: {exc}") from exc
        return b"".join(chunks)

    def _parse(self, url: str) -> httpx.URL:
        try:
            target = httpx.URL(url.strip())
        except (httpx.InvalidURL, ValueError) as exc:
            raise UrlNotAllowedError(f"not a valid URL: {exc}") from exc
        if target.scheme not in ("http", "https"):
            raise UrlNotAllowedError(f"only http and https URLs are fetched, not {target.scheme!r}")
        if not target.host:
            raise UrlNotAllowedError("the URL has no host")
        if target.userinfo:
            raise UrlNotAllowedError("URLs with credentials are not fetched")
        return target

    async def _checked_address(self, host: str) -> IPAddress:
        return await anyio.to_thread.run_sync(self._check_host, host)

    def _check_host(self, host: str) -> IPAddress:
        """The address to connect to: every address of ``host`` must be allowed (blocking)."""
        name = host.lower().rstrip(".")
        try:
            addresses = [ipaddress.ip_address(name.strip("[]"))]
        except ValueError:
            found = self.resolver(name)
            try:
                addresses = [ipaddress.ip_address(a) for a in found]
            except ValueError as exc:
                raise UrlFetchError(f"the host {host!r} resolved to a bad address") from exc
        if not addresses:
            raise UrlFetchError(f"the host {host!r} has no address")
        if name in self.allow_hosts:
            return addresses[0]
        for ip in addresses:
            if any(ip in net for net in self.allow_nets):
                continue
            if not is_public_address(ip):
                raise UrlNotAllowedError(
                    f"the host {host!r} is on a private or reserved address; it is not fetched"
                )
        return addresses[0]

    def check(self, url: str) -> None:
        """Refuse a URL this guard would not call (blocking: it resolves the host)."""
        self._check_host(self._parse(url).host)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST ``body`` to ``url`` through the same guard as a fetch, checked again now (its
        DNS may have changed since it was given) and pinned to the checked address; redirects
        are not followed. The answer's status (blocking)."""
        target = self._parse(url)
        ip = self._check_host(target.host)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            request = client.build_request(
                "POST",
                target.copy_with(host=str(ip)),
                content=body,
                headers={**headers, "Host": _host_header(target)},
                extensions=extensions,
            )
            return client.send(request).status_code


def _host_header(url: httpx.URL) -> str:
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


def _safe(url: str) -> str:
    """A URL for messages: no query string (it may hold a token)."""
    return url.split("?", 1)[0][:200]
