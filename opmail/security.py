"""Response headers that keep the admin out of frames, caches and injected scripts.

Every response under the admin URL gets a Content-Security-Policy without ``'unsafe-inline'``
scripts: opmail's own scripts are files, htmx 2 needs no eval, and the inline ``<script>`` blocks
Flask-Admin may render carry the per-request nonce (``Admin(csp_nonce_generator=csp_nonce)``).
Styles keep ``'unsafe-inline'``: the usage bars set their width in a ``style`` attribute and htmx
adds its indicator ``<style>``; a nonce in ``style-src`` would switch that allowance off.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, abort, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from . import sync
from .config import Network, admin_networks
from .errors import body_limit, forbidden_address

# Flask-Admin's stock list (the Sync Log) has filter links ``href="javascript:void(0)"
# onclick="return false;"``: 'unsafe-hashes' with their hashes allows exactly these two no-ops and
# no other inline handler or javascript: URL.
_INERT_HANDLERS = ("return false;", "javascript:void(0)")


def _hash_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'nonce-{nonce}' 'unsafe-hashes' "
    + " ".join(map(_hash_source, _INERT_HANDLERS))
    + "; "
    "style-src 'self' 'unsafe-inline'; "
    # Bootstrap draws its select arrows and check marks as data: SVG images.
    "img-src 'self' data:; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)


def csp_nonce() -> str:
    """This request's script nonce (one per request, shared by the page and its CSP header)."""
    if "opmail_csp_nonce" not in g:
        g.opmail_csp_nonce = secrets.token_urlsafe(16)
    return g.opmail_csp_nonce


def add_security_headers(response: Response) -> Response:
    """Set the admin's security headers on ``response`` (a host's other pages are left alone)."""
    state = current_app.extensions["opmail_security"]
    if request.blueprint not in state.blueprints:
        return response
    response.headers["Content-Security-Policy"] = _POLICY.format(nonce=state.nonce())
    # frame-ancestors says the same to browsers that read CSP; older ones and some proxies' checks
    # know only this header.
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    # Pages show addresses and may show a generated password: never keep them in a cache or in the
    # back/forward history of a shared browser. Static files stay cacheable.
    if not (request.endpoint or "").endswith("static"):
        response.headers["Cache-Control"] = "no-store"
    return response


@dataclass
class _SecurityState:
    blueprints: frozenset[str]  # opmail's admin views and login pages
    nonce: Callable[[], str]  # the nonce the Admin renders into its <script> tags
    limiter: Limiter | None = None  # the per-client limits' storage (the webhook counts its refusals)


def init_app(app: Flask) -> None:
    """Add the security headers to every opmail admin response (call after the views are added)."""
    login_bp = "opmail_auth"
    blueprints, nonce = {login_bp}, csp_nonce
    for admin in app.extensions.get("admin", []):
        # A host's Admin may hold the host's own views: only opmail's get opmail's policy.
        ours = {
            view.endpoint
            for view in admin._views
            if type(view).__module__.startswith(__package__ + ".")
        }
        if ours:
            # Flask-Admin renders the nonce of this generator; a host's own generator wins.
            admin.csp_nonce_generator = admin.csp_nonce_generator or csp_nonce
            nonce = admin.csp_nonce_generator
            blueprints |= ours
    app.extensions["opmail_security"] = _SecurityState(frozenset(blueprints), nonce)
    app.after_request(add_security_headers)
    _limit_rates(app)
    _restrict_addresses(app)
    _cap_bodies(app, frozenset(blueprints))


def _restrict_addresses(app: Flask) -> None:
    """With ``MAIL_ADMIN_IPS``, the admin area (``MAIL_ADMIN_PREFIX``) answers 403 to any other
    client address; the webhook, which has its own secret, is left alone.

    ``request.remote_addr`` is the client: behind a proxy, ProxyFix decides what that is.
    """
    networks = admin_networks(app.config)
    if not networks:
        return
    prefix = app.config["MAIL_ADMIN_PREFIX"]

    # A URL value preprocessor, because Flask runs those before every before_request hook: the
    # address is refused before CSRF checks, rate limits or a login look at the request.
    @app.url_value_preprocessor
    def _check_address(_endpoint, _values) -> None:
        if request.blueprint == sync.bp.name:
            return
        if request.path != prefix and not request.path.startswith(prefix + "/"):
            return
        if not address_allowed(request.remote_addr, networks):
            abort(forbidden_address())


