"""The few htmx request/response details opmail needs (no dependency for a dozen lines)."""

from __future__ import annotations

import json

from flask import Response, request


def is_htmx() -> bool:
    """True for an htmx request that wants a fragment (a history restore wants the full page)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def trigger(response: Response, event: str, detail: object) -> Response:
    """Fire a client-side event after the swap (htmx reads ``HX-Trigger``)."""
    existing = json.loads(response.headers.get("HX-Trigger", "{}"))
    existing[event] = detail
    # ensure_ascii keeps the header latin-1 safe; the client decodes \\u escapes.
    response.headers["HX-Trigger"] = json.dumps(existing)
    return response


def toast(response: Response, message: str, category: str = "success") -> Response:
    """Announce ``message`` (shown as text, never HTML) once the swap is done."""
    return trigger(response, "opmail:toast", {"message": message, "category": category})


def redirect_client(url: str) -> Response:
    """Make htmx load ``url`` as a full page instead of swapping the answer into a fragment."""
    response = Response(status=204)
    response.headers["HX-Redirect"] = url
    return response
