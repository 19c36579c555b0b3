"""``Idempotency-Key``: the first response is stored and replayed; a retry never pays twice.

Same key with another payload: 422. Same key while the first request still runs: 409. A
request that failed leaves nothing behind, so it can be retried with the same key.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.responses import Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from clearbg.api.deps import Services
from clearbg.errors import IdempotencyConflictError, IdempotencyMismatchError, InvalidOptionError
from clearbg.store.models import ApiKey, IdempotencyRecord

_MAX_KEY = 200


class Idempotency:
    def __init__(self, svc: Services, key: ApiKey, header: str | None, fingerprint: str) -> None:
        self.svc = svc
        self.key = key
        self.header = header.strip() if header else None
        self.fingerprint = fingerprint
        self.record_id: int | None = None
        if self.header is not None and not 0 < len(self.header) <= _MAX_KEY:
            raise InvalidOptionError("Idempotency-Key", f"must be 1 to {_MAX_KEY} characters")

    def _folder(self) -> Path:
        folder = self.svc.settings.results_dir / "idempotency"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def begin(self) -> Response | None:
        """None: go ahead (the key is now taken). A Response: replay it as it was."""
        if self.header is None:
            return None
        for _ in range(2):
            try:
                with self.svc.sessions.begin() as db:
                    rec = db.scalar(
                        select(IdempotencyRecord).where(
                            IdempotencyRecord.api_key_id == self.key.id,
                            IdempotencyRecord.key == self.header,
                        )
                    )
                    if rec is None:
                        rec = IdempotencyRecord(
                            api_key_id=self.key.id, key=self.header, request_hash=self.fingerprint
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
        body = Path(rec.body_path).read_bytes()
        headers = dict(rec.headers or {})
        headers["Idempotent-Replayed"] = "true"
        media = headers.pop("content-type", None)
        return Response(body, status_code=rec.status or 200, headers=headers, media_type=media)

    def finish(self, response: Response) -> Response:
        if self.record_id is None:
            return response
        path = self._folder() / f"{self.record_id}.bin"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(response.body))
        os.replace(tmp, path)
        keep = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        with self.svc.sessions.begin() as db:
            rec = db.get(IdempotencyRecord, self.record_id)
            assert rec is not None
            rec.state, rec.status, rec.headers = "done", response.status_code, keep
            rec.body_path = str(path)
        return response

    def abandon(self) -> None:
        if self.record_id is None:
            return
        with self.svc.sessions.begin() as db:
            db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == self.record_id))
        self.record_id = None
