"""The small refusal pages opmail's faces share: database away (503), too many requests (429),
body too large (413), address not allowed (403). Never a trace, never a database query.

The faces register these on their own blueprints (``opmail.admin.base``, ``opmail.admin.login``;
the webhook answers the same in JSON), so a host site's own pages keep its own error handling.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, request
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from werkzeug.exceptions import RequestEntityTooLarge

from .db import get_session
from .htmx import is_htmx, toast

# What a database that went away (stopped, restarted, unreachable) raises during a request.
DATABASE_AWAY = (OperationalError, DisconnectionError, InterfaceError)
DATABASE_AWAY_MESSAGE = "The mail database is not answering. Try again in a moment."
# A restarted MariaDB answers again within seconds; opmail.db then replaces the dead connections.
DATABASE_RETRY_AFTER = 10


def discard_transaction(error: Exception) -> None:
    """Roll back what the request had begun, so nothing half-written is committed later, and log
    why (the driver's message only: the statement's parameters may hold password hashes)."""
    current_app.logger.warning(
        "The mail database is not answering (%s): %s",
        type(error).__name__,
        getattr(error, "orig", None) or error,
    )
    get_session().rollback()


def plain_page(status: int, title: str, message: str, *, retry_after: int | None = None) -> Response:
    """A small page saying ``message``; for htmx, the same text as a toast (nothing is swapped).

    Rendered without the app's context processors: those ask the database who is logged in, and
    this page must show when the database cannot answer.
    """
    if is_htmx():
        response = toast(Response(message, status, mimetype="text/plain"), message, "error")
    else:
        page = current_app.jinja_env.get_template("opmail/error.html").render(
            title=title,
            message=message,
            again=request.full_path.rstrip("?") if request.method == "GET" else None,
        )
        response = Response(page, status, mimetype="text/html")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def database_away(error: Exception) -> Response:
    """503 for the admin pages when the database stops answering mid-request."""
    discard_transaction(error)
    return plain_page(
        503, "Database not answering", DATABASE_AWAY_MESSAGE, retry_after=DATABASE_RETRY_AFTER
    )


def retry_seconds(error: RateLimitExceeded) -> int:
    """Seconds until the limit this request broke lets the client in again (at least 1)."""
    limits = [
        limiter.current_limit
        for limiter in current_app.extensions.get("limiter", ())
        if limiter.current_limit is not None and limiter.current_limit.breached
    ]
    if not limits:  # a limit raised by hand, not by a Limiter's check: its whole window
        return error.limit.limit.get_expiry()
    # As Flask-Limiter's own Retry-After: reset_at already rounds the window's end up.
    return max(1, int(max(limit.reset_at for limit in limits) - time.time()))


def too_many_requests(error: RateLimitExceeded) -> Response:
    """429 for the admin pages (a limiter's, not the login's own lockout message)."""
    seconds = retry_seconds(error)
    return plain_page(
        429,
        "Too many attempts",
        f"Too many attempts. Try again in {seconds} second{'' if seconds == 1 else 's'}.",
        retry_after=seconds,
    )


def body_limit() -> int:
    """``OPMAIL_MAX_CONTENT_LENGTH``: the most bytes a request to opmail's pages may send."""
    return current_app.config["OPMAIL_MAX_CONTENT_LENGTH"]


def too_large(_error: RequestEntityTooLarge) -> Response:
    """413 for a body over ``OPMAIL_MAX_CONTENT_LENGTH``: refused before it was read."""
    mib = body_limit() / (1024 * 1024)
    return plain_page(
        413,
        "Too large",
        f"What you sent is larger than {mib:g} MiB, so none of it was read or saved."
        " An accounts CSV file may be at most 4 MiB.",
    )


def forbidden_address() -> Response:
    """403 for a client address that ``MAIL_ADMIN_IPS`` does not list."""
    return plain_page(403, "Forbidden", "The mail admin cannot be opened from your address.")


def add_page_handlers(blueprint: Blueprint) -> None:
    """Answer a database outage or a rate limit on ``blueprint``'s pages with the pages above."""
    for exception in DATABASE_AWAY:
        blueprint.register_error_handler(exception, database_away)
    blueprint.register_error_handler(RateLimitExceeded, too_many_requests)
    blueprint.register_error_handler(RequestEntityTooLarge, too_large)
