"""An existing Flask site that mounts opmail: its own models and database, Flask-Login, a global
CSRFProtect, its own Flask-Admin, and a blueprint called ``domain``.

    flask --app examples.host_site init-db
    flask --app examples.host_site add-user you@example.com --staff
    flask --app examples.host_site opmail init-db
    flask --app examples.host_site run        # http://127.0.0.1:5000/admin/ → Mail
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import click
from flask import Flask, redirect, url_for
from flask_wtf.csrf import CSRFProtect

from opmail import OpMail

from . import admin, auth, domain
from .models import add_user, db

csrf = CSRFProtect()


def create_app(config: Mapping[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    app = Flask(__name__, instance_path=instance_path)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev: set SECRET_KEY in production"),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{app.instance_path}/host.db",
        # The mail database Dovecot reads: opmail's tables live there, and only there.
        SQLALCHEMY_BINDS={
            "opmail": os.environ.get("MAIL_DATABASE_URL", f"sqlite:///{app.instance_path}/mail.db")
        },
        MAIL_SYNC_SECRET=os.environ.get("MAIL_SYNC_SECRET", ""),
    )
    if config:
        app.config.from_mapping(config)

    db.init_app(app)
    csrf.init_app(app)
    auth.login_manager.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(domain.bp)
    host_admin = admin.init_admin(app)

    # opmail: its views join the site's Admin under "Mail", behind the site's own login.
    OpMail(app, db=db, admin=host_admin, access=auth.mail_access, confirm_password=auth.confirm_password)

    app.add_url_rule("/", "home", lambda: redirect(url_for("admin.index")))
    app.cli.add_command(init_db)
    app.cli.add_command(add_user_command)
    return app


@click.command("init-db")
def init_db() -> None:
    """Create the site's own tables (opmail's: `flask opmail init-db`)."""
    db.create_all()


@click.command("add-user")
@click.argument("email")
@click.password_option()
@click.option("--staff", is_flag=True, help="May use the admin, Mail included.")
@click.option("--mail-domain", "mail_domains", multiple=True, help="A customer's mail domain (repeat for several).")
def add_user_command(email: str, password: str, staff: bool, mail_domains: tuple[str, ...]) -> None:
    add_user(email, password, staff=staff, mail_domains=" ".join(mail_domains))
