"""``Idempotency-Key``: the first response is stored and replayed; a retry never pays twice.

Same key with another payload: 422. Same key while the first request still runs: 409. A
request that failed leaves nothing behind, so it can be retried with the same key. The key is
taken with a unique row in the database, the stored body lives in the file store: both are
shared by every process.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from clearbg.errors import IdempotencyConflictError, IdempotencyMismatchError, InvalidOptionError
from clearbg.store.files import Files
from clearbg.store.models import IdempotencyRecord

__all__ = ["Answer", "Idempotency"]

_MAX_KEY = 200


@dataclass(frozen=True)
class Answer:
    """A response as stored for replay: status, headers (content-type among them), body."""

    status: int
    headers: dict[str, str]
    body: bytes


class Idempotency:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        files: Files,
        key_id: int,
        header: str | None,
        fingerprint: str,
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.key_id = key_id
        self.header = header.strip() if header else None
        self.fingerprint = fingerprint
        self.record_id: int | None = None
        if self.header is not None and not 0 < len(self.header) <= _MAX_KEY:
            raise InvalidOptionError("Idempotency-Key", f"must be 1 to {_MAX_KEY} characters")

    def begin(self) -> Answer | None:
        """None: go ahead (the key is now taken). An answer: replay it as it was."""
        if self.header is None:
            return None
        for _ in range(2):
            try:
                with self.sessions.begin() as db:
                    rec = db.scalar(
                        select(IdempotencyRecord).where(
                            IdempotencyRecord.api_key_id == self.key_id,
                            IdempotencyRecord.key == self.header,
                        )
                    )
                    if rec is None:
                        rec = IdempotencyRecord(
                            api_key_id=self.key_id, key=self.header, request_hash=self.fingerprint
                        )
                        db.add(rec)
                        db.flush()
                        self.record_id = rec.id
                        return None
                    break
            except IntegrityError:
                continue  # another request took the key between our read and insert
        else:
            raise IdempotencyConflictError("a request with this Idempotency-Key is running")
        if rec.request_hash != self.fingerprint:
            raise IdempotencyMismatchError(
                "this Idempotency-Key was used with another request; use a new key"
            )
        if rec.state != "done" or rec.body_path is None:
            raise IdempotencyConflictError("the first request with this Idempotency-Key is running")
        headers = dict(rec.headers or {})
        headers["Idempotent-Replayed"] = "true"
        return Answer(rec.status or 200, headers, self.files.get(rec.body_path))

    def finish(self, answer: Answer) -> Answer:
        """Store the answer for replays (nothing to do without an Idempotency-Key)."""
        if self.record_id is None:
            return answer
        stored = f"idempotency/{self.record_id}.bin"
        self.files.put(stored, answer.body)
        keep = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        with self.sessions.begin() as db:
            rec = db.get(IdempotencyRecord, self.record_id)
            if rec is None:
                raise IdempotencyConflictError("the Idempotency-Key record went away")
            rec.state, rec.status, rec.headers = "done", answer.status, keep
            rec.body_path = stored
        return answer

    def abandon(self) -> None:
        if self.record_id is None:
            return
        with self.sessions.begin() as db:
            db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == self.record_id))
        self.record_id = None
