"""Usage summaries from real records in a SQLite file: images are delivered images, and one
read serves several groupings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from clearbg.accounts import keys
from clearbg.accounts.usage import summaries, summarize
from clearbg.store.db import make_engine, migrate, sessions
from clearbg.store.models import UsageRecord


def test_images_count_only_delivered_images_and_groupings_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    migrate(url)
    factory = sessions(make_engine(url))
    with factory.begin() as db:
        app = keys.create_application(db, "shop")
        key, _ = keys.create_key(db, app)
        for endpoint, status, code in [
            ("/v1/removebg", 200, None),
            ("/api/v1/clearbg", 200, None),
            ("/v1/account", 200, None),  # a 200 that is no image
            ("/v1/bulk", 202, None),
            ("/api/v1/clearbg", 403, "insufficient_credits"),
        ]:
            db.add(
                UsageRecord(
                    application_id=app.id,
                    api_key_id=key.id,
                    endpoint=endpoint,
                    status=status,
                    error_code=code,
                    latency_ms=10.0,
                )
            )
    since = datetime.now(UTC) - timedelta(days=1)
    with factory() as db:
        (total,), by_key = summaries(db, since, [(), ("key",)], application_id=app.id)
        assert (total.requests, total.images) == (5, 2)
        assert total.errors == {"insufficient_credits": 1}
        assert total.statuses == {"200": 3, "202": 1, "403": 1}
        assert [(r.api_key, r.requests) for r in by_key] == [(key.prefix, 5)]
        assert summarize(db, since, application_id=app.id, by=()) == [total]
