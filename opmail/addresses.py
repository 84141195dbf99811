"""Address and domain validation: one function each, used by forms, bulk fields, search and webhook.

Rules follow ``docs/bad-input.md``: Dovecot's default login characters in the local part, hostname
rules for the domain, IDNA stored as ``xn--`` and shown in Unicode, everything lower-case.
"""

from __future__ import annotations

import encodings.idna
import re
import unicodedata

MAX_ADDRESS = 254
MAX_LOCAL = 64
MAX_DOMAIN = 253
MAX_LABEL = 63

LOCAL_ALLOWED = "a-z 0-9 . _ -"
_LOCAL_RE = re.compile(r"[a-z0-9._-]+")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


class InvalidInput(ValueError):
    """A value a user typed or sent is not acceptable; the message says why, naming no secret."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _refuse_invisible(value: str, what: str) -> None:
    # Cc = control (CR, LF, NUL); Cf = format (zero-width, bidi overrides): both disguise addresses.
    # Cs = a lone surrogate (JSON's "\ud800"): not text at all, it cannot even be encoded as UTF-8.
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise InvalidInput(f"{what} must not contain control or invisible characters.")


def _ascii_label(label: str) -> str:
    """One domain label in its ASCII (``xn--``) form, checked against hostname rules."""
    if not label:
        raise InvalidInput("The domain must not have empty labels (two dots in a row).")
    if not label.isascii():
        try:
            label = encodings.idna.ToASCII(label).decode("ascii")
        except UnicodeError:
            raise InvalidInput("The domain is not a valid international host name.") from None
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"Each part of the domain must be at most {MAX_LABEL} characters.")
    if not _LABEL_RE.fullmatch(label):
        raise InvalidInput(
            "The domain may only contain letters, digits and hyphens, "
            "and no part may start or end with a hyphen."
        )
    return label


def normalize_domain(raw: str) -> str:
    """Return the stored form of a domain (lower-case, IDNA ``xn--``) or raise InvalidInput."""
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("Enter a domain name.")
    _refuse_invisible(raw, "The domain")
    if any(ch.isspace() for ch in raw):
        raise InvalidInput("The domain must not contain spaces.")
    if raw.endswith("."):
        raise InvalidInput("The domain must not end with a dot.")
    if raw.startswith("[") or "@" in raw:
        raise InvalidInput("Enter a domain name such as example.com.")
    labels = [_ascii_label(label) for label in raw.lower().split(".")]
    ascii_form = ".".join(labels)
    if len(ascii_form) > MAX_DOMAIN:
        raise InvalidInput(f"The domain is longer than {MAX_DOMAIN} characters.")
    if len(labels) < 2:
        raise InvalidInput("The domain needs at least two labels, such as example.com.")
    if labels[-1].isdigit():
        raise InvalidInput("IP addresses are not accepted as mail domains.")
    return ascii_form


def normalize_address(raw: str) -> str:
    """Return the stored form of a mail address (lower-case, IDNA domain) or raise InvalidInput.

    Callers decide about surrounding spaces: forms strip them first, the webhook refuses them.
    """
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("Enter an email address.")
    _refuse_invisible(raw, "The email address")
    if any(ch.isspace() for ch in raw):
        raise InvalidInput("The email address must not contain spaces.")
    if raw.count("@") != 1:
        raise InvalidInput("Enter a full email address such as jane@example.com (exactly one @).")
    local, domain = raw.lower().split("@")
    if not local:
        raise InvalidInput("The part before @ is empty.")
    if len(local.encode()) > MAX_LOCAL:
        raise InvalidInput(f"The part before @ is longer than {MAX_LOCAL} characters.")
    if not _LOCAL_RE.fullmatch(local):
        raise InvalidInput(f"The part before @ may only contain {LOCAL_ALLOWED}.")
    if local[0] in ".-":
        raise InvalidInput("The part before @ must not start with a dot or hyphen.")
    if local.endswith(".") or ".." in local:
        raise InvalidInput("The part before @ must not end with a dot or have two dots in a row.")
    address = f"{local}@{normalize_domain(domain)}"
    if len(address) > MAX_ADDRESS:
        raise InvalidInput(f"The email address is longer than {MAX_ADDRESS} characters.")
    return address


MAX_ADMIN_NAME = 64
# Characters that show as nothing but are not in the format category (Cf): the combining grapheme
# joiner, Hangul fillers, Khmer inherent vowels, the Mongolian and other variation selectors.
_INVISIBLE_MARKS = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\uffa0\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def normalize_admin_name(raw: str) -> str:
    """The one form of an admin's name (NFKC, lower-case), or InvalidInput for an invisible character.

    ``BOB`` and full-width ``ｂｏｂ`` are ``bob``; ``bób`` is another name, and ``bob`` with a
    zero-width space is refused rather than quietly matched. The same at creation and at login.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("Enter a username.")
    _refuse_invisible(raw, "The username")
    if _INVISIBLE_MARKS.search(raw) or any(unicodedata.category(ch) in ("Co", "Cn") for ch in raw):
        raise InvalidInput("The username must not contain control or invisible characters.")
    name = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw.strip()).lower())
    _refuse_invisible(name, "The username")
    if len(name) > MAX_ADMIN_NAME:
        raise InvalidInput(f"The username is longer than {MAX_ADMIN_NAME} characters.")
    return name


def display_domain(stored: str) -> str:
    """Show an ``xn--`` domain in Unicode (the stored form is kept when it does not decode)."""
    try:
        return stored.encode("ascii").decode("idna")
    except UnicodeError:
        return stored


def display_address(stored: str) -> str:
    """Show an address with its domain in Unicode."""
    local, _, domain = stored.partition("@")
    return f"{local}@{display_domain(domain)}" if domain else stored
