"""The Panel agent's webhook, ``POST /api/sync/account`` (the contract: docs/sync-webhook.md).

The URL is the blueprint's prefix, so a host moves it with ``OPMAIL_SYNC_URL``.

The shared ``MAIL_SYNC_SECRET`` is its only key, sent as it is or as an HMAC signature of the call:
no admin login, no CSRF token, and an admin's session cookie counts for nothing. Every answer is
JSON. The rules live in ``opmail.rules.sync``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask_limiter import RateLimitExceeded
from limits import parse_many
from werkzeug.exceptions import HTTPException

from .config import flag
from .errors import (
    DATABASE_AWAY,
    DATABASE_AWAY_MESSAGE,
    DATABASE_RETRY_AFTER,
    discard_transaction,
    retry_seconds,
)
from .rules.sync import InvalidSyncCall, apply_sync, check_sync_call

URL = "/api/sync/account"  # the default; OpMail registers the blueprint at OPMAIL_SYNC_URL
MAX_BODY = 64 * 1024
# Routing answers a method that no rule allows with an HTML 405 before any blueprint handler runs,
# so every other method gets a rule of its own.
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
# Signed mode (README, "Signed calls"): both headers, the timestamp within this many seconds of now.
SIGNATURE_HEADERS = ("X-Sync-Timestamp", "X-Sync-Signature")
SIGNATURE_WINDOW = 300

bp = Blueprint("opmail_sync", __name__, url_prefix=URL)


@bp.record_once
def _exempt_from_csrf(state: BlueprintSetupState) -> None:
    """The agent is not a browser form: exempt this blueprint (only) from the app's CSRFProtect."""
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)
        return

    # A host may set up CSRFProtect after opmail. This hook then runs before CSRFProtect's own
    # (hooks run in the order they were added) and exempts the webhook on its first call.
    @state.app.before_request
    def _exempt_late() -> None:
        csrf = current_app.extensions.get("csrf")
        if csrf is not None and request.blueprint == bp.name:
            csrf.exempt(bp)


def _answer(code: int, **body: object) -> Response:
    response = jsonify(body)
    response.status_code = code
    return response


# The body of every accepted call's answer, made once as jsonify writes it outside debug mode
# (compact, one newline): jsonify costs a call about 20 µs, 2 % of its time in Python.
_OK_BODY = json.dumps({"status": "ok"}, separators=(",", ":")) + "\n"


@bp.post("", provide_automatic_options=False)
def sync_account() -> Response:
    """Check the secret, then the body, then apply the call (the contract's order)."""
    secret = current_app.config["MAIL_SYNC_SECRET"]
    if not secret:
        return _answer(404, error="Not found.")
    plain = request.headers.get("X-Sync-Secret")
    signed = any(name in request.headers for name in SIGNATURE_HEADERS)
    # Every credential sent must be right; an unsigned call needs the plain secret, unless
    # signatures are required.
    if plain is not None and not _same(plain, secret):
        return _unauthorized()
    if not signed and (plain is None or flag(current_app.config, "MAIL_SYNC_REQUIRE_SIGNATURE")):
        return _unauthorized()
    body = _raw_body()
    if signed and not _signature_valid(secret, body):
        return _unauthorized()
    try:
        call = check_sync_call(_decode(body))
        # A create whose address is an alias's or a group's is refused here (nothing written).
        apply_sync(call, request.remote_addr)
    except InvalidSyncCall as error:
        extra = {} if error.limit is None else {"limit": error.limit}
        return _answer(422, error=error.message, errors=error.errors, **extra)
    return current_app.response_class(_OK_BODY, mimetype="application/json")


def _unauthorized() -> Response:
    """403, counted against the client's address; past ``OPMAIL_SYNC_FAILURE_RATE_LIMIT`` a 429.

    Counted here, once the credentials were checked, so the limit holds back refused calls only:
    a call with the right secret or signature goes through from any address, however many wrong
    ones came from there (the agent shares 127.0.0.1 with every local user). What keeps the secret
    from being guessed is its length (32 characters or more), not this limit.
    """
    seconds = _refusals_over_limit()
    if seconds:
        response = _answer(429, error=f"Too many refused calls from your address. Try again in {seconds} s.")
        response.headers["Retry-After"] = str(seconds)
        return response
    return _answer(403, error="Unauthorized.")


