"""Admin authentication: who the admins are and who is logged in."""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Iterable
from datetime import timedelta
from functools import lru_cache

from flask import current_app, g, session
from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import audit
from .addresses import InvalidInput, normalize_admin_name, normalize_domain
from .config import flag
from .db import get_session, retried
from .models import DOMAIN_ADMIN, Admin, AdminDomain, MailDomain, utcnow
from .passwords import generate_password, hash_password, validate_password, verify_password
from .rules.core import check_password_policy, transaction
from .scope import EVERY_DOMAIN, Scope, admin_scope, scope_of_domain_names

SESSION_KEY = "opmail_admin_id"
VERSION_KEY = "opmail_session_version"
SEEN_KEY = "opmail_seen"  # Unix time of the session's last request, for the idle timeout
# [admin id, session version, Unix time]: the password was right, the 2FA code is still to come.
PENDING_KEY = "opmail_pending_admin"
PENDING_SECONDS = 300
DEFAULT_IDLE_MINUTES = 30
# Wrong passwords in a row allowed before a lock; the lock then doubles with each further one.
FREE_ATTEMPTS = 5
FIRST_LOCK = 30  # seconds
LONGEST_LOCK = 3600


@lru_cache
def _unknown_user_hash(rounds: int) -> str:
    """A hash to verify against when the username is unknown: the answer takes as long."""
    return hash_password(secrets.token_hex(8), "BLF-CRYPT", bcrypt_rounds=rounds)


def hash_admin_password(plain: str) -> str:
    validate_password(plain, "BLF-CRYPT")
    check_password_policy(plain)
    return hash_password(plain, "BLF-CRYPT", bcrypt_rounds=current_app.config["OPMAIL_BCRYPT_ROUNDS"])


class NameTaken(InvalidInput):
    """The name typed is another spelling of an existing admin's name."""


def find_admin(username: str) -> Admin | None:
    """The admin named ``username`` in its canonical form; None when none is (or it cannot be one)."""
    try:
        name = normalize_admin_name(username)
    except InvalidInput:
        return None
    # admins.username compares in binary (utf8mb4_bin on MariaDB): only the canonical form matches.
    return get_session().scalar(select(Admin).where(Admin.username == name))


@retried
def set_admin_password(
    username: str, plain: str, domains: Iterable[str] = (), require_2fa: bool = False, *, new_only: bool = False
) -> bool:
    """Create admin ``username`` or change its password; True when it was created. With ``domains``
    it becomes (in the same transaction) a domain admin of exactly those, else it stays what it is.

    The name is stored in its canonical form (``normalize_admin_name``). A name typed in another
    spelling of an existing admin's (``BOB`` for ``bob``) is refused, NameTaken: changing that
    admin's password by accident is worse than asking for the name as it is.
    """
    db = get_session()
    name = normalize_admin_name(username)
    admin = db.scalar(select(Admin).where(Admin.username == name))
    if admin is not None and username.strip() != admin.username:
        raise NameTaken(
            f"{username.strip()!r} is the same name as the existing admin {admin.username!r} "
            f"(names ignore letter case and width). To set that admin's password, type its name "
            f"exactly: {admin.username}."
        )
    created = admin is None
    if new_only and not created:
        raise InvalidInput(f"An admin called {admin.username} already exists.", "username")
    if created:
        admin = Admin(username=name)
        db.add(admin)
    admin.password = hash_admin_password(plain)
    try:
        with transaction():
            if domains:
                _make_domain_admin(db, admin, domains, require_2fa)
    except IntegrityError:  # another request created the same name meanwhile
        raise InvalidInput(f"An admin called {name} already exists.", "username") from None
    return created


def parse_domain_names(text: str | None) -> list[str]:
    """The domains typed in the Admins form: names separated by commas, spaces or lines."""
    return [name for name in re.split(r"[\s,;]+", text or "") if name]


