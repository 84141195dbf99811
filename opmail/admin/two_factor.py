"""The logged-in admin's own two-factor authentication: turn on (QR code), recovery codes, turn off.

Linked from the admin's name in the navbar, not from the menu. Only with opmail's own login: a host
that gates access with ``access=`` owns login and its second factor.
"""

from __future__ import annotations

import segno
from flask import current_app, flash, redirect, request
from flask_admin import BaseView, expose
from markupsafe import Markup

from .. import admin_2fa
from ..addresses import InvalidInput
from ..auth import check_admin_password, current_admin, keep_session
from ..config import flag
from .base import ProtectedView
from .forms import AdminForm, RecoveryCodesForm, TwoFactorCodeForm, TwoFactorOffForm


def qr_svg(uri: str) -> Markup:
    """``uri`` as an inline SVG QR code drawn here: the secret never goes to a QR service."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, title="QR code for your authenticator app")
    # segno's own markup; the URI is in the path data, never as text.
    return Markup(svg)  # noqa: S704


def grouped(secret: str) -> str:
    """``secret`` in groups of four, the way authenticator apps ask for a key typed by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


class TwoFactorView(ProtectedView, BaseView):
    open_without_2fa = True  # the one page OPMAIL_REQUIRE_2FA leaves open

    def is_visible(self) -> bool:
        return False  # reached from the admin's name in the navbar

    def _page(self, status: int = 200, **forms):
        admin = current_admin()
        context: dict = {"admin": admin, "is_on": admin_2fa.is_on(admin)}
        if context["is_on"]:
            forms.setdefault("off", TwoFactorOffForm(formdata=None))
            forms.setdefault("new_codes", RecoveryCodesForm(formdata=None))
            context["remaining"] = admin_2fa.remaining_recovery_codes(admin)
        else:
            context["required"] = flag(current_app.config, "OPMAIL_REQUIRE_2FA")
            # The key waits on the admin's row (set up by a POST: a GET changes nothing), so a
            # reload shows the QR code already scanned.
            secret = admin.totp_pending_secret
            if secret is None:
                forms.setdefault("start", AdminForm(formdata=None))
            else:
                forms.setdefault("enable", TwoFactorCodeForm(formdata=None))
                context.update(
                    qr=qr_svg(admin_2fa.provisioning_uri(secret, f"{admin.username}@{request.host}")),
                    key=grouped(secret),
                )
        return self.render("opmail/admin/two_factor/index.html", **context, **forms), status

    def _codes_page(self, codes: list[str], turned_on: bool):
        return self.render("opmail/admin/two_factor/codes.html", codes=codes, turned_on=turned_on)

    @expose("/")
    def index(self):
        return self._page()

    @expose("/start/", methods=("POST",))
    def start_view(self):
        """Make the key to enrol (the page then shows its QR code)."""
        if AdminForm().validate_on_submit():
            admin_2fa.start_enrolment(current_admin())
        return redirect(self.get_url(".index"))

    @expose("/enable/", methods=("POST",))
    def enable_view(self):
        admin = current_admin()
        if admin_2fa.is_on(admin) or admin.totp_pending_secret is None:
            return redirect(self.get_url(".index"))  # a second submit, or reset meanwhile
        form = TwoFactorCodeForm()
        if form.validate_on_submit():
            try:
                codes = admin_2fa.enable(admin, form.code.data)
            except InvalidInput as error:
                form.add_error(error)
            else:
                keep_session(admin)  # the admin's other sessions end, this one stays
                return self._codes_page(codes, turned_on=True)
        return self._page(422, enable=form)

    @expose("/disable/", methods=("POST",))
    def disable_view(self):
        form = TwoFactorOffForm()
        if form.validate_on_submit():
            if check_admin_password(current_admin(), form.admin_password.data):
                admin_2fa.disable(current_admin())
                flash("Two-factor authentication is off: your password alone logs you in.", "success")
                return redirect(self.get_url(".index"))
            form.admin_password.errors = [
                "Wrong admin password: two-factor authentication stays on."
            ]
        return self._page(422, off=form)

    @expose("/recovery-codes/", methods=("POST",))
    def recovery_codes_view(self):
        form = RecoveryCodesForm()
        if form.validate_on_submit():
            if check_admin_password(current_admin(), form.admin_password.data):
                try:
                    codes = admin_2fa.new_recovery_codes(current_admin())
                except InvalidInput as error:
                    flash(error.message, "error")
                    return redirect(self.get_url(".index"))
                return self._codes_page(codes, turned_on=False)
            form.admin_password.errors = [
                "Wrong admin password: your recovery codes are unchanged."
            ]
        return self._page(422, new_codes=form)