def _cap_bodies(app: Flask, blueprints: frozenset[str]) -> None:
    """Bodies sent to opmail's pages are capped at ``OPMAIL_MAX_CONTENT_LENGTH`` (or the host's
    smaller ``MAX_CONTENT_LENGTH``): a larger one gets the 413 page without being read. The CSRF
    check reads the whole form before any view could refuse it. The webhook has its own cap."""

    # Like the address check, before every before_request hook (CSRFProtect's among them).
    @app.url_value_preprocessor
    def _cap(_endpoint, _values) -> None:
        if request.blueprint in blueprints:
            limit = body_limit()
            host = current_app.config.get("MAX_CONTENT_LENGTH")
            request.max_content_length = limit if host is None else min(limit, host)


def address_allowed(remote_addr: str | None, networks: tuple[Network, ...]) -> bool:
    """Is ``remote_addr`` in one of ``networks``? (An IPv4 client seen as ::ffff:a.b.c.d counts
    as a.b.c.d.)"""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


# Per-client limits (the back-off on the admin row in opmail.auth stops guessing one admin's
# password; these stop one address hammering many names, or the webhook's secret).
PASSWORD_ENDPOINTS = (
    "opmail_auth.login",
    "opmail_auth.login_code",  # the 2FA code or recovery code
    "opmail_accounts.delete_view",
    "opmail_accounts.action_view",  # the bulk delete
    "opmail_domains.delete_view",
    "opmail_two_factor.disable_view",
    "opmail_two_factor.recovery_codes_view",
)
# The form fields that carry a guess: a post without any (a bulk suspend) is not counted.
SECRET_FIELDS = ("password", "admin_password", "code", "recovery_code")


def _limit_rates(app: Flask) -> None:
    """Flask-Limiter on the password forms and on the webhook's refused calls, per client address.

    Storage: ``RATELIMIT_STORAGE_URI`` (``memory://``: each worker process counts on its own;
    ``redis://…`` when several workers or hosts serve opmail). Behind a proxy, ProxyFix must
    supply the client's address.
    """
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config.setdefault("OPMAIL_PASSWORD_RATE_LIMIT", "10 per minute")
    app.config.setdefault("OPMAIL_SYNC_FAILURE_RATE_LIMIT", "10 per minute")
    # One Limiter per app: its storage and counters belong to this app only.
    limiter = Limiter(get_remote_address, app=app)
    passwords = limiter.shared_limit(
        lambda: current_app.config["OPMAIL_PASSWORD_RATE_LIMIT"],
        scope="opmail-passwords",
        # Only the posts that try a password or code: the bulk bar's other actions are not guesses.
        exempt_when=lambda: not any(request.form.get(field) for field in SECRET_FIELDS),
    )
    for endpoint in PASSWORD_ENDPOINTS:
        if endpoint in app.view_functions:
            app.view_functions[endpoint] = passwords(app.view_functions[endpoint])
    # The webhook's limit is counted by the webhook itself, after it checked the credentials: a
    # limit checked before the view would hold back the agent's right secret too (opmail.sync).
    # So no limit of the Limiter's applies to it (a RATELIMIT_DEFAULT neither), and its hooks are
    # not run for it at all: even with nothing to check, they cost the webhook about 80 µs a call,
    # a seventh of its time in Python outside gunicorn (bench/README.md, "Webhook").
    for hooks in (app.before_request_funcs[None], app.after_request_funcs[None], app.teardown_request_funcs[None]):
        hooks[:] = [_skipped_for_webhook(hook) if _belongs_to(hook, limiter) else hook for hook in hooks]
    app.extensions["opmail_security"].limiter = limiter


def _belongs_to(hook: Callable, limiter: Limiter) -> bool:
    """Whether ``hook`` is one the Limiter registered (a bound method, or a partial of one)."""
    return getattr(hook, "__self__", None) is limiter or limiter in getattr(hook, "args", ())


def _skipped_for_webhook(hook: Callable) -> Callable:
    """``hook`` for every request but the webhook's, which it passes through (the response, for
    an after_request hook)."""

    def run(*args):
        if request.blueprint == sync.bp.name:
            return args[0] if args else None
        return hook(*args)

    return run
