"""Anonymous gateway use: client IPs (behind trusted proxies), their hashes, the daily limit.

The limit is a counter per application, hashed client IP and UTC day, taken with a
conditional update (``count < limit``), so parallel requests can never exceed it, and given
back when the upstream fails (nothing delivered, nothing counted).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from clearbg.store.models import AnonymousUsage

__all__ = [
    "client_ip",
    "give_back",
    "hash_ip",
    "parse_networks",
    "seconds_to_midnight",
    "take",
    "today",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip()]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_ip(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The socket's peer, unless it is a trusted proxy: then the first untrusted
    ``X-Forwarded-For`` hop from the right (a trusted hop's garbage stops the walk)."""
    address = peer or "unknown"
    current = _address(address)
    if current is None or not trusted:
        return address
    hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not any(current in net for net in trusted):
            break
        parsed = _address(hop)
        if parsed is None:
            break
        current = parsed
    return str(current)


def hash_ip(secret: bytes, ip: str) -> str:
    return hmac.new(secret, ip.encode(), hashlib.sha256).hexdigest()


def today(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def seconds_to_midnight(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds()) + 1)


def _pk(application_id: int, ip_hash: str, day: str) -> tuple[ColumnElement[bool], ...]:
    return (
        AnonymousUsage.application_id == application_id,
        AnonymousUsage.client_ip_hash == ip_hash,
        AnonymousUsage.day == day,
    )


def take(db: Session, application_id: int, ip_hash: str, limit: int, day: str) -> bool:
    """Count one anonymous request; False when the day's ``limit`` is spent."""
    if limit <= 0:
        return False
    exists = db.scalar(select(AnonymousUsage.count).where(*_pk(application_id, ip_hash, day)))
    if exists is None:
        try:
            with db.begin_nested():
                db.add(
                    AnonymousUsage(
                        application_id=application_id, client_ip_hash=ip_hash, day=day, count=0
                    )
                )
        except IntegrityError:
            pass  # made by a parallel request
    row = db.execute(
        update(AnonymousUsage)
        .where(*_pk(application_id, ip_hash, day), AnonymousUsage.count < limit)
        .values(count=AnonymousUsage.count + 1)
        .returning(AnonymousUsage.count)
    ).first()
    return row is not None


def give_back(db: Session, application_id: int, ip_hash: str, day: str) -> None:
    db.execute(
        update(AnonymousUsage)
        .where(*_pk(application_id, ip_hash, day), AnonymousUsage.count > 0)
        .values(count=AnonymousUsage.count - 1)
    )
