"""The host site's own Flask-Admin: its theme, its login box, a view of its own."""

from __future__ import annotations

from flask import Flask, abort, redirect, request, url_for
from flask_admin import Admin, AdminIndexView
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from flask_login import current_user
from flask_wtf import FlaskForm

from .auth import is_staff
from .models import Site, db


class StaffOnly:
    def is_accessible(self) -> bool:
        return is_staff()

    def inaccessible_callback(self, name, **kwargs):
        if current_user.is_authenticated:
            abort(403)
        return redirect(url_for("auth.login", next=request.full_path))


class HomeView(StaffOnly, AdminIndexView):
    pass


class SiteView(StaffOnly, ModelView):
    # With the site-wide CSRFProtect, Flask-Admin's forms must carry Flask-WTF's token.
    form_base_class = FlaskForm
    column_searchable_list = ("domain", "title")


def init_admin(app: Flask) -> Admin:
    admin = Admin(
        app,
        name="Host site",
        theme=Bootstrap4Theme(base_template="host_admin/base.html"),
        index_view=HomeView(),
    )
    admin.add_view(SiteView(Site, db, name="Sites", endpoint="host_sites"))
    return admin
