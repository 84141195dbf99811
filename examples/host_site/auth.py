"""The host site's login (Flask-Login) and the rule that decides who may use the mail admin."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from .models import User, db

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def is_staff() -> bool:
    """Who may use the site's admin, opmail's Mail pages included."""
    return current_user.is_authenticated and current_user.is_staff


def mail_access() -> bool | list[str]:
    """Who may use opmail's Mail pages: staff every domain (True), a customer its own domains (their
    names: opmail makes it a domain admin of those), anybody else nobody."""
    if not current_user.is_authenticated:
        return False
    return True if current_user.is_staff else current_user.mail_domains.split()


def confirm_password(password: str) -> bool:
    """opmail's delete dialogs ask for the user's own password: the host checks it."""
    return current_user.is_authenticated and current_user.check_password(password)


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _on_site(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(db.select(User).filter_by(email=form.email.data))
        if user is not None and user.check_password(form.password.data):
            login_user(user)
            return redirect(_on_site(request.args.get("next")))
        form.password.errors.append("Wrong email or password.")
    return render_template("login.html", form=form), 401 if form.errors else 200


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
