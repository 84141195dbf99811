"""Admin login and logout (a blueprint beside the Flask-Admin views, under the admin URL)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ..auth import TooManyAttempts, authenticate, log_in, log_out
from ..htmx import is_htmx, toast

bp = Blueprint("opmail_auth", __name__, url_prefix="/admin")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


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
        if admin is not None:
            log_in(admin)
            return redirect(safe_next(request.args.get("next")))
        form.password.errors.append("Wrong username or password.")
    return render_template("opmail/login.html", form=form), 401 if form.errors else 200


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
