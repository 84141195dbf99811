"""Two-factor authentication (TOTP) for opmail's own admins: enrolment, codes, recovery, reset.

The rules only: the login's pending step lives in ``opmail.auth``, the pages in
``opmail.admin.two_factor`` and ``opmail.admin.login``. Each state change is one UPDATE whose
WHERE clause carries the check (a code step not used yet, the recovery codes as they were read),
so two requests racing with the same code cannot both pass.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import NoReturn

import pyotp

from .addresses import InvalidInput
from .auth import count_failure, find_admin, refuse_while_locked, write_bookkeeping
from .models import Admin, utcnow

ISSUER = "opmail"
RECOVERY_CODE_COUNT = 8
RECOVERY_CODE_LENGTH = 10
# Read off paper and typed by hand: no 0/o, 1/l/i. 31 symbols ^ 10 ≈ 2^49 per code.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
# [0-9], not \d, and a full match: \d and pyotp's own comparison (NFKC) also take other scripts'
# digits and full-width ones; "$" would let a trailing newline through.
_CODE = re.compile(r"[0-9]{6}")

BAD_CODE = "Code: enter the 6 digits (0-9) your authenticator app shows, without spaces."
WRONG_CODE = "Code: not the right code. Check the clock of the device your app runs on."
USED_CODE = "Code: that code was used already. Wait for the next one."
BAD_RECOVERY = "Recovery code: enter one of your 10-character recovery codes, e.g. abcde-fghjk."
WRONG_RECOVERY = "Recovery code: not one of your unused recovery codes."
START_AGAIN = "No key is waiting to be confirmed any more: set up two-factor authentication again."


def is_on(admin: Admin) -> bool:
    return admin.totp_secret is not None


def new_secret() -> str:
    """A fresh TOTP secret: 32 base32 characters (160 bits, RFC 4226's recommended length)."""
    return pyotp.random_base32()


def start_enrolment(admin: Admin) -> str | None:
    """The key ``admin`` is enrolling: a new one kept on its row until a code confirms it, or the
    one already waiting (a second window shows the same QR code). None when 2FA is on already."""
    write_bookkeeping(
        admin,
        Admin.totp_secret.is_(None),
        Admin.totp_pending_secret.is_(None),
        totp_pending_secret=new_secret(),
    )
    return None if is_on(admin) else admin.totp_pending_secret


def provisioning_uri(secret: str, account_name: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=ISSUER)


def remaining_recovery_codes(admin: Admin) -> int:
    return len(json.loads(admin.totp_recovery_codes or "[]"))


def _check_format(code: str) -> None:
    if not _CODE.fullmatch(code or ""):
        raise InvalidInput(BAD_CODE, "code")


def _matching_step(secret: str, code: str) -> int | None:
    """The time step, now or one either side (clock drift), whose code is ``code``; else None.

    ``pyotp.TOTP.verify(code, valid_window=1)`` does the same but only says whether: the replay
    guard needs to know which step matched.
    """
    totp = pyotp.TOTP(secret)
    now = totp.timecode(time.time())
    for step in (now + 1, now, now - 1):
        if hmac.compare_digest(code, totp.generate_otp(step)):
            return step
    return None


def enable(admin: Admin, code: str) -> list[str]:
    """Turn 2FA on with the key being enrolled once ``code`` proves the app has it; the new
    recovery codes.

    A wrong code here is not counted against the admin: it proves the app, not who is typing.
    Other sessions of the admin end (they were opened without a code).
    """
    secret = admin.totp_pending_secret
    if secret is None:
        raise InvalidInput(START_AGAIN, "code")
    _check_format(code)
    step = _matching_step(secret, code)
    if step is None:
        raise InvalidInput(WRONG_CODE, "code")
    codes, hashes = _new_recovery_codes()
    turned_on = write_bookkeeping(
        admin,
        Admin.totp_secret.is_(None),  # another window may have turned it on meanwhile
        Admin.totp_pending_secret == secret,  # with the key this page showed
        logged_as="admin.2fa_on",
        totp_secret=secret,
        totp_pending_secret=None,
        totp_last_step=step,  # the code typed now cannot log in again
        totp_recovery_codes=hashes,
        session_version=Admin.session_version + 1,
        updated_at=utcnow(),
    )
    if not turned_on:
        if is_on(admin):
            raise InvalidInput("Two-factor authentication is already on (from another window).", "code")
        raise InvalidInput(START_AGAIN, "code")  # reset meanwhile (flask opmail reset-admin-2fa)
    return codes


def verify_code(admin: Admin, code: str) -> None:
    """Accept ``code`` for ``admin``'s login, once; else InvalidInput (TooManyAttempts when locked).

    Wrong and replayed codes count toward the lock on wrong passwords; the right one forgives them.
    """
    refuse_while_locked(admin)
    _check_format(code)
    step = _matching_step(admin.totp_secret, code)
    if step is None:
        _refuse(admin, WRONG_CODE, "code")
    # A step at or before the last one used is refused: a code seen over a shoulder or in a proxy
    # log, or an older code after a newer one, cannot be used.
    last = Admin.totp_last_step
    unused = last.is_(None) | (last < step)
    if not write_bookkeeping(admin, unused, totp_last_step=step, failed_logins=0, locked_until=None):
        _refuse(admin, USED_CODE, "code")


def use_recovery_code(admin: Admin, typed: str) -> int:
    """Log in with one of ``admin``'s recovery codes, which is then gone; how many are left."""
    refuse_while_locked(admin)
    code = _normalise_recovery_code(typed)
    digest = _hash_recovery_code(code)
    # Another login may spend a different code between our read and our write: then read again.
    for _ in range(3):
        stored = admin.totp_recovery_codes
        hashes = json.loads(stored or "[]")
        if digest not in hashes:
            break
        left = [h for h in hashes if h != digest]
        if write_bookkeeping(
            admin,
            Admin.totp_recovery_codes == stored,
            totp_recovery_codes=json.dumps(left),
            failed_logins=0,
            locked_until=None,
        ):
            return len(left)
    _refuse(admin, WRONG_RECOVERY, "recovery_code")


def new_recovery_codes(admin: Admin) -> list[str]:
    """Replace ``admin``'s recovery codes with 8 new ones (the old ones stop working)."""
    codes, hashes = _new_recovery_codes()
    if not write_bookkeeping(
        admin, Admin.totp_secret.is_not(None), logged_as="admin.2fa_codes", totp_recovery_codes=hashes
    ):
        raise InvalidInput("Two-factor authentication is off: turn it on first.")
    return codes


def disable(admin: Admin) -> None:
    """Turn ``admin``'s 2FA off (the page asks for the password first)."""
    write_bookkeeping(admin, logged_as="admin.2fa_off", updated_at=utcnow(), **_OFF)


def reset(username: str) -> bool:
    """Turn 2FA off for ``username`` and end its sessions (a lost phone); False when unknown."""
    admin = find_admin(username)
    if admin is None:
        return False
    write_bookkeeping(
        admin,
        logged_as="admin.2fa_reset",
        session_version=Admin.session_version + 1,
        updated_at=utcnow(),
        **_OFF,
    )
    return True


_OFF = {"totp_secret": None, "totp_pending_secret": None, "totp_last_step": None, "totp_recovery_codes": None}


def _refuse(admin: Admin, message: str, field: str) -> NoReturn:
    count_failure(admin)  # raises TooManyAttempts when this one earns a lock
    raise InvalidInput(message, field)


def _new_recovery_codes() -> tuple[list[str], str]:
    """8 codes shown once as ``abcde-fghjk``, and the JSON list of their hashes to store."""
    codes = [
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    hashes = json.dumps([_hash_recovery_code(code) for code in codes])
    half = RECOVERY_CODE_LENGTH // 2
    return [f"{code[:half]}-{code[half:]}" for code in codes], hashes


def _normalise_recovery_code(typed: str) -> str:
    """The code as stored: lower case, no hyphen or spaces (as people type it); else InvalidInput."""
    code = (typed or "").strip().lower().replace("-", "").replace(" ", "")
    if len(code) != RECOVERY_CODE_LENGTH or not set(code) <= set(RECOVERY_ALPHABET):
        raise InvalidInput(BAD_RECOVERY, "recovery_code")
    return code


def _hash_recovery_code(code: str) -> str:
    # SHA-256, not bcrypt: a code is ~49 random bits, guessed online only 5 at a time before the
    # lock, and whoever can read this column for an offline search reads totp_secret beside it.
    # The hash keeps the codes themselves out of the database, its dumps and backups.
    return hashlib.sha256(code.encode("ascii")).hexdigest()
