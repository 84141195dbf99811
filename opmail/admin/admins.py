"""Admin → Admins (server admins only): the domain admins, the domains each manages, add and remove."""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import BaseView, expose

from .. import auth
from ..addresses import InvalidInput
from ..models import Admin
from ..queries import admin_page
from ..rules.core import get_id
from .base import ProtectedView, row_or_404
from .forms import AdminForm, DomainAdminForm


class AdminsView(ProtectedView, BaseView):
    server_admin_only = True

    def render_list(self, form: DomainAdminForm | None = None, status: int = 200):
        page_number = get_id(request.args.get("page")) or 1
        return self.render(
            "opmail/admin/admins/list.html",
            page=admin_page(page_number),
            form=form or DomainAdminForm(formdata=None),
            list_url=lambda page=1: self.get_url(".index_view", page=page if page > 1 else None),
        ), status

    @expose("/")
    def index_view(self):
        return self.render_list()

    @expose("/new/", methods=("POST",))
    def create_view(self):
        form = DomainAdminForm()
        if form.validate_on_submit():
            try:
                admin = auth.add_domain_admin(
                    form.username.data or "",
                    form.password.data or "",
                    auth.parse_domain_names(form.domains.data),
                    form.require_2fa.data,
                )
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Domain admin {admin.username} added.", "success")
                return redirect(self.get_url(".index_view"))
        return self.render_list(form, 422)

    def _domain_admin_or_404(self) -> Admin:
        admin = row_or_404(Admin, request.args.get("id"))
        if admin.is_server_admin:
            abort(404)
        return admin

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        admin = self._domain_admin_or_404()
        if request.method == "GET":
            managed = auth.managed_domains(admin.id)
            form = DomainAdminForm(data={"domains": ", ".join(managed), "require_2fa": admin.require_2fa})
        else:
            form = DomainAdminForm()
        if form.validate_on_submit():
            try:
                auth.set_admin_domains(admin.id, auth.parse_domain_names(form.domains.data), form.require_2fa.data)
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Domain admin {admin.username} saved: its sessions were logged out.", "success")
                return redirect(self.get_url(".index_view"))
        return self.render("opmail/admin/admins/edit.html", admin=admin, form=form), (422 if form.errors else 200)

    @expose("/delete/", methods=("POST",))
    def delete_view(self):
        admin = self._domain_admin_or_404()
        if not AdminForm().validate_on_submit():
            abort(400)
        name = auth.remove_domain_admin(admin.id)
        flash(f"Domain admin {name} removed." if name else "That domain admin no longer exists.", "success")
        return redirect(self.get_url(".index_view"))
