"""opmail: a Flask admin for the mail domains and accounts a Dovecot server authenticates against.

Standalone::

    app = create_app()

Embedded in an existing Flask site (its Flask-SQLAlchemy, Flask-Admin and login)::

    app.config["SQLALCHEMY_BINDS"] = {"opmail": "mysql+pymysql://opmail:secret@127.0.0.1/mail"}
    OpMail(app, db=db, admin=admin, access=lambda: current_user.is_authenticated and current_user.is_admin)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from .config import (
    ConfigError,
    check_settings,
    create_sqlite_file,
    engine_options,
    instance_secret_key,
    make_instance_folder,
    password_min_length,
    settings_from_env,
)
from .db import drop_closed_connections, enforce_sqlite_foreign_keys, watch_commits
from .models import BIND_KEY

if TYPE_CHECKING:
    from flask_admin import Admin

__all__ = ["ConfigError", "OpMail", "create_app"]


@dataclass
class OpMailState:
    """What one app's opmail needs at request time (kept in ``app.extensions["opmail"]``)."""

    db: SQLAlchemy
    access: Callable[[], bool] | None
    admin: Admin | None = None
    confirm_password: Callable[[str], bool] | None = None


class OpMail:
    """The opmail extension: models on the ``opmail`` bind, the admin views, the webhook, the CLI.

    ``admin``: the host's Flask-Admin; opmail's views join its menu under "Mail" (else opmail
    creates its own Admin). ``db``: the host's Flask-SQLAlchemy (else the app's registered one, else
    opmail creates one). ``access``: a callable deciding who may use the mail admin, e.g. the host's
    logged-in user with a role (else opmail's own admin login guards the views). ``url_prefix``:
    where the mail admin lives (``/admin`` with its own Admin, ``<host admin url>/mail`` in the
    host's). ``sync_url``: the webhook's default URL, overridden by ``OPMAIL_SYNC_URL``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        admin: Admin | None = None,
        db: SQLAlchemy | None = None,
        access: Callable[[], bool] | None = None,
        url_prefix: str | None = None,
        sync_url: str | None = None,
        confirm_password: Callable[[str], bool] | None = None,
    ) -> None:
        self.admin = admin
        self.confirm_password = confirm_password
        self.db = db
        self.access = access
        self.url_prefix = url_prefix
        self.sync_url = sync_url
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set opmail up on ``app``.

        Config keys (defaults filled with ``setdefault``): ``SQLALCHEMY_BINDS["opmail"]`` (required),
        ``DOVECOT_PASSWORD_SCHEME`` ("BLF-CRYPT"), ``MAIL_SYNC_SECRET`` ("" = webhook off),
        ``MAILDIR_ROOT`` ("/var/mail"), ``OPMAIL_BCRYPT_ROUNDS`` (12),
        ``OPMAIL_PASSWORD_MIN_LENGTH`` (10, from 1 to 72: the fewest characters of a password typed
        here, for mailboxes and admins; hashes the Panel sends are not checked),
        ``OPMAIL_SYNC_URL`` ("/api/sync/account", or the ``sync_url`` argument),
        ``MAIL_SYNC_REQUIRE_SIGNATURE`` (False), ``OPMAIL_IDLE_MINUTES`` (30),
        ``MAIL_ADMIN_PREFIX`` (the ``url_prefix`` argument, else ``/admin`` with opmail's own
        Admin, ``<host admin url>/mail`` in the host's), ``MAIL_ADMIN_IPS`` ("" = any address;
        else comma-separated addresses/CIDRs that alone may open the admin area),
        ``OPMAIL_REQUIRE_2FA`` (False: opmail's own admins must turn on 2FA),
        ``OPMAIL_MAX_CONTENT_LENGTH`` (5 MiB: the most a request to opmail's pages may send); the rate limits
        ``RATELIMIT_STORAGE_URI`` ("memory://"), ``OPMAIL_PASSWORD_RATE_LIMIT`` and
        ``OPMAIL_SYNC_FAILURE_RATE_LIMIT`` ("10 per minute"), filled in ``opmail.security``.
        """
        from . import cli, security, sync
        from .admin import init_admin

        if "opmail" in app.extensions:
            raise RuntimeError(
                "opmail is already set up on this app: call OpMail.init_app once per app."
            )
        app.config.setdefault("DOVECOT_PASSWORD_SCHEME", "BLF-CRYPT")
        app.config.setdefault("MAIL_SYNC_SECRET", "")
        app.config.setdefault("MAILDIR_ROOT", "/var/mail")
        app.config.setdefault("OPMAIL_BCRYPT_ROUNDS", 12)
        app.config.setdefault("OPMAIL_PASSWORD_MIN_LENGTH", 10)
        app.config.setdefault("MAIL_SYNC_REQUIRE_SIGNATURE", False)
        app.config.setdefault("OPMAIL_IDLE_MINUTES", 30)
        app.config.setdefault("OPMAIL_REQUIRE_2FA", False)
        app.config.setdefault("OPMAIL_SYNC_URL", self.sync_url or sync.URL)
        app.config.setdefault("MAIL_ADMIN_PREFIX", self.url_prefix or self._default_prefix())
        app.config.setdefault("MAIL_ADMIN_IPS", "")
        # A 4 MiB accounts CSV and the rest of its form fit; nothing opmail's pages take is larger.
        app.config.setdefault("OPMAIL_MAX_CONTENT_LENGTH", 5 * 1024 * 1024)
        check_settings(app.config)
        app.config["OPMAIL_PASSWORD_MIN_LENGTH"] = password_min_length(app.config)
        if BIND_KEY not in app.config.get("SQLALCHEMY_BINDS", {}):
            raise ConfigError(
                'SQLALCHEMY_BINDS["opmail"] is not set: point it at the mail database.'
            )
        # A Flask-Admin object remembers its app: views added to another app's Admin would be
        # served there, not here.
        if self.admin is not None and self.admin.app not in (None, app):
            raise ConfigError(
                "The Admin given to OpMail belongs to another app: create one Admin per app."
            )
        # No pre-ping (a round trip per request): drop_closed_connections below replaces a
        # connection a restarted database closed, and retried runs a write again on a fresh one.
        db = self.db or app.extensions.get("sqlalchemy") or SQLAlchemy(app)

        app.extensions["opmail"] = OpMailState(
            db=db, access=self.access, admin=self.admin, confirm_password=self.confirm_password
        )
        with app.app_context():
            enforce_sqlite_foreign_keys(db.engines[BIND_KEY])
            watch_commits(db.engines[BIND_KEY])
            drop_closed_connections(db.engines[BIND_KEY])

        init_admin(app, self.admin, app.config["MAIL_ADMIN_PREFIX"])
        security.init_app(app)
        app.cli.add_command(cli.opmail_cli)
        app.register_blueprint(sync.bp, url_prefix=app.config["OPMAIL_SYNC_URL"])

    def _default_prefix(self) -> str:
        """``/admin`` for opmail's own Admin; inside a host's Admin, ``<its url>/mail``."""
        return "/admin" if self.admin is None else f"{self.admin.url.rstrip('/')}/mail"


