"""The audit log: who did what in the console, the admin API or `clearbg admin`, kept in the
database beside what changed.

Each event is written in the transaction of the change it describes, so a change that rolls
back leaves no event and an event never describes a change that did not happen.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearbg.store.models import AuditEvent

__all__ = ["ACTIONS", "done_before", "events", "record"]

# what each action reads as on the audit page
ACTIONS: Final = {
    "key.created": "made a key",
    "key.renamed": "renamed a key",
    "key.rotated": "rotated a key",
    "key.revoked": "revoked a key",
    "credits.added": "gave credits",
    "settings.changed": "changed settings",
    "app.created": "made an application",
    "user.created": "made a user",
    "user.deactivated": "deactivated a user",
    "user.reactivated": "reactivated a user",
    "member.added": "added a member",
    "member.removed": "removed a member",
}


def record(
    db: Session,
    actor: tuple[int, str] | str | None,
    action: str,
    target: str = "",
    detail: str = "",
    application_id: int | None = None,
) -> AuditEvent:
    """Add one event to the current transaction; ``actor`` is a console user's (id, email), the
    name of another way in ("admin API"), or None for the command line."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")  # a bug of ours, not of input
    user = actor if isinstance(actor, tuple) else None
    event = AuditEvent(
        actor_id=user[0] if user else None,
        actor=user[1] if user else actor or "command line",
        application_id=application_id,
        action=action,
        target=target[:254],
        detail=detail[:500],
    )
    db.add(event)
    return event


def events(db: Session, *, application_id: int | None = None, limit: int = 200) -> list[AuditEvent]:
    """The newest events first (of one application, or all)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if application_id is not None:
        query = query.where(AuditEvent.application_id == application_id)
    return list(db.scalars(query))


def done_before(db: Session, actor_id: int, action: str, application_id: int) -> bool:
    """Whether this console user did ``action`` in this application before."""
    query = select(AuditEvent.id).where(
        AuditEvent.actor_id == actor_id,
        AuditEvent.action == action,
        AuditEvent.application_id == application_id,
    )
    return db.scalar(query.limit(1)) is not None
