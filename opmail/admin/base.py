"""What every opmail admin view shares: the login guard and the htmx-aware redirect to login."""

from __future__ import annotations

from flask import redirect, request, url_for

from ..auth import admin_access_allowed
from ..htmx import redirect_client


class ProtectedView:
    """Mixin for Flask-Admin views: only a logged-in admin (or the host's ``access``) gets in."""

    def is_accessible(self) -> bool:
        return admin_access_allowed()

    def inaccessible_callback(self, name, **kwargs):
        login_url = url_for("opmail_auth.login", next=request.full_path.rstrip("?"))
        # A 302 would make htmx swap the login page into the table; ask for a full navigation.
        if request.headers.get("HX-Request") == "true":
            return redirect_client(login_url)
        return redirect(login_url)