class _HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came in over HTTPS."""

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        # No cookie (every webhook call): an empty session, without building the signer first.
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response) -> None:
        # An empty session nobody looked at (every webhook call): Flask would work out the cookie's
        # settings, then neither set nor delete it nor add Vary.
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def create_app(config: Mapping[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    """The standalone opmail site: SQLite in ``instance/`` unless ``DATABASE_URL`` says otherwise.

    Settings come from the environment and ``.env``; ``config`` overrides both (tests pass one);
    ``instance_path`` moves ``instance/``. Needs the ``standalone`` extra (a host site embedding
    ``OpMail`` does not).
    """
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise ConfigError(
            "The standalone site reads .env with python-dotenv: pip install 'opmail[standalone]'."
        ) from None
    # Static files come from the "opmail" blueprint, the same URL standalone and embedded.
    app = Flask(
        __name__, instance_path=instance_path, instance_relative_config=True, static_folder=None
    )
    load_dotenv()
    app.config.from_mapping(settings_from_env(app.instance_path))
    if config:
        app.config.from_mapping(config)
    check_settings(app.config)
    make_instance_folder(app.instance_path, app.config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    app.config["OPMAIL_BCRYPT_ROUNDS"] = int(app.config["OPMAIL_BCRYPT_ROUNDS"])
    url = app.config["DATABASE_URL"]
    create_sqlite_file(url, app.config)
    app.config.setdefault("SQLALCHEMY_BINDS", {BIND_KEY: {"url": url, **engine_options(url, app.config)}})
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = _HttpsAwareSessionInterface()

    db = SQLAlchemy()
    db.init_app(app)
    CSRFProtect(app)
    OpMail(app, db=db)
    return app
