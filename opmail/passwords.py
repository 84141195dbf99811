"""Dovecot-compatible password hashes.

Stored values carry Dovecot's ``{SCHEME}`` prefix so that mixed schemes (after a change of
``DOVECOT_PASSWORD_SCHEME``) keep verifying. bcrypt uses the ``$2y$`` ident Dovecot and PHP write;
SHA512-CRYPT uses 5,000 rounds like ``doveadm pw`` (every IMAP login pays the cost again).
"""

from __future__ import annotations

import re
import unicodedata

from passlib.hash import bcrypt, sha512_crypt

from .addresses import InvalidInput

SCHEMES = ("BLF-CRYPT", "SHA512-CRYPT")
BCRYPT_MAX_BYTES = 72
DEFAULT_BCRYPT_ROUNDS = 12
SHA512_ROUNDS = 5000

_BCRYPT_RE = re.compile(r"\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}")
_SHA512_RE = re.compile(r"\$6\$(?:rounds=(?P<rounds>\d{1,9})\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}")
# Anything that starts like a crypt string or a Dovecot scheme is treated as an attempted hash,
# also with spaces around the scheme's name (``{ BLF-CRYPT}$2y$…``, ``{BLF-CRYPT }…``): a mangled
# prefix is a hash that went wrong on its way, never a plaintext password to hash.
_HASH_LIKE_RE = re.compile(r"\s*(?:\{\s*[A-Za-z0-9._-]+\s*\}|\$[0-9a-z]{1,2}\$)")


def validate_password(plain: str, scheme: str) -> None:
    """Raise InvalidInput when ``plain`` cannot be stored under ``scheme``."""
    if not isinstance(plain, str) or not plain.strip():
        raise InvalidInput("Enter a password.", "password")
    # Cs: a lone surrogate (JSON's "\ud800") has no UTF-8 form, so it could not be hashed.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in plain):
        raise InvalidInput("The password must not contain control characters.", "password")
    if scheme == "BLF-CRYPT" and len(plain.encode("utf-8")) > BCRYPT_MAX_BYTES:
        raise InvalidInput(
            f"The password is longer than {BCRYPT_MAX_BYTES} bytes, the most bcrypt can use.",
            "password",
        )


def hash_password(plain: str, scheme: str, *, bcrypt_rounds: int = DEFAULT_BCRYPT_ROUNDS) -> str:
    """Hash ``plain`` for Dovecot: ``{BLF-CRYPT}$2y$…`` or ``{SHA512-CRYPT}$6$rounds=5000$…``."""
    validate_password(plain, scheme)
    if scheme == "BLF-CRYPT":
        return "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=bcrypt_rounds).hash(plain)
    if scheme == "SHA512-CRYPT":
        crypt = sha512_crypt.using(rounds=SHA512_ROUNDS).hash(plain)
        # passlib leaves the default 5,000 rounds implicit; spell them out so the cost is visible.
        if not crypt.startswith("$6$rounds="):
            crypt = f"$6$rounds={SHA512_ROUNDS}$" + crypt[3:]
        return "{SHA512-CRYPT}" + crypt
    raise ValueError(f"unknown password scheme {scheme!r}")


def _split_scheme(stored: str) -> tuple[str | None, str]:
    if stored.startswith("{") and "}" in stored:
        scheme, _, rest = stored[1:].partition("}")
        return scheme.upper(), rest
    return None, stored


def is_dovecot_hash(value: str) -> bool:
    """True for a complete bcrypt or SHA512-CRYPT hash with a sane cost, prefixed or not."""
    return to_dovecot_hash(value) is not None


def to_dovecot_hash(value: str) -> str | None:
    """The stored form (scheme-prefixed) of a well-formed hash, or None if ``value`` is not one."""
    if not isinstance(value, str):
        return None
    scheme, crypt = _split_scheme(value)
    if match := _BCRYPT_RE.fullmatch(crypt):
        if scheme in (None, "BLF-CRYPT") and 4 <= int(match["cost"]) <= 15:
            return "{BLF-CRYPT}" + crypt
        return None
    if match := _SHA512_RE.fullmatch(crypt):
        rounds = int(match["rounds"] or SHA512_ROUNDS)
        if scheme in (None, "SHA512-CRYPT") and 1000 <= rounds <= 999_999:
            return "{SHA512-CRYPT}" + crypt
    return None


def looks_like_hash(value: str) -> bool:
    """True when ``value`` starts like a hash or a Dovecot scheme (even a malformed one)."""
    return bool(_HASH_LIKE_RE.match(value))


def verify_password(plain: str, stored: str) -> bool:
    """Check ``plain`` against a stored BLF-CRYPT or SHA512-CRYPT hash, with or without prefix."""
    _, crypt = _split_scheme(stored or "")
    try:
        if crypt.startswith("$2"):
            return bcrypt.verify(plain, crypt)
        if crypt.startswith("$6$"):
            return sha512_crypt.verify(plain, crypt)
    except ValueError:
        # Over-long secrets and malformed hashes are simply not a match.
        return False
    return False
