"""Admin authentication: who the admins are and who is logged in."""

from __future__ import annotations

import secrets
from functools import lru_cache

from flask import current_app, g, session
from sqlalchemy import select

from .db import get_session
from .models import Admin, utcnow
from .passwords import hash_password, validate_password, verify_password

SESSION_KEY = "opmail_admin_id"


@lru_cache
def _unknown_user_hash(rounds: int) -> str:
    """A hash to verify against when the username is unknown: the answer takes as long."""
    return hash_password(secrets.token_hex(8), "BLF-CRYPT", bcrypt_rounds=rounds)


def hash_admin_password(plain: str) -> str:
    validate_password(plain, "BLF-CRYPT")
    return hash_password(plain, "BLF-CRYPT", bcrypt_rounds=current_app.config["OPMAIL_BCRYPT_ROUNDS"])


def set_admin_password(username: str, plain: str) -> bool:
    """Create admin ``username`` or change its password; True when it was created."""
    db = get_session()
    admin = db.scalar(select(Admin).where(Admin.username == username))
    created = admin is None
    if created:
        admin = Admin(username=username)
        db.add(admin)
    admin.password = hash_admin_password(plain)
    db.commit()
    return created


def create_first_admin(username: str = "admin") -> str | None:
    """When no admin exists, create one with a generated password and return that password."""
    db = get_session()
    if db.scalar(select(Admin.id).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(12)
    set_admin_password(username, password)
    return password


def authenticate(username: str, password: str) -> Admin | None:
    """The admin whose username and password match, else None."""
    admin = get_session().scalar(select(Admin).where(Admin.username == username))
    if admin is None:
        verify_password(password, _unknown_user_hash(current_app.config["OPMAIL_BCRYPT_ROUNDS"]))
        return None
    return admin if verify_password(password, admin.password) else None


def log_in(admin: Admin) -> None:
    # A fresh session on login: nothing an attacker planted before survives it.
    session.clear()
    session[SESSION_KEY] = admin.id
    session.permanent = True
    admin.last_login_at = utcnow()
    get_session().commit()


def log_out() -> None:
    session.clear()


def current_admin() -> Admin | None:
    """The logged-in admin of this request, or None."""
    if "opmail_admin" not in g:
        admin_id = session.get(SESSION_KEY)
        g.opmail_admin = None if admin_id is None else get_session().get(Admin, admin_id)
    return g.opmail_admin


def check_admin_password(admin: Admin, password: str) -> bool:
    """Re-check the logged-in admin's own password before a destructive action."""
    return bool(password) and verify_password(password, admin.password)


def admin_access_allowed() -> bool:
    """May this request use the mail admin? The host's ``access`` callable decides when given."""
    access = current_app.extensions["opmail"].access
    return access() if access is not None else current_admin() is not None
