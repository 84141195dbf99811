"""Address and domain validation: one function each, used by forms, bulk fields, search and webhook.

Rules follow ``docs/bad-input.md``: Dovecot's default login characters in the local part, hostname
rules for the domain, IDNA 2008 (UTS 46, non-transitional: ``faß.de`` is ``xn--fa-hia.de``, not
``fass.de``) stored as ``xn--`` and shown in Unicode, everything lower-case.
"""

from __future__ import annotations

import re
import unicodedata

import idna

MAX_ADDRESS = 254
MAX_LOCAL = 64
MAX_DOMAIN = 253
MAX_LABEL = 63

LOCAL_ALLOWED = "a-z 0-9 . _ -"
_LOCAL_RE = re.compile(r"[a-z0-9._-]+")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# \s on a str pattern is what str.isspace() calls a space (any Unicode space), found in one pass.
_SPACE_RE = re.compile(r"\s")


class InvalidInput(ValueError):
    """A value a user typed or sent is not acceptable; the message says why, naming no secret."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _refuse_invisible(value: str, what: str) -> None:
    # Cc = control (CR, LF, NUL); Cf = format (zero-width, bidi overrides): both disguise addresses.
    # Cs = a lone surrogate (JSON's "\ud800"): not text at all, it cannot even be encoded as UTF-8.
    # isprintable() is False for each of these (and for other separators and unassigned code
    # points): only then is the slower look at each character needed.
    if not value.isprintable() and any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise InvalidInput(f"{what} must not contain control or invisible characters.")


# Scripts that may share one label (UTS 39's "highly restrictive" level): one script alone, or
# Latin with the scripts Japanese, Chinese and Korean writing mix. Anything else in one label
# (Cyrillic "а" inside a Latin word) is a look-alike of another name.
_SCRIPT_MIXES = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)
# First words of Unicode character names that name no script of their own (Common letters).
_NO_SCRIPT = {"MODIFIER", "KATAKANA-HIRAGANA"}


def _script(ch: str) -> str | None:
    """The script of a letter, read from its Unicode name (the standard library has no Script
    property); None for what belongs to every script (digits, hyphen, marks)."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    first = unicodedata.name(ch, "").split(" ")[0]
    if first in _NO_SCRIPT:
        return None
    return "HAN" if first in ("CJK", "IDEOGRAPHIC") else first


def _refuse_mixed_scripts(label: str) -> None:
    scripts = {script for ch in label if (script := _script(ch))}
    if len(scripts) > 1 and not any(scripts <= mix for mix in _SCRIPT_MIXES):
        names = " and ".join(sorted(name.title() for name in scripts))
        raise InvalidInput(
            f"The domain part {label!r} mixes {names} letters, as look-alikes of other names do: "
            "write each part in one script."
        )


def _is_punycode(label: str) -> bool:
    """Whether an ``xn--`` label decodes at all (whatever IDNA 2008 then says of its characters)."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return False
    return bool(decoded) and not decoded.isascii()


def _ascii_label(label: str) -> str:
    """One domain label in its ASCII (``xn--``) form, checked against hostname rules.

    IDNA 2008 with the UTS 46 mapping (the ``idna`` package): the standard library's codec is
    IDNA 2003, which turns ``faß`` into ``fass``, another domain. An ``xn--`` label must be valid
    punycode of a label IDNA 2008 accepts; either form is refused when it mixes scripts.
    """
    if not label:
        raise InvalidInput("The domain must not have empty labels (two dots in a row).")
    if not label.isascii() or label.startswith("xn--"):
        try:
            unicode_label = idna.decode(idna.encode(label, uts46=True, transitional=False))
            ascii_label = idna.encode(unicode_label).decode("ascii")
        except idna.IDNAError as error:
            if "too long" in str(error).lower():
                raise InvalidInput(f"Each part of the domain must be at most {MAX_LABEL} characters.") from None
            if label.startswith("xn--") and not _is_punycode(label):
                raise InvalidInput(
                    f"The domain part {label!r} is not valid punycode (an xn-- name must decode to "
                    "an international name)."
                ) from None
            raise InvalidInput(
                f"The domain part {label!r} is not a valid international host name (IDNA 2008): "
                "it holds a character or a form of one that domain names do not allow."
            ) from None
        except UnicodeError:  # a label too long for punycode to encode at all
            raise InvalidInput(f"Each part of the domain must be at most {MAX_LABEL} characters.") from None
        _refuse_mixed_scripts(unicode_label)
        label = ascii_label
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
    if _SPACE_RE.search(raw):
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
    if _SPACE_RE.search(raw):
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
    if "xn--" not in stored:
        return stored
    try:
        return idna.decode(stored)
    except (idna.IDNAError, UnicodeError):
        return stored


def unicode_domain(stored: str) -> str | None:
    """The Unicode form of a stored ``xn--`` domain, which Dovecot and Postfix also look up (a login
    as ``anna@bücher.example``); None for a domain that is ASCII in both forms."""
    shown = display_domain(stored)
    return shown if shown != stored else None


def display_address(stored: str) -> str:
    """Show an address with its domain in Unicode."""
    local, _, domain = stored.partition("@")
    return f"{local}@{display_domain(domain)}" if domain else stored
