"""Admin → Autoresponders: every account's vacation reply; add, edit, delete."""

from __future__ import annotations

from datetime import date, datetime, time

from flask import abort, flash, redirect, request
from flask_admin import BaseView, expose

from ..addresses import InvalidInput
from ..models import MailAutoresponder
from ..queries import autoresponder_page
from ..rules import autoresponders
from ..rules.core import get_id
from ..sieve import REPLY_INTERVAL_DAYS
from .base import ProtectedView
from .forms import AdminForm, AutoresponderCreateForm, AutoresponderForm


def reply_from(form: AutoresponderForm) -> autoresponders.AutoresponderInput:
    """The form's values for the rules; an end date means "through the end of that day"."""

    def moment(day: date | None, at: time) -> datetime | None:
        return datetime.combine(day, at) if day else None

    return autoresponders.AutoresponderInput(
        subject=form.subject.data,
        body=form.body.data,
        starts_at=moment(form.starts_at.data, time.min),
        ends_at=moment(form.ends_at.data, time(23, 59, 59)),
        is_active=form.is_active.data,
    )


class AutorespondersView(ProtectedView, BaseView):
    @expose("/")
    def index_view(self):
        page_number = get_id(request.args.get("page")) or 1
        return self.render(
            "opmail/admin/autoresponders/list.html",
            page=autoresponder_page(page_number),
            list_url=lambda page=1: self.get_url(".index_view", page=page if page > 1 else None),
        )

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        form = AutoresponderCreateForm(
            data={"email": request.args.get("email", "")} if request.method == "GET" else None
        )
        if form.validate_on_submit():
            try:
                autoresponder = autoresponders.create_autoresponder(form.email.data, reply_from(form))
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Autoresponder for {autoresponder.email} saved.", "success")
                return redirect(self.get_url(".index_view"))
        return self.render_form(form, None), (
            422 if form.errors else 200
        )

    def render_form(self, form: AutoresponderForm, autoresponder: MailAutoresponder | None):
        return self.render(
            "opmail/admin/autoresponders/form.html",
            form=form,
            autoresponder=autoresponder,
            reply_interval_days=REPLY_INTERVAL_DAYS,
        )

    def _autoresponder_or_404(self) -> MailAutoresponder:
        autoresponder = autoresponders.autoresponder_in_scope(get_id(request.args.get("id")))
        if autoresponder is None:
            abort(404)
        return autoresponder

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        autoresponder = self._autoresponder_or_404()
        if request.method == "GET":
            form = AutoresponderForm(
                formdata=None,
                obj=autoresponder,
                starts_at=autoresponder.starts_at and autoresponder.starts_at.date(),
                ends_at=autoresponder.ends_at and autoresponder.ends_at.date(),
            )
        else:
            form = AutoresponderForm()
            if form.validate_on_submit():
                try:
                    autoresponders.update_autoresponder(autoresponder.id, reply_from(form))
                except InvalidInput as error:
                    form.add_error(error)
                else:
                    flash(f"Autoresponder for {autoresponder.email} saved.", "success")
                    return redirect(self.get_url(".index_view"))
        return self.render_form(form, autoresponder), (422 if form.errors else 200)

    @expose("/delete/", methods=("POST",))
    def delete_view(self):
        autoresponder = self._autoresponder_or_404()
        if not AdminForm().validate_on_submit():
            abort(400)
        autoresponders.delete_autoresponders([autoresponder.id])
        flash(f"Autoresponder for {autoresponder.email} deleted.", "success")
        return redirect(self.get_url(".index_view"))
