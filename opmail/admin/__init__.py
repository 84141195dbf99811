"""The admin faces: Flask-Admin views (with htmx partials) and the login blueprint."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme
from flask_wtf.csrf import generate_csrf

from ..auth import current_admin
from ..models import MailAccount, MailDomain, SyncEvent
from . import format, login
from .accounts import AccountsView
from .aliases import AliasesView
from .dashboard import DashboardView
from .domains import DomainsView
from .dovecot_page import DovecotView
from .sync_log import SyncLogView


_PACKAGE = Path(__file__).resolve().parent.parent
# Templates and static files under opmail's own names, so a host app finds them (and can override).
assets = Blueprint(
    "opmail",
    __name__,
    template_folder=str(_PACKAGE / "templates"),
    static_folder=str(_PACKAGE / "static"),
    static_url_path="/static/opmail",
)


def init_admin(app: Flask) -> Admin:
    """Create opmail's Admin on ``app`` with every view, plus the login blueprint."""
    admin = Admin(
        app,
        name="opmail",
        theme=Bootstrap4Theme(base_template="opmail/admin/base.html", fluid=True),
        index_view=DashboardView(name="Dashboard", url="/admin", endpoint="admin"),
    )
    db = app.extensions["opmail"].db
    admin.add_view(AccountsView(MailAccount, db, name="Accounts", endpoint="opmail_accounts", url="accounts"))
    admin.add_view(DomainsView(MailDomain, db, name="Domains", endpoint="opmail_domains", url="domains"))
    admin.add_view(AliasesView(name="Aliases", endpoint="opmail_aliases", url="aliases"))
    admin.add_view(SyncLogView(SyncEvent, db, name="Sync Log", endpoint="opmail_sync_log", url="sync-log"))
    admin.add_view(DovecotView(name="Dovecot", endpoint="opmail_dovecot", url="dovecot"))
    format.register(app)
    app.register_blueprint(assets)
    app.register_blueprint(login.bp)
    app.context_processor(
        lambda: {"opmail_csrf_token": generate_csrf, "opmail_admin": current_admin()}
    )
    return admin
