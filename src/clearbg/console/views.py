"""Console pages of one application that only read: usage (charts and tables, beside what
the ledger says was spent) and the API samples filled with its key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from clearbg.accounts import ledger
from clearbg.accounts.usage import UsageRow, summaries
from clearbg.console import charts
from clearbg.console.auth import ContextDep, ViewerDep
from clearbg.console.pages import load_app
from clearbg.console.render import page
from clearbg.store.models import ApiKey

router = APIRouter(prefix="/console/apps/{app_id}", include_in_schema=False)


def _top(errors: dict[str, int], n: int = 3) -> list[tuple[str, int]]:
    return sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _status_class(row: UsageRow, digit: str) -> int:
    return sum(n for status, n in row.statuses.items() if status.startswith(digit))


@router.get("/usage", response_class=HTMLResponse)
def usage(
    request: Request,
    ctx: ContextDep,
    who: ViewerDep,
    app_id: int,
    days: Annotated[int, Query(ge=1, le=366)] = 7,
) -> Response:
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    with ctx.sessions() as db:
        app = load_app(db, who, app_id)
        by_day, by_key, total_rows = summaries(
            db, since, [("day",), ("key",), ()], application_id=app.id
        )
        key_ids = list(db.scalars(select(ApiKey.id).where(ApiKey.application_id == app.id)))
        in_ledger = ledger.spent(db, key_ids, since)
    total = total_rows[0] if total_rows else UsageRow(None, None, None, requests=0, images=0)
    labels = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    rows = {r.day: r for r in by_day}
    requests_chart = charts.stacked_bars(
        "Requests by status per day",
        labels,
        [
            charts.Series(
                name, [_status_class(rows[d], digit) if d in rows else 0 for d in labels], css
            )
            for name, digit, css in (
                ("2xx", "2", "s2xx"),
                ("4xx", "4", "s4xx"),
                ("5xx", "5", "s5xx"),
            )
        ],
    )
    timed = {d: r for d, r in rows.items() if r.image_requests}  # other days: gaps
    latency_chart = charts.lines(
        "Latency of image requests per day",
        labels,
        [
            charts.Series("p50", [timed[d].p50_ms if d in timed else None for d in labels], "p50"),
            charts.Series("p95", [timed[d].p95_ms if d in timed else None for d in labels], "p95"),
        ],
        " ms",
    )
    return page(
        request,
        "usage.html",
        who,
        f"{app.name}: usage",
        section="apps",
        tab="/usage",
        app=app,
        days=days,
        total=total,
        by_day=list(reversed(by_day)),
        by_key=sorted(by_key, key=lambda r: -r.requests),
        requests_chart=requests_chart,
        latency_chart=latency_chart,
        in_ledger=in_ledger,
        top=_top,
    )


@dataclass(frozen=True)
class Sample:
    id: str
    lang: str
    code: str


@dataclass(frozen=True)
class SampleSection:
    title: str
    intro: str
    items: Sequence[Sample]


def samples(origin: str, app_key: str) -> list[SampleSection]:
    """The samples of both specs, with this deployment's origin and the application key."""
    gateway = f"{origin}/api/v1/clearbg"
    removebg = f"{origin}/v1/removebg"
    user_key = "INSERT_YOUR_USER_API_KEY"
    return [
        SampleSection(
            "Monitor gateway: POST /api/v1/clearbg",
            "One multipart field, image: a file, or text (an http(s) URL, raw base64 or a "
            "data URL). X-Api-Key is optional: without it the call is anonymous.",
            [
                Sample(
                    "gw-curl",
                    "curl",
                    "curl -X POST \\\n"
                    f"  -H 'X-App-Key: {app_key}' \\\n"
                    f"  -H 'X-Api-Key: {user_key}' \\\n"
                    "  -F 'image=@/path/to/file.jpg' \\\n"
                    f"  -f '{gateway}' \\\n"
                    "  -o result.png",
                ),
                Sample(
                    "gw-python",
                    "Python (requests)",
                    "import requests\n\n"
                    "with open('input.jpg', 'rb') as f:\n"
                    "    response = requests.post(\n"
                    f"        '{gateway}',\n"
                    f"        headers={{'X-App-Key': '{app_key}', 'X-Api-Key': '{user_key}'}},\n"
                    "        files={'image': f},\n"
                    "    )\n"
                    "response.raise_for_status()\n"
                    "with open('output.png', 'wb') as f:\n"
                    "    f.write(response.content)",
                ),
                Sample(
                    "gw-node",
                    "JavaScript (Node.js 18+)",
                    "import fs from 'fs';\n\n"
                    "const formData = new FormData();\n"
                    "formData.append('image', new Blob([fs.readFileSync('input.jpg')]), "
                    "'input.jpg');\n"
                    f"const response = await fetch('{gateway}', {{\n"
                    "  method: 'POST',\n"
                    f"  headers: {{ 'X-App-Key': '{app_key}', 'X-Api-Key': '{user_key}' }},\n"
                    "  body: formData\n"
                    "});\n"
                    "if (!response.ok) throw new Error(await response.text());\n"
                    "fs.writeFileSync('output.png', Buffer.from(await response.arrayBuffer()));",
                ),
            ],
        ),
        SampleSection(
            "AI API: POST /v1/removebg",
            "The end-user key goes in X-API-Key; options: size, format, bg_color, channels, "
            "crop, crop_margin, model.",
            [
                Sample(
                    "ai-curl",
                    "curl",
                    f"curl -X POST {removebg} \\\n"
                    f'  -H "X-API-Key: {user_key}" \\\n'
                    '  -F "image=@/path/to/your/image.jpg" \\\n'
                    "  -o result.png",
                ),
                Sample(
                    "ai-python",
                    "Python (requests)",
                    "import requests\n\n"
                    "with open('input.jpg', 'rb') as f:\n"
                    "    response = requests.post(\n"
                    f"        '{removebg}',\n"
                    f"        headers={{'X-API-Key': '{user_key}'}},\n"
                    "        files={'image': f}\n"
                    "    )\n"
                    "with open('output.png', 'wb') as f:\n"
                    "    f.write(response.content)",
                ),
                Sample(
                    "ai-node",
                    "JavaScript (Node.js 18+)",
                    "import fs from 'fs';\n\n"
                    "const formData = new FormData();\n"
                    "formData.append('image', new Blob([fs.readFileSync('input.jpg')]), "
                    "'input.jpg');\n"
                    f"const response = await fetch('{removebg}', {{\n"
                    "  method: 'POST',\n"
                    "  headers: { 'X-API-Key': process.env.CLEARBG_API_KEY },\n"
                    "  body: formData\n"
                    "});\n"
                    "const imageBlob = await response.blob();",
                ),
            ],
        ),
    ]


@router.get("/api", response_class=HTMLResponse)
def api(request: Request, ctx: ContextDep, who: ViewerDep, app_id: int) -> Response:
    with ctx.sessions() as db:
        app = load_app(db, who, app_id)
    origin = ctx.settings.console.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return page(
        request,
        "api.html",
        who,
        f"{app.name}: API",
        section="apps",
        tab="/api",
        app=app,
        samples=samples(origin, app.app_key),
    )
