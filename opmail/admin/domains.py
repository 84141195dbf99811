"""Admin → Domains: list with counts, add, enable/disable, password-confirmed delete.

A domain admin sees its own domains listed; everything that changes a domain is the server admin's."""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import expose
from flask_admin.contrib.sqla import ModelView

from ..addresses import InvalidInput
from ..htmx import is_htmx, toast
from ..models import MailDomain
from ..queries import domain_admin_names, domain_contents, domain_page, domain_use
from ..rules import domains, limits
from ..rules.core import get_id
from ..scope import current_scope
from .base import ProtectedView, require_server_admin, row_or_404
from .forms import AdminForm, DomainForm, DomainLimitsForm


class DomainsView(ProtectedView, ModelView):
    form_base_class = AdminForm
    can_delete = False  # deletes go through the password-confirmed delete_view below
    # A domain's name never changes (its accounts' addresses hang on it); Flask-Admin's stock edit
    # form would save any text as the name, past normalize_domain.
    can_edit = False
    can_view_details = False

    def render_list(self, form: DomainForm | None = None, status: int = 200):
        page_number = get_id(request.args.get("page")) or 1
        page = domain_page(page_number)
        context = {
            "page": page,
            "domain_admins": domain_admin_names([row.id for row in page.rows]),
            "server_admin": not current_scope().limited,
            "form": form or DomainForm(formdata=None),
            "list_url": lambda page=1: self.get_url(".index_view", page=page if page > 1 else None),
        }
        return self.render_list_page("opmail/admin/domains", context, status)

    @expose("/")
    def index_view(self):
        return self.render_list()

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        require_server_admin()
        form = DomainForm(data={"domain": request.args.get("domain", "")} if request.method == "GET" else None)
        if form.validate_on_submit():
            try:
                domain = domains.create_domain(form.domain.data)
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Domain {domain} added.", "success")
                return redirect(self.get_url(".index_view"))
        return self.render_list(form, 422 if form.errors else 200)

    def _domain_or_404(self) -> MailDomain:
        return row_or_404(MailDomain, request.args.get("id"))

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        """The domain's page: its limits and default quota, with what it uses of each."""
        require_server_admin()
        domain = self._domain_or_404()
        if request.method == "GET":
            form = DomainLimitsForm(
                data={name: "" if getattr(domain, name) is None else str(getattr(domain, name)) for name in limits.LIMIT_COLUMNS}
            )
        else:
            form = DomainLimitsForm()
        if form.validate_on_submit():
            try:
                values = {name: limits.parse_limit(getattr(form, name).data, name) for name in limits.LIMIT_COLUMNS}
                limits.set_domain_limits(domain.id, **values)
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Limits of {domain} saved.", "success")
                return redirect(self.get_url(".edit_view", id=domain.id))
        status = 422 if form.errors else 200
        page = self.render("opmail/admin/domains/edit.html", domain=domain, form=form, use=domain_use(domain.id))
        return page, status

    @expose("/toggle/", methods=("POST",))
    def toggle_view(self):
        require_server_admin()
        domain = self._domain_or_404()
        if not AdminForm().validate_on_submit():
            abort(400)
        enable = not domain.is_active
        domains.set_domains_active([domain.id], enable)
        message = f"Domain {domain} {'enabled' if enable else 'disabled: its accounts cannot log in'}."
        if is_htmx():
            return toast(self.render_list(), message)
        flash(message, "success")
        return redirect(self.get_url(".index_view"))

    @expose("/delete/", methods=("GET", "POST"))
    def delete_view(self):
        """GET: the dialog listing what goes with the domain. POST: re-check the password, delete."""
        require_server_admin()
        domain = self._domain_or_404()
        return self.password_confirmed_delete(
            "opmail/admin/domains",
            lambda: domains.delete_domains([domain.id], _newest_account_seen()),
            lambda: {"contents": domain_contents(domain.id)},
            domain=domain,
        )

    @expose("/deleted/")
    def deleted_view(self):
        """Where a delete redirects: what went with the domain (a reload posts nothing)."""
        return self.render_deleted("opmail/admin/domains")


def _newest_account_seen() -> int | None:
    """The newest account id the delete dialog showed (0: the domain had none); None without one."""
    seen = request.form.get("newest_account", "")
    return int(seen) if seen.isascii() and seen.isdigit() and len(seen) <= 19 else None
