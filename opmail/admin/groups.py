"""Admin → Groups: distribution lists. Add, rename, give an address, delete, and membership (from the
group or the account page)."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose

from ..addresses import InvalidInput
from ..models import MailGroup
from ..queries import group_members, group_page
from ..rules import groups
from ..rules.core import get_id
from .base import ProtectedView
from .forms import AdminForm, GroupForm


class GroupsView(ProtectedView, BaseView):
    def render_list(self, form: GroupForm | None = None, status: int = 200):
        page_number = get_id(request.args.get("page")) or 1
        return self.render(
            "opmail/admin/groups/list.html",
            page=group_page(page_number),
            form=form or GroupForm(formdata=None),
            list_url=lambda page=1: self.get_url(".index_view", page=page if page > 1 else None),
        ), status

    @expose("/")
    def index_view(self):
        return self.render_list()

    @expose("/new/", methods=("POST",))
    def create_view(self):
        form = GroupForm()
        if form.validate_on_submit():
            try:
                group = groups.save_group(None, form.name.data, form.description.data, form.email.data)
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Group {group.name} added.", "success")
                return redirect(self.get_url(".index_view"))
        return self.render_list(form, 422)

    def _group_or_404(self) -> MailGroup:
        # The account page's "Add to group" sends the group in its form; every other URL names it.
        group = groups.group_in_scope(get_id(request.values.get("id")))
        if group is None:
            abort(404)
        return group

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        group = self._group_or_404()
        form = GroupForm(obj=group) if request.method == "GET" else GroupForm()
        if request.method == "POST" and form.validate_on_submit():
            try:
                groups.save_group(group.id, form.name.data, form.description.data, form.email.data)
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Group {form.name.data.strip()} saved.", "success")
                return redirect(self.get_url(".edit_view", id=group.id))
        return self.render(
            "opmail/admin/groups/edit.html", group=group, form=form, members=group_members(group.id)
        ), (422 if form.errors else 200)

    def _checked_post(self) -> MailGroup:
        group = self._group_or_404()
        if not AdminForm().validate_on_submit():
            abort(400)
        return group

    @expose("/delete/", methods=("POST",))
    def delete_view(self):
        group = self._checked_post()
        groups.delete_group(group.id)
        flash(f"Group {group.name} deleted; its members' accounts are unchanged.", "success")
        return redirect(self.get_url(".index_view"))

    def _back(self, group: MailGroup, account_id: str):
        """Back to the account page the change came from, or to the group."""
        if request.form.get("back") == "account" and get_id(account_id):
            return redirect(url_for("opmail_accounts.edit_view", id=get_id(account_id)))
        return redirect(self.get_url(".edit_view", id=group.id))

    @expose("/members/add/", methods=("POST",))
    def add_member_view(self):
        group = self._checked_post()
        account_id = request.form.get("account_id", "")
        result = groups.add_to_group([account_id], group.id)
        if result.changed:
            flash(f"{result.changed[0]} is in group {group.name}.", "success")
        else:
            flash("That account no longer exists.", "error")
        return self._back(group, account_id)

    @expose("/members/remove/", methods=("POST",))
    def remove_member_view(self):
        group = self._checked_post()
        account_id = request.form.get("account_id", "")
        groups.remove_from_group([account_id], group.id)
        flash(f"Removed from group {group.name}.", "success")
        return self._back(group, account_id)
