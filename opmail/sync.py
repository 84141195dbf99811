"""The Panel agent's webhook, ``POST /api/sync/account`` (the contract: spec/sync-webhook.md).

The shared ``MAIL_SYNC_SECRET`` is its only key: no admin login, no CSRF token, and an admin's session
cookie counts for nothing. Every answer is JSON. The rules live in ``opmail.accounts``.
"""

from __future__ import annotations

import hmac
import json

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from .accounts import InvalidSyncCall, apply_sync, check_sync_call

URL = "/api/sync/account"
MAX_BODY = 64 * 1024
# Routing answers a method that no rule allows with an HTML 405 before any blueprint handler runs,
# so every other method gets a rule of its own.
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]

bp = Blueprint("opmail_sync", __name__)


@bp.record_once
def _exempt_from_csrf(state: BlueprintSetupState) -> None:
    """The agent is not a browser form: exempt this blueprint (only) from the app's CSRFProtect."""
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)


def _answer(code: int, **body: object) -> Response:
    response = jsonify(body)
    response.status_code = code
    return response


@bp.post(URL, provide_automatic_options=False)
def sync_account() -> Response:
    """Check the secret, then the body, then apply the call (the contract's order)."""
    secret = current_app.config["MAIL_SYNC_SECRET"]
    if not secret:
        return _answer(404, error="Not found.")
    # Bytes: compare_digest raises on a non-ASCII str, and a stray header must be a 403, not a 500.
    given = request.headers.get("X-Sync-Secret", "").encode()
    if not hmac.compare_digest(given, secret.encode()):
        return _answer(403, error="Unauthorized.")
    try:
        call = check_sync_call(_json_body())
    except InvalidSyncCall as error:
        return _answer(422, error=error.message, errors=error.errors)
    apply_sync(call, request.remote_addr)
    return _answer(200, status="ok")


def _json_body() -> object:
    """The decoded body, whatever the Content-Type says; over 64 KiB is a 413 before parsing."""
    # Werkzeug refuses a larger Content-Length at once, but a stream without one (chunked) it only
    # cuts at the limit, silently: read one byte more than allowed to tell the two apart.
    request.max_content_length = MAX_BODY + 1
    data = request.get_data(cache=False)
    if len(data) > MAX_BODY:
        abort(413)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidSyncCall({"body": ["The body is not valid JSON."]}) from None


@bp.route(URL, methods=OTHER_METHODS, provide_automatic_options=False)
def other_method() -> Response:
    """Only POST is part of the contract."""
    response = _answer(405, error="Method not allowed: use POST.")
    response.headers["Allow"] = "POST"
    return response


@bp.errorhandler(413)
def _too_large(_error: HTTPException) -> Response:
    return _answer(413, error=f"The body is larger than {MAX_BODY // 1024} KiB.")


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return _answer(error.code or 500, error=f"{error.name}.")


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    """Whatever breaks, the agent gets JSON; the traceback goes to the log, never to the client."""
    current_app.logger.exception("Panel sync call failed", exc_info=error)
    return _answer(500, error="Internal error: see the opmail log.")