def add_domain_admin(username: str, plain: str, domains: list[str], require_2fa: bool) -> Admin:
    """Admin → Admins → Add: a new domain admin of ``domains``; an existing name is refused (never
    its password changed), and nothing is written unless every domain exists."""
    if not domains:
        raise InvalidInput("Name at least one domain.", "domains")
    set_admin_password(username, plain, domains, require_2fa, new_only=True)
    return find_admin(username)


@retried
def set_admin_domains(admin_id: int, domains: Iterable[str], require_2fa: bool) -> Admin:
    """Admin → Admins → edit: the domains a domain admin manages, and whether it must use 2FA."""
    with transaction() as db:
        admin = db.get(Admin, admin_id)
        if admin is None or admin.is_server_admin:
            raise InvalidInput("That domain admin no longer exists.")
        _make_domain_admin(db, admin, domains, require_2fa)
    return admin


@retried
def remove_domain_admin(admin_id: int) -> str | None:
    """Remove a domain admin (its sessions end with it); None when there is none by that id.
    Server admins are not removed here: the last one would lock everybody out."""
    with transaction() as db:
        admin = db.get(Admin, admin_id)
        if admin is None or admin.is_server_admin:
            return None
        name = admin.username
        db.execute(delete(AdminDomain).where(AdminDomain.admin_id == admin_id))
        db.execute(delete(Admin).where(Admin.id == admin_id))
        audit.record(db, "admin.delete", [name])
    return name


def managed_domains(admin_id: int) -> list[str]:
    """The names of the domains a domain admin manages, alphabetical."""
    return get_session().scalars(
        select(MailDomain.domain)
        .join(AdminDomain, AdminDomain.domain_id == MailDomain.id)
        .where(AdminDomain.admin_id == admin_id)
        .order_by(MailDomain.domain)
    ).all()


def _make_domain_admin(db, admin: Admin, domains: Iterable[str], require_2fa: bool) -> list[str]:
    """Make ``admin`` a domain admin of exactly ``domains`` (names; each must exist) in ``db``'s
    transaction; returns their stored names. Its sessions end: the next login gets the new scope."""
    try:
        names = sorted({normalize_domain(name) for name in domains})
    except InvalidInput as error:
        raise InvalidInput(error.message, "domains") from None
    if not names:
        raise InvalidInput("Name at least one domain.", "domains")
    found = dict(db.execute(select(MailDomain.domain, MailDomain.id).where(MailDomain.domain.in_(names))).all())
    missing = [name for name in names if name not in found]
    if missing:
        raise InvalidInput(f"No such domain: {', '.join(missing)}. Nothing was changed.", "domains")
    db.flush()  # a new admin's id
    db.execute(delete(AdminDomain).where(AdminDomain.admin_id == admin.id))
    db.execute(insert(AdminDomain), [{"admin_id": admin.id, "domain_id": found[name]} for name in names])
    admin.role = DOMAIN_ADMIN
    admin.require_2fa = require_2fa
    admin.session_version = (admin.session_version or 0) + 1
    audit.record(db, "admin.domains", [admin.username], also=names)
    return names


def create_first_admin(username: str = "admin") -> str | None:
    """When no admin exists, create one with a generated password and return that password."""
    db = get_session()
    if db.scalar(select(Admin.id).limit(1)) is not None:
        return None
    password = generate_password(current_app.config["OPMAIL_PASSWORD_MIN_LENGTH"])
    set_admin_password(username, password)
    return password


