"""Templates, the headers every console page carries, and errors rendered as pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from clearbg.console.auth import Viewer

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data: http: https:; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

NOTICES: Final = {
    "app_created": "The application was created.",
    "settings_saved": "The settings were saved.",
    "key_revoked": "The key was revoked: calls with it now answer 401.",
    "credits_added": "The credits were added.",
    "key_renamed": "The key was renamed.",
    "job_cancelled": "The job was cancelled: images not yet processed are not charged.",
    "user_deactivated": "The user was deactivated: their sessions have ended.",
    "user_reactivated": "The user was reactivated: they can sign in again.",
    "member_added": "The member was added.",
    "member_removed": "The member was removed.",
    "user_created": "The user was created.",
    "signed_out": "You are signed out.",
    "password_changed": "Your password was changed; your other sessions are signed out.",
}

_HEADINGS: Final = {
    400: "That did not work",
    401: "Sign-in failed",
    403: "Not allowed",
    404: "Not found",
    429: "Too many attempts",
}


def page(
    request: Request,
    name: str,
    who: Viewer | None,
    title: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("done", ""))
    response = templates.TemplateResponse(
        request,
        name,
        {"who": who, "title": title, "notice": notice, **context},
        status_code=status,
        headers=SECURITY_HEADERS,
    )
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def error_page(
    request: Request, status: int, code: str, message: str, headers: dict[str, str]
) -> Response:
    """A console error as a page; a missing session sends the browser to sign-in."""
    if "application/problem+json" in request.headers.get("accept", ""):
        # the playground's script: a problem it can show, not a page
        body = {"status": status, "code": code, "detail": message}
        return JSONResponse(body, status, headers, media_type="application/problem+json")
    if code == "sign_in_required":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/console/login?next={quote(target)}")
    heading = _HEADINGS.get(status, "Something went wrong")
    response = page(
        request,
        "error.html",
        None,
        heading,
        status=status,
        heading=heading,
        message=message,
        code=code,
        request_id=getattr(request.state, "request_id", ""),
    )
    response.headers.update(headers)
    return response
