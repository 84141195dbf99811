"""Admin login and logout (a blueprint beside the Flask-Admin views, under the admin URL)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from .. import admin_2fa
from ..addresses import InvalidInput
from ..auth import (
    PENDING_KEY,
    TooManyAttempts,
    authenticate,
    begin_second_step,
    log_in,
    log_out,
    pending_admin,
)
from ..errors import add_page_handlers
from ..htmx import is_htmx, toast
from .forms import code_field

bp = Blueprint("opmail_auth", __name__, url_prefix="/admin")  # moved by MAIL_ADMIN_PREFIX
add_page_handlers(bp)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class LoginCodeForm(FlaskForm):
    code = code_field("Authentication code")


class LoginRecoveryForm(FlaskForm):
    recovery_code = StringField(
        "Recovery code",
        render_kw={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"},
    )


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else the admin home (no open redirect)."""
    # Control characters: urlsplit drops tabs and newlines (so "/\t/evil.com" would look on-site),
    # and a CR or LF cannot go into the Location header at all.
    if target and target.isprintable():
        parts = urlsplit(target)
        on_site = not parts.scheme and not parts.netloc
        if on_site and target.startswith("/") and not target.startswith(("//", "/\\")):
            return target
    return url_for("admin.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            admin = authenticate(form.username.data.strip(), form.password.data)
        except TooManyAttempts as locked:
            form.password.errors.append(str(locked))
            return render_template("opmail/login.html", form=form), 429
        if admin is not None and admin_2fa.is_on(admin):
            begin_second_step(admin)
            return redirect(url_for(".login_code", next=request.args.get("next")))
        if admin is not None:
            log_in(admin)
            return redirect(safe_next(request.args.get("next")))
        form.password.errors.append("Wrong username or password.")
    return render_template("opmail/login.html", form=form), 401 if form.errors else 200


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    """The second step: the authenticator app's code, or (``?recovery=1``) a recovery code."""
    started = PENDING_KEY in session
    admin = pending_admin()
    if admin is None:
        if started:
            message = "Too slow: the code must follow the password within 5 minutes. Log in again."
            flash(message, "error")
        return redirect(url_for(".login", next=request.args.get("next")))
    recovery = request.args.get("recovery") == "1"
    form = LoginRecoveryForm() if recovery else LoginCodeForm()
    field = form.recovery_code if recovery else form.code
    status = 200
    if form.validate_on_submit():
        try:
            if recovery:
                left = admin_2fa.use_recovery_code(admin, form.recovery_code.data)
            else:
                admin_2fa.verify_code(admin, form.code.data)
        except TooManyAttempts as locked:
            field.errors.append(str(locked))
            status = 429
        except InvalidInput as error:
            field.errors.append(error.message)
            status = 401
        else:
            log_in(admin)
            if recovery:
                flash(
                    f"You logged in with a recovery code: {left} left. Make new ones under"
                    " Two-factor authentication if you are running out.",
                    "warning",
                )
            return redirect(safe_next(request.args.get("next")))
    page = render_template("opmail/login_code.html", form=form, field=field, recovery=recovery)
    return page, status


@bp.app_errorhandler(TooManyAttempts)
def _locked(locked: TooManyAttempts):
    """A password check on an admin page (the delete dialogs) while the admin is locked."""
    if is_htmx():
        return toast(Response(status=204), str(locked), "error")
    flash(str(locked), "error")
    # Back to the page the form was on (the dialog shows the message); never off the site.
    referrer = urlsplit(request.referrer or "")
    on_site = referrer.netloc == request.host
    return redirect(safe_next(referrer._replace(scheme="", netloc="").geturl() if on_site else None))


@bp.route("/logout", methods=["POST"])
def logout():
    log_out()
    flash("You are logged out.", "info")
    return redirect(url_for("opmail_auth.login"))
