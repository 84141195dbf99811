"""What every opmail admin view shares: the access guard, CSRF on every POST, opmail's page base."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, g, make_response, redirect, request, session, url_for
from flask_admin import expose
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from .. import audit
from ..addresses import InvalidInput
from ..auth import (
    acting_admin_name,
    acting_scope,
    admin_access_allowed,
    confirm_password,
    two_factor_setup_due,
)
from ..db import get_session
from ..errors import add_page_handlers
from ..htmx import is_htmx, redirect_client
from ..models import MAX_ID
from ..queries import domain_choices, domain_matches
from ..rules.accounts import DeletionReport, maildir_path
from ..rules.core import get_id
from ..scope import current_scope, set_scope
from .forms import AdminPasswordForm

WRONG_PASSWORD_NOTHING_DELETED = "Wrong admin password: nothing was deleted."  # noqa: S105 a message
ENTER_ADMIN_PASSWORD = "Enter your admin password."  # noqa: S105 a message
DELETED_KEY = "opmail_deleted"
# The deleted page's report rides in the session cookie (4 KB at most in a browser): only the first
# names of each list, and no more than this many characters of them.
_REPORT_NAMES = 20
_REPORT_CHARS = 1500


def _first_names(names: list[str]) -> list[str]:
    kept, size = [], 0
    for name in names[:_REPORT_NAMES]:
        size += len(name) + 1
        if size > _REPORT_CHARS:
            break
        kept.append(name)
    return kept


class KeptReport:
    """A DeletionReport as the deleted page reads it after the redirect: counts, and the first names."""

    def __init__(self, data: dict):
        self.changed = data["changed"]
        self.changed_count = data["changed_count"]
        self.aliases_removed = data["aliases"]
        self.aliases_count = data["aliases_count"]
        self.alias_destinations_removed = data["destinations"]
        self.autoresponders_removed = data["autoresponders"]
        self.group_memberships_removed = data["memberships"]
        self.two_factor_removed = data["two_factor"]


def keep_deletion(view: str, name: str, report: DeletionReport) -> None:
    """Remember what a delete removed for the page the redirect after it shows."""
    session[DELETED_KEY] = {
        "view": view,
        "name": name,
        "changed": _first_names(report.changed),
        "changed_count": len(report.changed),
        "aliases": _first_names(report.aliases_removed),
        "aliases_count": len(report.aliases_removed),
        "destinations": report.alias_destinations_removed,
        "autoresponders": report.autoresponders_removed,
        "memberships": report.group_memberships_removed,
        "two_factor": report.two_factor_removed,
    }


def check_csrf() -> None:
    """Refuse a POST without a valid token (400), unless the host's CSRFProtect already checked it.

    Standalone, the global CSRFProtect checks every POST; a host site may have none, or exempt
    views by default (``WTF_CSRF_CHECK_DEFAULT = False``), and opmail's forms must stay protected.
    """
    if request.method != "POST" or g.get("csrf_valid"):
        return
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    try:
        validate_csrf(token)
    except ValidationError as error:
        raise CSRFError(error.args[0]) from None


def row_or_404(model, raw_id: object):
    """The ``model`` row that ``raw_id`` (from a URL or a form) names; 404 for none or a non-id."""
    row_id = get_id(raw_id)
    row = get_session().get(model, row_id) if row_id else None
    if row is None:
        abort(404)
    return row


def _host_login():
    """The host's Flask-Login answer to a visitor who is not logged in (None without Flask-Login)."""
    login_manager = getattr(current_app, "login_manager", None)
    if login_manager is None:
        return None
    from flask_login import current_user

    return None if current_user.is_authenticated else login_manager.unauthorized()