class TooManyAttempts(Exception):
    """The admin's password may not be tried now: too many wrong ones in a row."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        super().__init__(f"Too many failed attempts: try again in {seconds} s.")


def authenticate(username: str, password: str) -> Admin | None:
    """The admin whose username and password match, else None; TooManyAttempts while locked."""
    admin = find_admin(username)
    if admin is None:
        verify_password(password, _unknown_user_hash(current_app.config["OPMAIL_BCRYPT_ROUNDS"]))
        return None
    # With 2FA the right password alone forgives nothing: else re-entering it would reset the count
    # between code guesses. The right code forgives (opmail.admin_2fa).
    return admin if _try_password(admin, password, forgive=admin.totp_secret is None) else None


def _try_password(admin: Admin, password: str, forgive: bool = True) -> bool:
    """Check ``admin``'s password under the back-off: wrong ones in a row lock it for a while.

    Kept on the admin row, so it holds across processes and client addresses (a per-client limit
    cannot stop a guesser that changes address). While locked the password is not even checked.
    """
    refuse_while_locked(admin)
    if verify_password(password, admin.password):
        if forgive and admin.failed_logins:
            write_bookkeeping(admin, failed_logins=0, locked_until=None)
        return True
    count_failure(admin)
    return False


def refuse_while_locked(admin: Admin) -> None:
    """Raise TooManyAttempts while ``admin`` is locked: nothing is checked then."""
    wait = seconds_locked(admin)
    if wait:
        raise TooManyAttempts(wait)


def count_failure(admin: Admin) -> None:
    """Count a wrong password or 2FA code; raise TooManyAttempts when that earns a lock."""
    # Counted in SQL, so two wrong passwords at the same moment both count.
    write_bookkeeping(admin, failed_logins=Admin.failed_logins + 1)
    over = admin.failed_logins - FREE_ATTEMPTS
    if over < 0:
        return
    seconds = min(FIRST_LOCK << over, LONGEST_LOCK)
    write_bookkeeping(admin, locked_until=utcnow() + timedelta(seconds=seconds))
    raise TooManyAttempts(seconds)


@retried
def write_bookkeeping(
    admin: Admin, *conditions: ColumnElement[bool], logged_as: str | None = None, **values: object
) -> bool:
    """Update ``admin``'s row where ``conditions`` hold; True when it did.

    Login bookkeeping (failures, session version) is not an edit, so ``updated_at`` stays unless
    ``values`` sets it. The conditions make check-and-write one statement (no race between them).
    A security change (2FA on/off) names its audit action in ``logged_as``.
    """
    db = get_session()
    values = {"updated_at": Admin.updated_at, **values}
    result = db.execute(update(Admin).where(Admin.id == admin.id, *conditions).values(**values))
    if logged_as and result.rowcount == 1:
        audit.record(db, logged_as, [admin.username])
    db.commit()
    db.refresh(admin)
    return result.rowcount == 1


def seconds_locked(admin: Admin) -> int:
    """How long ``admin``'s password may not be tried (0: it may)."""
    if admin.locked_until is None:
        return 0
    return max(0, math.ceil((admin.locked_until - utcnow()).total_seconds()))


def unlock_admin(username: str) -> bool:
    """Forget ``username``'s wrong passwords and lift its lock; False for an unknown admin."""
    admin = find_admin(username)
    if admin is None:
        return False
    write_bookkeeping(admin, failed_logins=0, locked_until=None)
    return True


@retried
def log_in(admin: Admin) -> None:
    # A fresh session on login: nothing an attacker planted before survives it.
    session.clear()
    session[SESSION_KEY] = admin.id
    session[VERSION_KEY] = admin.session_version
    session[SEEN_KEY] = int(time.time())
    session.permanent = True
    admin.last_login_at = utcnow()
    get_session().commit()


def begin_second_step(admin: Admin) -> None:
    """The password was right and ``admin`` has 2FA: not logged in, but waiting for the code."""
    session.clear()
    session[PENDING_KEY] = [admin.id, admin.session_version, int(time.time())]


def pending_admin() -> Admin | None:
    """The admin this session gave the right password for in the last 5 minutes, code still due."""
    pending = session.get(PENDING_KEY)
    if pending is None:
        return None
    admin_id, version, started = pending
    admin = get_session().get(Admin, admin_id)
    if (
        admin is None
        or admin.session_version != version  # e.g. `flask opmail reset-admin-2fa` since
        or admin.totp_secret is None
        or time.time() - started > PENDING_SECONDS
    ):
        session.pop(PENDING_KEY)
        return None
    return admin


def keep_session(admin: Admin) -> None:
    """Let this session survive a raised session version (the ones elsewhere end)."""
    session[VERSION_KEY] = admin.session_version


