"""opmail: a Flask admin for the mail domains and accounts a Dovecot server authenticates against.

Standalone::

    app = create_app()

Embedded in an existing Flask site::

    opmail = OpMail(app, admin=host_admin, db=host_db)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from dotenv import load_dotenv
from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from .config import (
    ConfigError,
    check_settings,
    engine_options,
    instance_secret_key,
    settings_from_env,
)
from .db import enforce_sqlite_foreign_keys
from .models import BIND_KEY

__all__ = ["ConfigError", "OpMail", "create_app"]


@dataclass
class OpMailState:
    """What one app's opmail needs at request time (kept in ``app.extensions["opmail"]``)."""

    db: SQLAlchemy
    access: Callable[[], bool] | None


class OpMail:
    """The opmail extension: models on the ``opmail`` bind, the admin views, the CLI."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        access: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.access = access
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set opmail up on ``app``.

        Config keys (defaults filled with ``setdefault``): ``SQLALCHEMY_BINDS["opmail"]`` (required),
        ``DOVECOT_PASSWORD_SCHEME`` ("BLF-CRYPT"), ``MAIL_SYNC_SECRET`` ("" = webhook off),
        ``MAILDIR_ROOT`` ("/var/mail"), ``OPMAIL_BCRYPT_ROUNDS`` (12).
        """
        if "opmail" in app.extensions:
            raise RuntimeError(
                "opmail is already set up on this app: call OpMail.init_app once per app."
            )
        app.config.setdefault("DOVECOT_PASSWORD_SCHEME", "BLF-CRYPT")
        app.config.setdefault("MAIL_SYNC_SECRET", "")
        app.config.setdefault("MAILDIR_ROOT", "/var/mail")
        app.config.setdefault("OPMAIL_BCRYPT_ROUNDS", 12)
        check_settings(app.config)
        if BIND_KEY not in app.config.get("SQLALCHEMY_BINDS", {}):
            raise ConfigError(
                'SQLALCHEMY_BINDS["opmail"] is not set: point it at the mail database.'
            )
        if self.db is None:
            raise ConfigError("OpMail needs the app's Flask-SQLAlchemy object: OpMail(app, db=db).")

        app.extensions["opmail"] = OpMailState(db=self.db, access=self.access)
        with app.app_context():
            enforce_sqlite_foreign_keys(self.db.engines[BIND_KEY])

        from . import cli, security, sync
        from .admin import init_admin

        init_admin(app)
        security.init_app(app)
        app.cli.add_command(cli.opmail_cli)
        app.register_blueprint(sync.bp)


class _HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came in over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def create_app(config: Mapping[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    """The standalone opmail site: SQLite in ``instance/`` unless ``DATABASE_URL`` says otherwise.

    ``config`` overrides the environment (tests pass one); ``instance_path`` moves ``instance/``.
    """
    # Static files come from the "opmail" blueprint, the same URL standalone and embedded.
    app = Flask(
        __name__, instance_path=instance_path, instance_relative_config=True, static_folder=None
    )
    os.makedirs(app.instance_path, exist_ok=True)
    load_dotenv()
    app.config.from_mapping(settings_from_env(app.instance_path))
    if config:
        app.config.from_mapping(config)
    check_settings(app.config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    app.config["OPMAIL_BCRYPT_ROUNDS"] = int(app.config["OPMAIL_BCRYPT_ROUNDS"])
    url = app.config["DATABASE_URL"]
    app.config.setdefault("SQLALCHEMY_BINDS", {BIND_KEY: {"url": url, **engine_options(url)}})
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = _HttpsAwareSessionInterface()

    db = SQLAlchemy()
    db.init_app(app)
    CSRFProtect(app)
    OpMail(app, db=db)
    return app
