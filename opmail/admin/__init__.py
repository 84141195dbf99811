"""The admin faces: Flask-Admin views (with htmx partials) and the login blueprint."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, request
from flask_admin import Admin, BaseView
from flask_admin.theme import Bootstrap4Theme
from flask_wtf.csrf import generate_csrf

from ..auth import current_admin
from ..models import AdminEvent, MailAccount, MailDomain, SyncEvent
from . import format, login
from .accounts import AccountsView
from .admins import AdminsView
from .aliases import AliasesView
from .audit_log import AuditLogView
from .autoresponders import AutorespondersView
from .base import check_csrf
from .dashboard import DashboardView
from .domains import DomainsView
from .dovecot_page import DovecotView
from .groups import GroupsView
from .sync_log import SyncLogView
from .two_factor import TwoFactorView

_PACKAGE = Path(__file__).resolve().parent.parent
# Templates and static files under opmail's own names, so a host app finds them (and can override).
assets = Blueprint(
    "opmail",
    __name__,
    template_folder=str(_PACKAGE / "templates"),
    static_folder=str(_PACKAGE / "static"),
    static_url_path="/static/opmail",
)


class MailViews:
    """opmail's place in an Admin: its views under one URL prefix, in the host's "Mail" menu."""

    def __init__(self, admin: Admin, url_prefix: str, category: str | None) -> None:
        self.admin = admin
        self.url_prefix = url_prefix.rstrip("/")
        self.category = category

    def add_view(self, view: BaseView) -> None:
        """Add ``view`` (its ``url`` relative to opmail's prefix) to the Admin."""
        view.url = f"{self.url_prefix}/{view.url}" if view.url else self.url_prefix
        if self.category:
            view.category = self.category
        self.admin.add_view(view)


def init_admin(app: Flask, host_admin: Admin | None, url_prefix: str) -> MailViews:
    """Add every opmail view to ``host_admin``, or to an Admin of opmail's own, plus the login pages.

    The views (and the login pages) live under ``url_prefix``; in a host's Admin their endpoints
    are ``opmail_*``, so a host blueprint called ``domain`` or ``accounts`` never collides with them.
    """
    state = app.extensions["opmail"]
    if host_admin is None:
        # The theme keeps Flask-Admin's base: opmail's own base wraps whichever base the Admin has.
        admin = MailViews(
            Admin(
                app,
                name="opmail",
                url=url_prefix,
                theme=Bootstrap4Theme(fluid=True),
                index_view=DashboardView(name="Dashboard", url=url_prefix, endpoint="admin"),
            ),
            url_prefix,
            None,
        )
    else:
        admin = MailViews(host_admin, url_prefix, "Mail")
        admin.add_view(DashboardView(name="Dashboard", endpoint="opmail_dashboard", url=""))
    db = state.db
    admin.add_view(AccountsView(MailAccount, db, name="Accounts", endpoint="opmail_accounts", url="accounts"))
    admin.add_view(DomainsView(MailDomain, db, name="Domains", endpoint="opmail_domains", url="domains"))
    admin.add_view(AliasesView(name="Aliases", endpoint="opmail_aliases", url="aliases"))
    admin.add_view(AutorespondersView(name="Autoresponders", endpoint="opmail_autoresponders", url="autoresponders"))
    admin.add_view(GroupsView(name="Groups", endpoint="opmail_groups", url="groups"))
    admin.add_view(SyncLogView(SyncEvent, db, name="Sync Log", endpoint="opmail_sync_log", url="sync-log"))
    admin.add_view(AuditLogView(AdminEvent, db, name="Audit Log", endpoint="opmail_audit", url="audit"))
    admin.add_view(DovecotView(name="Dovecot", endpoint="opmail_dovecot", url="dovecot"))
    if state.access is None:
        # opmail's own admins; with the host's ``access`` the host manages its users.
        admin.add_view(AdminsView(name="Admins", endpoint="opmail_admins", url="admins"))
    format.register(app)
    app.register_blueprint(assets)
    if state.access is None:
        # The admin's own 2FA: only with opmail's login (a host's ``access`` owns its login).
        two_factor = TwoFactorView(
            name="Two-factor authentication", endpoint="opmail_two_factor", url="two-factor"
        )
        admin.add_view(two_factor)
        app.register_blueprint(login.bp, url_prefix=admin.url_prefix)
        # The login form checks its token; logout has no form, and a host may lack CSRFProtect.
        app.before_request(lambda: check_csrf() if request.blueprint == login.bp.name else None)
    # With the host's ``access``, the host's login is the only one: no opmail admin, no logout.
    app.context_processor(
        lambda: {
            "opmail_csrf_token": generate_csrf,
            "opmail_admin": None if state.access else current_admin(),
        }
    )
    return admin