def _refusals_over_limit() -> int | None:
    """Count this refused call; the seconds until the address may try again once it is one too
    many, else None. Stored where the other per-client limits are (``RATELIMIT_STORAGE_URI``)."""
    limiter = current_app.extensions["opmail_security"].limiter
    if limiter is None or not limiter.enabled:
        return None
    key = (current_app.config.get("RATELIMIT_KEY_PREFIX", ""), "opmail-sync-refused", str(request.remote_addr))
    waits = []
    try:
        for limit in parse_many(current_app.config["OPMAIL_SYNC_FAILURE_RATE_LIMIT"]):
            if not limiter.limiter.hit(limit, *key):
                reset_at = limiter.limiter.get_window_stats(limit, *key).reset_time
                waits.append(max(1, math.ceil(reset_at - time.time())))
    except Exception:  # the storage (Redis, memcached) is away: the call is refused all the same
        current_app.logger.warning("Cannot count a refused sync call", exc_info=True)
        return None
    return max(waits, default=None)


def _same(given: str, expected: str) -> bool:
    # Bytes: compare_digest raises on a non-ASCII str, and a stray header must be a 403, not a 500.
    return hmac.compare_digest(given.encode(), expected.encode())


def _signature_valid(secret: str, body: bytes) -> bool:
    """``X-Sync-Signature`` is the hex HMAC-SHA256 of ``timestamp + "." + body``, sent in time."""
    timestamp = request.headers.get("X-Sync-Timestamp", "")
    # Unix seconds: ASCII digits only (isdigit alone takes "²" and other Unicode digits).
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    # A captured call stops working after the window: the agent's and opmail's clocks must agree.
    if abs(time.time() - int(timestamp)) > SIGNATURE_WINDOW:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return _same(request.headers.get("X-Sync-Signature", "").lower(), expected.hexdigest())


def _raw_body() -> bytes:
    """The body as sent; over 64 KiB is a 413 before anything reads it."""
    # Werkzeug refuses a larger Content-Length at once, but a stream without one (chunked) it only
    # cuts at the limit, silently: read one byte more than allowed to tell the two apart.
    request.max_content_length = MAX_BODY + 1
    data = request.get_data(cache=False)
    if len(data) > MAX_BODY:
        abort(413)
    return data


def _decode(data: bytes) -> object:
    """The decoded body, whatever the Content-Type says."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidSyncCall({"body": ["The body is not valid JSON."]}) from None


@bp.route("", methods=OTHER_METHODS, provide_automatic_options=False)
def other_method() -> Response:
    """Only POST is part of the contract."""
    response = _answer(405, error="Method not allowed: use POST.")
    response.headers["Allow"] = "POST"
    return response


@bp.errorhandler(413)
def _too_large(_error: HTTPException) -> Response:
    return _answer(413, error=f"The body is larger than {MAX_BODY // 1024} KiB.")


@bp.errorhandler(RateLimitExceeded)
def _too_many(error: RateLimitExceeded) -> Response:
    seconds = retry_seconds(error)
    response = _answer(429, error=f"{error.description} Try again in {seconds} s.")
    response.headers["Retry-After"] = str(seconds)
    return response


def _database_away(error: Exception) -> Response:
    """The agent retries later: 503 with Retry-After, and nothing of the call was written."""
    discard_transaction(error)
    response = _answer(503, error=DATABASE_AWAY_MESSAGE)
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


for _exception in DATABASE_AWAY:
    bp.register_error_handler(_exception, _database_away)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return _answer(error.code or 500, error=f"{error.name}.")


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    """Whatever breaks, the agent gets JSON; the traceback goes to the log, never to the client."""
    current_app.logger.exception("Panel sync call failed", exc_info=error)
    return _answer(500, error="Internal error: see the opmail log.")