class ClampedPages:
    """Mixin for Flask-Admin list views: an out-of-range ``?page=`` shows an empty page.

    Flask-Admin takes ?page= as any int: a negative offset or one past 64 bits is an SQL error on
    MariaDB (SQLite: OverflowError).
    """

    def get_list(self, page, *args, **kwargs):
        return super().get_list(min(max(page or 0, 0), MAX_ID // self.page_size), *args, **kwargs)


class DomainFilter:
    """Mixin for the lists filtered by domain (``?domain=example.com``, by name): the filter's
    choices for the full page, and the picker's typeahead endpoint (behind the view's access check).

    With up to DOMAIN_SELECT_MAX domains the filter is a plain dropdown of them all; above that a
    text field (the form's ``domain`` field, so it filters without JS too) whose typing asks
    ``domain_options_view`` for the first matches.
    """

    def domain_filter_choices(self) -> list[str] | None:
        """Every domain for the dropdown, or None above DOMAIN_SELECT_MAX (the typeahead)."""
        return domain_choices()

    @expose("/domain-options/")
    def domain_options_view(self):
        """The picker's listbox (a fragment): the first domains whose name starts with ``?domain=``."""
        typed = request.args.get("domain", "")[:254]
        return self.render("opmail/admin/_domain_options.html", names=domain_matches(typed), typed=typed.strip())


def require_server_admin() -> None:
    """Refuse (403) a domain admin: what follows is the server admin's alone."""
    if current_scope().limited:
        abort(403)


class ProtectedView:
    """Mixin for Flask-Admin views: only a logged-in admin (or the host's ``access``) gets in, and
    every query and rule of the request is scoped to the domains that admin manages."""

    open_without_2fa = False  # True: reachable before the admin turns on 2FA (OPMAIL_REQUIRE_2FA)
    server_admin_only = False  # True: a domain admin gets a 403 and no menu entry

    def render_list_page(self, folder: str, context: dict, status: int = 200, **page_only):
        """The whole list page, or only its table partial for htmx (the page includes the same one).

        ``page_only`` holds callables for what only the full page needs (the filter dropdowns).
        """
        if is_htmx():
            response = make_response(self.render(f"{folder}/_table.html", **context), status)
            if request.method == "GET":
                # The address bar gets the short, canonical form of the query.
                response.headers["HX-Push-Url"] = context["list_url"]()
        else:
            extra = {name: build() for name, build in page_only.items()}
            response = make_response(self.render(f"{folder}/list.html", **context, **extra), status)
        response.vary.add("HX-Request")
        return response

    def password_confirmed_delete(
        self,
        folder: str,
        delete: Callable[[], DeletionReport],
        dialog: Callable[[], dict] = dict,
        **shown,
    ):
        """GET: the delete dialog (a fragment for htmx). POST: re-check the admin password, then
        ``delete()`` and show what went with it and the Maildirs left on disk.

        ``shown`` goes to the dialog and the result page; ``dialog()`` adds what only the dialog
        needs, read only when it is shown.
        """
        form = AdminPasswordForm()
        status = 200
        # Named now: after the delete the row (and so its name) is gone.
        name = str(next(iter(shown.values())))
        if form.validate_on_submit():
            if not confirm_password(form.admin_password.data):
                form.admin_password.errors = [WRONG_PASSWORD_NOTHING_DELETED]
                status = 422
            else:
                try:
                    report = delete()
                except InvalidInput as error:
                    # What the dialog listed changed meanwhile: show it again, as it is now.
                    form.add_error(error)
                    status = 409
                else:
                    # Post/Redirect/Get: reloading the page after a delete must not post again.
                    keep_deletion(self.endpoint, name, report)
                    url = self.get_url(".deleted_view")
                    return redirect_client(url) if is_htmx() else redirect(url, 303)
        elif form.errors:
            status = 422
        template = "_delete_dialog.html" if is_htmx() else "delete.html"
        return self.render(f"{folder}/{template}", form=form, **shown, **dialog()), status

    def render_deleted(self, folder: str):
        """The page after a delete: what went, and the Maildirs left on disk (the list without one)."""
        kept = session.get(DELETED_KEY)
        if not kept or kept.get("view") != self.endpoint:
            return redirect(self.get_url(".index_view"))
        report = KeptReport(kept)
        maildirs = [maildir_path(email) for email in report.changed]
        return self.render(f"{folder}/deleted.html", report=report, maildirs=maildirs, name=kept["name"])

    def create_blueprint(self, admin):
        # Each view is its own blueprint: its outage and rate-limit pages stay off a host's pages.
        blueprint = super().create_blueprint(admin)
        add_page_handlers(blueprint)
        return blueprint

    def is_accessible(self) -> bool:
        return admin_access_allowed()

    def is_visible(self) -> bool:
        # The menu is drawn inside a request of some opmail view, whose scope is set by then.
        return not (self.server_admin_only and current_scope().limited)

    def inaccessible_callback(self, name, **kwargs):
        """Send a stranger to the login page; with the host's ``access``, to the host's login.

        With ``access``: a visitor the host's Flask-Login does not know gets its ``login_view``
        (or its 401); a known user that ``access`` refuses, or a host without Flask-Login, a 403.
        """
        if current_app.extensions["opmail"].access is None:
            response = redirect(url_for("opmail_auth.login", next=request.full_path.rstrip("?")))
        else:
            response = _host_login() or abort(403)
        # A 302 would make htmx swap the login page into the table; ask for a full navigation.
        if request.headers.get("HX-Request") == "true" and response.status_code in (301, 302, 303):
            return redirect_client(response.location)
        return response

    def _handle_view(self, name, **kwargs):
        refused = super()._handle_view(name, **kwargs)
        if refused is None:
            check_csrf()
            set_scope(acting_scope())
            if self.server_admin_only:
                require_server_admin()
            if not self.open_without_2fa and two_factor_setup_due():
                url = url_for("opmail_two_factor.index")
                return redirect_client(url) if is_htmx() else redirect(url)
            # Every rule this request runs records its change under this name (opmail.audit).
            audit.set_actor(acting_admin_name())
        return refused

    def render(self, template: str, **kwargs):
        # Every page extends "admin/master.html", i.e. the Admin's base (opmail's or the host's):
        # put opmail's base (htmx, opmail.js, the CSRF meta tag, toasts) between the two.
        self._template_args.update(
            admin_base_template="opmail/admin/base.html",
            opmail_host_base=self.admin.theme.base_template,
        )
        return super().render(template, **kwargs)
