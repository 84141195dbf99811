"""The Sieve script of an autoresponder, as Dovecot's Pigeonhole runs it at delivery.

Base layer: text in, text out. The rules store the script in ``mail_sieve_scripts``, where
Pigeonhole reads it through its SQL dict (the ``mail-config`` files of ``opmail/dovecot.py``).
"""

from __future__ import annotations

from datetime import datetime

# The name Pigeonhole asks its dict for (``sieve = dict:…;name=opmail``): one script per account.
SCRIPT_NAME = "opmail"
# Each sender gets one reply per this many days (Sieve vacation's :days), however often they write.
REPLY_INTERVAL_DAYS = 7


def quote(text: str) -> str:
    """``text`` as a Sieve quoted string (RFC 5228 2.4.2): only ``\\`` and ``"`` need escaping.

    Nothing else in the text is special: without ``require "variables"`` or ``"encoded-character"``,
    ``${…}`` is plain text. Line breaks may stand inside a quoted string; NUL is refused earlier.
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _moment(value: datetime) -> str:
    # Compared with currentdate's "iso8601" in UTC, which reads 2026-11-25T08:00:00Z: the same
    # layout, so comparing the strings compares the moments.
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def vacation_script(
    email: str,
    subject: str,
    body: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    days: int = REPLY_INTERVAL_DAYS,
) -> str:
    """The script that answers mail to ``email`` with ``subject``/``body`` between the two dates
    (naive UTC, either may be open), one reply per sender every ``days`` days.

    Pigeonhole's vacation itself sends no reply to mailing lists (``List-Id``, ``Precedence: list``
    or ``bulk``), to automatic mail (``Auto-Submitted``), to an empty envelope sender or to mail
    that does not name the account among its recipients.
    """
    conditions = []
    if starts_at is not None:
        conditions.append(f'currentdate :zone "+0000" :value "ge" "iso8601" {quote(_moment(starts_at))}')
    if ends_at is not None:
        conditions.append(f'currentdate :zone "+0000" :value "le" "iso8601" {quote(_moment(ends_at))}')
    extensions = ["vacation"] + (["date", "relational"] if conditions else [])
    reply = f"vacation :days {int(days)} :subject {quote(subject)} {quote(body)};"
    lines = [
        f"# The autoresponder of {email}, written by opmail: edit it there, not here.",
        "require [" + ", ".join(quote(name) for name in extensions) + "];",
    ]
    if conditions:
        lines += ["if allof(" + ",\n         ".join(conditions) + ") {", f"  {reply}", "}"]
    else:
        lines.append(reply)
    return "\n".join(lines) + "\n"