def log_out() -> None:
    """End this admin's session for good: the cookie, and any copy of it, stops working."""
    admin = current_admin()
    if admin is not None:
        write_bookkeeping(admin, session_version=Admin.session_version + 1)
    session.clear()


def current_admin() -> Admin | None:
    """The logged-in admin of this request, or None (also after logout elsewhere or idling)."""
    if "opmail_admin" not in g:
        g.opmail_admin = _session_admin()
    return g.opmail_admin


def _session_admin() -> Admin | None:
    admin_id = session.get(SESSION_KEY)
    if admin_id is None:
        return None
    admin = get_session().get(Admin, admin_id)
    now = int(time.time())
    idle_limit = int(current_app.config.get("OPMAIL_IDLE_MINUTES", DEFAULT_IDLE_MINUTES)) * 60
    if (
        admin is None
        or session.get(VERSION_KEY) != admin.session_version
        or now - session.get(SEEN_KEY, 0) > idle_limit
    ):
        session.clear()
        return None
    session[SEEN_KEY] = now
    return admin


def check_admin_password(admin: Admin, password: str) -> bool:
    """Re-check the logged-in admin's own password before a destructive action.

    Wrong ones count with the login's (a stolen session cannot guess the password here); raises
    TooManyAttempts while locked.
    """
    return bool(password) and _try_password(admin, password)


def confirm_password(password: str) -> bool:
    """Check the password a delete dialog asked for: opmail's admin's own, or, when a host app
    gates access, whatever its ``confirm_password`` callable says (no callable: refused)."""
    state = current_app.extensions["opmail"]
    if state.access is not None:
        return bool(password) and state.confirm_password is not None and state.confirm_password(password)
    return check_admin_password(current_admin(), password)


def acting_admin_name() -> str:
    """Who the audit log names for this admin request: opmail's admin standalone; with the host's
    ``access``, its Flask-Login user as it prints itself (``get_id()`` when it does not say)."""
    if current_app.extensions["opmail"].access is None:
        return current_admin().username
    if getattr(current_app, "login_manager", None) is None:
        # Only the host's ``access`` callable knows who this is.
        return "host user"
    from flask_login import current_user

    user = current_user._get_current_object()
    name = str(user) if type(user).__str__ is not object.__str__ else user.get_id()
    return str(name)[:255]  # the width of admin_events.actor


def two_factor_setup_due() -> bool:
    """Must the logged-in admin turn 2FA on before anything else (``OPMAIL_REQUIRE_2FA`` for every
    admin, or a server admin's "Require 2FA" for this one)?"""
    if current_app.extensions["opmail"].access is not None:
        return False  # the host's login, the host's rules
    admin = current_admin()
    if admin is None or admin.totp_secret is not None:
        return False
    return admin.require_2fa or flag(current_app.config, "OPMAIL_REQUIRE_2FA")


def _access_answer():
    """What the host's ``access`` callable says for this request (asked once per request)."""
    if "opmail_access" not in g:
        g.opmail_access = current_app.extensions["opmail"].access()
    return g.opmail_access


def _names_domains(answer: object) -> bool:
    """Does ``access`` answer with domain names (an iterable) rather than yes or no?"""
    return isinstance(answer, Iterable) and not isinstance(answer, bool)


def admin_access_allowed() -> bool:
    """May this request use the mail admin? The host's ``access`` callable decides when given:
    a true value (every domain), a false one (no), or the names of the domains this user may
    manage (none that exists: no)."""
    if current_app.extensions["opmail"].access is None:
        return current_admin() is not None
    answer = _access_answer()
    return bool(acting_scope().domain_ids) if _names_domains(answer) else bool(answer)


def acting_scope() -> Scope:
    """The domains this admin request may manage (opmail.scope), read once per request."""
    if "opmail_acting_scope" not in g:
        if current_app.extensions["opmail"].access is None:
            g.opmail_acting_scope = admin_scope(current_admin())
        else:
            answer = _access_answer()
            g.opmail_acting_scope = scope_of_domain_names(answer) if _names_domains(answer) else EVERY_DOMAIN
    return g.opmail_acting_scope
