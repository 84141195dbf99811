"""The autoresponder's Sieve script: what opmail stores for Pigeonhole (what Pigeonhole does with
it is in test_mail_flow.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime

import pytest

from opmail.sieve import quote, vacation_script
from tests.conftest import require

# Subjects and bodies an attacker (or a careless admin) might type, to end the string early.
NASTY = [
    '"; discard; "',
    'x" :days 0 "y',
    "back\\slash at the end\\",
    '\\"',
    "${hex:22} ${1} ${unicode:0022}",
    'line one\ntext:\n.\nredirect "thief@example.net";',
    "# not a comment /* nor this */",
]


@pytest.mark.parametrize("text", NASTY)
def test_quote_round_trips_through_sieve_unescaping(text):
    quoted = quote(text)
    assert quoted.startswith('"') and quoted.endswith('"')
    # RFC 5228 2.4.2: a backslash takes the next character as it is.
    assert re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.S) == text
    # No unescaped double quote inside: the string ends where opmail says.
    assert not re.search(r'(?<!\\)(\\\\)*"', quoted[1:-1])


def test_script_without_dates_always_answers():
    script = vacation_script("jane@example.com", "Away", "Back soon.")
    assert 'require ["vacation"];' in script
    assert 'vacation :days 7 :subject "Away" "Back soon.";' in script
    assert "currentdate" not in script


def test_script_with_dates_compares_utc_moments():
    script = vacation_script(
        "jane@example.com", "Away", "Back soon.", datetime(2026, 7, 1), datetime(2026, 7, 14, 23, 59, 59)
    )
    assert 'require ["vacation", "date", "relational"];' in script
    assert 'currentdate :zone "+0000" :value "ge" "iso8601" "2026-07-01T00:00:00Z"' in script
    assert 'currentdate :zone "+0000" :value "le" "iso8601" "2026-07-14T23:59:59Z"' in script


@pytest.mark.parametrize("text", NASTY)
def test_pigeonhole_compiles_the_script_with_any_text(tmp_path, text):
    """sievec (Pigeonhole's compiler) accepts the script and finds one vacation action in it."""
    require(shutil.which("sievec") is not None, "dovecot-sieve is not installed (see .ci/run)")
    script = tmp_path / "opmail.sieve"
    script.write_text(vacation_script("jane@example.com", text, text, datetime(2026, 1, 1), None))
    (tmp_path / "dovecot.conf").write_text(f"mail_uid = nobody\nmail_location = maildir:{tmp_path}/mail\n")
    result = subprocess.run(
        ["sievec", "-c", str(tmp_path / "dovecot.conf"), "-d", str(script), "-"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("VACATION") == 1, result.stdout
    assert "DISCARD" not in result.stdout and "REDIRECT" not in result.stdout
