"""docs/bad-input.md end to end, one table per section, through the faces a user has.

Each row goes through the real endpoints (admin forms, also as htmx, the bulk action form, the delete
dialogs, the alias / autoresponder / group forms, the search box, the webhook) on SQLite and MariaDB,
and asserts what the user notices: the status, the message under the field it names (or in the
webhook's ``errors`` under that field, or in the toast), and for a refusal that a snapshot of every
table is the same before and after. Unit tests of the base functions live in test_addresses.py and
test_passwords.py; this is the one place that walks the whole spec through the faces.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import url_for
from markupsafe import escape

from opmail.db import get_session
from opmail.models import MailAutoresponder, MailDomain, MailGroup, SyncEvent
from tests.browser import save_screenshot
from tests.conftest import ADMIN_PASSWORD, AdminClient, csrf_from, log_in
from tests.helpers import (
    SYNC_SECRET,
    SYNC_URL,
    add_account,
    add_domain,
    opened_version,
    snapshot,
    sync_call,
)
from tests.test_sync import PANEL_HASH, SHA512_HASH

ACCOUNTS = "/admin/accounts/"
BULK = "/admin/accounts/action/"


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


def _domain_id(app) -> int:
    with app.app_context():
        return get_session().query(MailDomain.id).scalar()


def field_error(page: str, field: str) -> str:
    """The error text the form shows under ``field`` (the _macros.html field macro), as read."""
    match = re.search(rf'id="{field}-errors"[^>]*>(.*?)</div>\s*</div>', page, re.S)
    assert match, f"no error under the {field} field"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def toast_of(response) -> dict:
    """The toast an htmx answer announces (HX-Trigger is JSON; opmail.js shows it as text)."""
    return json.loads(response.headers["HX-Trigger"])["opmail:toast"]


def message_of(response, field: str) -> str:
    """Where each face puts the message about ``field``."""
    if response.is_json:
        return " ".join(response.json["errors"][field])
    if "HX-Trigger" in response.headers:
        return toast_of(response)["message"]
    return field_error(response.text, field)


@dataclass(frozen=True)
class Face:
    """One way in: how a value is sent, which field names it, and the status of a refusal."""

    send: Callable[[AdminClient, object], list]  # the responses (a form: plain and htmx)
    field: str
    status: int = 422


def form(url: str, field: str, *, htmx: bool = False, **other: str) -> Face:
    """A form posted like a browser; ``htmx``: also like htmx (token in the header), same answer.

    Only the forms the pages send with htmx get the htmx variant: the create forms of the lists are
    plain posts, and an htmx post there gets the list's table fragment, without the form (reported).
    """
    return Face(
        lambda admin, value: [admin.post(url, {**other, field: value}, htmx=h) for h in {False, htmx}],
        field,
    )


def webhook(field: str, **other: object) -> Face:
    return Face(lambda admin, value: [sync_call(admin.client.application.test_client(), {**other, field: value})], field)


def refused(app, admin, face: Face, value, fragment: str) -> list:
    """Send ``value`` through ``face``; every answer names the field, nothing is written."""
    before = snapshot(app)
    responses = face.send(admin, value)
    for response in responses:
        assert response.status_code == face.status, response.text[:500]
        assert fragment in message_of(response, face.field)
    assert snapshot(app) == before
    return responses


def never_echoed(responses, *secrets: str) -> None:
    for response in responses:
        for secret in secrets:
            assert secret not in response.text and secret not in response.headers.get("HX-Trigger", "")


# --- Addresses -------------------------------------------------------------------------------------

ALLOWED = "may only contain a-z 0-9 . _ -"
INVISIBLE = "control or invisible characters"
LONG_DOMAIN = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])  # 254 characters
ADDRESSES = [
    # (row, raw address, message fragment)
    ("no @", "jane.example.com", "exactly one @"),
    ("two @", "jane@doe@example.com", "exactly one @"),
    ("empty local part", "@example.com", "The part before @ is empty."),
    ("empty domain", "jane@", "Enter a domain name."),
    ("leading dot", ".jane@example.com", "must not start with a dot or hyphen"),
    ("leading hyphen", "-jane@example.com", "must not start with a dot or hyphen"),
    ("trailing dot", "jane.@example.com", "must not end with a dot or have two dots in a row"),
    ("double dot", "ja..ne@example.com", "must not end with a dot or have two dots in a row"),
    ("double dot in domain", "jane@example..com", "must not have empty labels"),
    ("leading dot in domain", "jane@.example.com", "must not have empty labels"),
    ("space", "ja ne@example.com", "must not contain spaces"),
    ("quoted with space", '"jane doe"@example.com', "must not contain spaces"),
    ("quoted", '"jane"@example.com', ALLOWED),
    ("comment", "jane(work)@example.com", ALLOWED),
    ("IP literal", "jane@[192.0.2.1]", "Enter a domain name such as example.com."),
    ("IP address domain", "jane@192.0.2.1", "IP addresses are not accepted"),
    ("single label", "jane@localhost", "at least two labels"),
    ("trailing dot in domain", "jane@example.com.", "must not end with a dot"),
    ("+tag", "jane+tag@example.com", ALLOWED),
    ("slash", "ja/ne@example.com", ALLOWED),
    ("dollar", "ja$ne@example.com", ALLOWED),
    ("backtick", "ja`ne@example.com", ALLOWED),
    ("local part 65", "a" * 65 + "@example.com", "longer than 64"),
    ("label 64", "jane@" + "a" * 64 + ".com", "at most 63"),
    ("domain 254", "jane@" + LONG_DOMAIN, "longer than 253"),
    ("address 255", "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 58, "com"]), "longer than 254"),
    ("CR", "ja\rne@example.com", INVISIBLE),
    ("LF", "ja\nne@example.com", INVISIBLE),
    ("NUL", "ja\x00ne@example.com", INVISIBLE),
    ("zero-width space", "ja\u200bne@example.com", INVISIBLE),
    ("bidi override", "ja\u202ene@example.com", INVISIBLE),
    ("zero-width in domain", "jane@exam\u200dple.com", INVISIBLE),
    # IDNA 2008 (issue 15): an xn-- label must be real punycode; one label, one script.
    ("invalid punycode", "jane@xn--zz.com", "'xn--zz' is not valid punycode"),
    ("mixed scripts", "jane@p\u0430ypal.com", "mixes Cyrillic and Latin letters"),
    ("mixed scripts as xn--", "jane@xn--pypal-4ve.com", "mixes Cyrillic and Latin letters"),
    ("not in IDNA 2008", "jane@\U0001f4a9.la", "not a valid international host name (IDNA 2008)"),
]
ADDRESS_FACES = {
    "Add Account": form(ACCOUNTS + "new/", "email", password="mail pass 1", quota_mb="0"),
    "alias address": form("/admin/aliases/new/", "alias_email", destinations="jane@example.com"),
    "alias destination": form("/admin/aliases/new/", "destinations", alias_email="sales@example.com"),
    "autoresponder": form("/admin/autoresponders/new/", "email", subject="Away", body="Back soon.", is_active="y"),
    "webhook": webhook("email", action="delete"),
}
# Rows a face reads differently, on purpose.
NOT_A_REFUSAL = {
    ("alias address", "empty local part"): "@example.com is the domain's catch-all alias",
    # A line break separates destinations: each line is then judged on its own.
    ("alias destination", "CR"): "a line break separates destinations",
    ("alias destination", "LF"): "a line break separates destinations",
}


@pytest.mark.parametrize(("name", "raw", "fragment"), ADDRESSES, ids=[row[0] for row in ADDRESSES])
def test_bad_address_is_refused_naming_the_field(app, admin, jane, subtests, name, raw, fragment):
    # One app per row, one subtest per face: the faces share the setup (the suite runs on 2 cores).
    for face in ADDRESS_FACES:
        if (face, name) not in NOT_A_REFUSAL:
            with subtests.test(face=face):
                refused(app, admin, ADDRESS_FACES[face], raw, fragment)


@pytest.mark.parametrize(
    ("face", "value", "fragment"),
    [
        ("Add Account", "", "This field is required."),
        ("Add Account", "   ", "Enter an email address."),  # trimmed, then empty
        ("alias address", "", "This field is required."),
        ("autoresponder", "", "This field is required."),
        ("webhook", None, "Enter an email address."),
        ("webhook", 5, "Enter an email address."),
        ("webhook", ["jane@example.com"], "Enter an email address."),
        # Forms trim surrounding spaces (test_admin_accounts.py); the agent must send the address as is.
        ("webhook", " jane@example.com", "must not contain spaces"),
        ("webhook", "jane@example.com\n", INVISIBLE),
        # A lone surrogate can only arrive as a JSON escape; it used to be a 500 (UnicodeEncodeError).
        ("webhook", "\ud800@example.com", INVISIBLE),
        ("webhook", "jane@\udfff.com", INVISIBLE),
    ],
)
def test_missing_or_malformed_address_is_refused(app, admin, jane, face, value, fragment):
    refused(app, admin, ADDRESS_FACES[face], value, fragment)


def test_address_in_any_case_is_a_duplicate(app, admin, jane):
    refused(app, admin, ADDRESS_FACES["Add Account"], "JANE@Example.COM", "The account jane@example.com already exists.")
    refused(app, admin, ADDRESS_FACES["alias address"], "Jane@EXAMPLE.com", "is already an account")


DOMAINS = [
    ("", "This field is required."),
    ("example..com", "must not have empty labels"),
    (".example.com", "must not have empty labels"),
    ("example.com.", "must not end with a dot"),
    ("exa mple.com", "must not contain spaces"),
    ("[192.0.2.1]", "Enter a domain name such as example.com."),
    ("192.0.2.1", "IP addresses are not accepted"),
    ("localhost", "at least two labels"),
    ("ex_ample.com", "may only contain letters, digits and hyphens"),
    ("-example.com", "no part may start or end with a hyphen"),
    ("a" * 64 + ".com", "at most 63"),
    (LONG_DOMAIN, "longer than 253"),
    ("jane@example.com", "Enter a domain name such as example.com."),
    ("exam\u200bple.com", INVISIBLE),
    ("exam\u202eple.com", INVISIBLE),
    ("example\r\n.com", INVISIBLE),
    ("EXAMPLE.com", "already exists"),
    ("xn--exmple-cua.com", "already exists"),  # exämple.com (added in the test) spelled as stored
    ("xn--zz.com", "'xn--zz' is not valid punycode"),
    ("p\u0430ypal.com", "mixes Cyrillic and Latin letters"),
    ("xn--pypal-4ve.com", "mixes Cyrillic and Latin letters"),
    ("\U0001f4a9.la", "not a valid international host name (IDNA 2008)"),
]


@pytest.mark.parametrize(("raw", "fragment"), DOMAINS, ids=[repr(raw)[:40] for raw, _ in DOMAINS])
def test_bad_domain_is_refused_naming_the_field(app, admin, jane, raw, fragment):
    add_domain(app, "exämple.com")
    refused(app, admin, form("/admin/domains/new/", "domain"), raw, fragment)


def test_search_box_takes_any_text_and_changes_nothing(app, admin, jane, subtests):
    """The search box refuses nothing: it filters (page and htmx fragment), and changes nothing."""
    before = snapshot(app)
    for name, raw in [row[:2] for row in ADDRESSES] + [("like wildcards", "%_\\"), ("SQL", "' OR 1=1 --")]:
        for url in (ACCOUNTS, "/admin/aliases/"):
            with subtests.test(url=url, row=name):
                page = admin.get(url, query_string={"q": raw})
                fragment = admin.get(url, query_string={"q": raw}, htmx=True)
                assert (page.status_code, fragment.status_code) == (200, 200)
                assert 'name="q"' in page.text and "<html" not in fragment.text
    assert snapshot(app) == before


def test_a_domain_name_cannot_be_edited_past_its_rules(app, admin, jane):
    """Flask-Admin's stock edit form used to save any text as a domain's name. The domain's page
    (its limits) has no name field: a name posted to it is ignored."""
    domain = _domain_id(app)
    before = snapshot(app)
    response = admin.post(f"/admin/domains/edit/?id={domain}", {"domain": "BAD DOMAIN", "is_active": "y"})
    assert response.status_code == 302
    assert 'name="domain"' not in admin.get(f"/admin/domains/edit/?id={domain}").text
    assert snapshot(app) == before


# --- Numbers (quota) -------------------------------------------------------------------------------

WHOLE = "whole number of MB"
RANGE = "between 0 and 10,000,000 MB"
TYPED_QUOTAS = [
    ("abc", WHOLE), ("1.5", WHOLE), ("1e3", WHOLE), ("0x10", WHOLE), ("-1", RANGE), ("10000001", RANGE),
    ("--5", WHOLE), ("٣", WHOLE), ("１２", WHOLE), ("9" * 5000, RANGE), ("true", WHOLE),
]


def bulk(jane: int, field: str, **other: str) -> Face:
    """The Bulk Actions bar over jane's row: a refusal gets the table (jane still ticked) and a toast,
    as 422."""
    return Face(
        lambda admin, value: [
            admin.post(BULK, {**other, "rowid": str(jane), field: value, "url": ACCOUNTS}, htmx=True)
        ],
        field,
    )


def quota_faces(jane: int) -> dict[str, Face]:
    return {
        "Add Account": form(ACCOUNTS + "new/", "quota_mb", email="new@example.com", password="mail pass 1"),
        "account page": form(f"{ACCOUNTS}edit/?id={jane}", "quota_mb", display_name="Jane", status="active"),
        "bulk Edit Quota": bulk(jane, "quota_mb", action="quota"),
    }


@pytest.mark.parametrize(("typed", "fragment"), TYPED_QUOTAS, ids=[t[:12] for t, _ in TYPED_QUOTAS])
def test_typed_quota_is_refused(app, admin, jane, subtests, typed, fragment):
    for face, sender in quota_faces(jane).items():
        with subtests.test(face=face):
            responses = refused(app, admin, sender, typed, fragment)
            if face == "bulk Edit Quota":
                assert toast_of(responses[0])["category"] == "error"


WEBHOOK_QUOTAS = [("string", "5"), ("float", 1.5), ("float zero", 0.0), ("exponent", 1e3), ("true", True),
                  ("false", False), ("negative", -1), ("too big", 10_000_001), ("list", [5]), ("object", {"mb": 5})]


def test_a_quota_past_the_domains_total_is_refused_on_every_face(app, admin, jane, subtests):
    with app.app_context():
        get_session().query(MailDomain).update({"total_quota_mb": 1000})
        get_session().commit()
    fragment = "Over the domain's limit: the mailboxes of example.com may use 1,000 MB together"
    faces = {
        **quota_faces(jane),
        # The account page's own version, so that only the limit can refuse it.
        "account page": Face(
            lambda admin, value: [admin.post(f"{ACCOUNTS}edit/?id={jane}", {
                "quota_mb": value, "display_name": "", "status": "active", "version": opened_version(admin, jane),
            })],
            "quota_mb",
        ),
    }
    for name, face in faces.items():
        with subtests.test(face=name):
            refused(app, admin, face, "2000", fragment)
    webhook_face = webhook("quota_mb", action="create", email="new@example.com", password="plain pass")
    responses = refused(app, admin, webhook_face, 2000, fragment)
    assert responses[0].json["error"] == "Over the domain's limit: total_quota_mb."


LIMITS_TYPED = [("letters", "abc", "Enter a whole number"), ("negative", "-5", "Enter a whole number"),
                ("decimal", "1.5", "Enter a whole number"), ("huge", "9" * 40, "Enter a whole number")]


@pytest.mark.parametrize(("typed", "fragment"), [r[1:] for r in LIMITS_TYPED], ids=[r[0] for r in LIMITS_TYPED])
@pytest.mark.parametrize("field", ["max_accounts", "max_aliases", "total_quota_mb", "default_quota_mb"])
def test_a_bad_domain_limit_is_refused_naming_the_field(app, admin, jane, field, typed, fragment):
    blank = {"max_accounts": "", "max_aliases": "", "total_quota_mb": "", "default_quota_mb": ""}
    face = form(f"/admin/domains/edit/?id={_domain_id(app)}", field, **blank)
    refused(app, admin, face, typed, fragment)


@pytest.mark.parametrize("quota", [q for _, q in WEBHOOK_QUOTAS], ids=[name for name, _ in WEBHOOK_QUOTAS])
def test_webhook_quota_must_be_a_json_integer_in_range(app, admin, jane, quota):
    face = webhook("quota_mb", action="create", email="new@example.com", password="plain pass")
    refused(app, admin, face, quota, "Quota must be")


HUGE = str(2**64)  # no database id: SQLite used to raise OverflowError (a 500) binding it
OUT_OF_RANGE_URLS = [
    f"{ACCOUNTS}edit/?id={HUGE}", f"{ACCOUNTS}delete/?id={HUGE}", f"/admin/domains/delete/?id={HUGE}",
    f"/admin/groups/edit/?id={HUGE}", f"/admin/autoresponders/edit/?id={HUGE}",
    f"{ACCOUNTS}?domain={HUGE}", f"/admin/aliases/?domain={HUGE}", f"{ACCOUNTS}?page={HUGE}",
    f"/admin/sync-log/?page={HUGE}", "/admin/sync-log/?page=-3", f"{ACCOUNTS}?page={'9' * 5000}",
]


@pytest.mark.parametrize("url", OUT_OF_RANGE_URLS)
def test_ids_and_page_numbers_out_of_range_are_not_found_or_empty(app, admin, jane, url):
    before = snapshot(app)
    assert admin.get(url).status_code in (200, 404)
    assert snapshot(app) == before


@pytest.mark.parametrize("field", ["rowid", "group_id"])
def test_bulk_ids_out_of_range_change_nothing(app, admin, jane, field):
    data = {"action": "group", "rowid": str(jane), "group_id": "1", field: HUGE, "url": ACCOUNTS}
    before = snapshot(app)
    response = admin.post(BULK, data, htmx=True)
    assert (response.status_code, toast_of(response)["message"]) in (
        (200, "0 accounts added to the group. 1 selected row skipped: no longer there."),
        (422, "Choose a group first."),
    )
    assert snapshot(app) == before


def test_quota_zero_is_unlimited_not_a_refusal(app, admin, jane):
    response = admin.post(
        f"{ACCOUNTS}edit/?id={jane}",
        {"display_name": "", "quota_mb": "0", "status": "active", "version": opened_version(admin, jane)},
    )
    assert response.status_code == 302
    assert "Unlimited" in admin.get(ACCOUNTS).text


# --- Text shown back -------------------------------------------------------------------------------

PAYLOADS = {
    "script": "<script>alert(1)</script>",
    "img onerror": '"><img src=x onerror=alert(1)>',
    "htmx attribute": '<b hx-post="/admin/logout" hx-trigger="load">x</b>',
}


def shown_escaped(page: str, payload: str) -> bool:
    """The payload is on the page as text (escaped), never as markup."""
    return payload not in page and str(escape(payload)) in page


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_display_name_is_stored_as_text_and_shown_escaped(app, admin, jane, payload):
    saved = admin.post(
        f"{ACCOUNTS}edit/?id={jane}",
        {"display_name": payload, "quota_mb": "0", "status": "active", "version": opened_version(admin, jane)},
    )
    assert saved.status_code == 302
    assert shown_escaped(admin.get(ACCOUNTS).text, payload)
    assert shown_escaped(admin.get(ACCOUNTS, htmx=True).text, payload)  # the rows fragment
    assert shown_escaped(admin.get(saved.location).text, payload)  # the account page's form
    # The toast of a bulk action over that row: JSON text (opmail.js shows it with textContent),
    # and the swapped-in fragment escapes the name.
    bulk = admin.post(BULK, {"action": "suspend", "rowid": str(jane), "url": ACCOUNTS}, htmx=True)
    assert toast_of(bulk) == {"message": "1 account suspended.", "category": "success"}
    assert bulk.headers["HX-Trigger"].isascii() and shown_escaped(bulk.text, payload)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_autoresponder_text_is_shown_escaped(app, admin, jane, payload):
    saved = admin.post(
        "/admin/autoresponders/new/",
        {"email": "jane@example.com", "subject": payload, "body": payload, "is_active": "y"},
    )
    assert saved.status_code == 302
    assert shown_escaped(admin.get("/admin/autoresponders/").text, payload)  # subject in the list
    with app.app_context():
        reply_id = get_session().query(MailAutoresponder.id).scalar()
    edit = admin.get(f"/admin/autoresponders/edit/?id={reply_id}").text
    assert edit.count(str(escape(payload))) >= 2 and payload not in edit  # subject input, body textarea


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_group_name_and_description_are_shown_escaped_also_in_the_flash(app, admin, jane, payload):
    saved = admin.post("/admin/groups/new/", {"name": payload, "description": payload})
    assert saved.status_code == 302
    listing = admin.get(saved.location).text  # with the flash "Group … added."
    assert shown_escaped(listing, f"Group {payload} added.") and shown_escaped(listing, payload)
    with app.app_context():
        group_id = get_session().query(MailGroup.id).scalar()
    assert shown_escaped(admin.get(f"/admin/groups/edit/?id={group_id}").text, payload)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_a_refused_destination_is_quoted_escaped_in_the_error(app, admin, jane, payload):
    # The message quotes the line it refuses: the payload itself, as text.
    responses = refused(app, admin, ADDRESS_FACES["alias destination"], payload, payload)
    for response in responses:
        assert shown_escaped(response.text, payload)


FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)", "|calc", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)"]


@pytest.mark.parametrize("name", FORMULAS, ids=[repr(name[0]) for name in FORMULAS])
def test_a_display_name_a_spreadsheet_would_run_is_exported_as_text(app, admin, jane, name):
    """CSV injection: a cell a spreadsheet reads as a formula (also "|" and the full-width = + - @)
    gets a leading ' in the export."""
    form = {"display_name": name, "quota_mb": "0", "status": "active", "version": opened_version(admin, jane)}
    assert admin.post(f"{ACCOUNTS}edit/?id={jane}", form).status_code == 302
    export = admin.get(f"{ACCOUNTS}export/")
    assert export.status_code == 200
    assert export.text.splitlines()[1].split(",")[1] == "'" + name


def test_sync_log_shows_what_the_agent_sent_as_text(app, admin, jane):
    """The sync log only ever holds checked addresses; what it shows is escaped all the same."""
    assert sync_call(app.test_client(), {"action": "delete", "email": "jane@example.com", "display_name": PAYLOADS["script"]}).status_code == 200
    page = admin.get("/admin/sync-log/").text
    assert "jane@example.com" in page and PAYLOADS["script"] not in page


OVER_THE_LIMIT = [
    # (row, face, value, field message)
    ("display name 256", "display_name", "x" * 256, "longer than 255"),
    ("display name two lines", "display_name", "Jane\nDoe", "one line"),
    ("subject 256", "subject", "x" * 256, "at most 255"),
    ("subject two lines", "subject", "Away\r\nBcc: x@example.org", "one line"),
    # 65,536 bytes in 32,768 characters: MariaDB's TEXT would have refused them (a 500).
    ("reply text 65,536 bytes", "body", "é" * 32_768, "at most 65,535 bytes"),
    ("reply text NUL", "body", "a\x00b", "must not contain NUL"),
    ("group name 256", "name", "x" * 256, "at most 255"),
    ("group description 65,536 bytes", "description", "é" * 32_768, "at most 65,535 bytes"),
]


@pytest.mark.parametrize(("field", "value", "fragment"), [r[1:] for r in OVER_THE_LIMIT], ids=[r[0] for r in OVER_THE_LIMIT])
def test_text_over_the_field_limit_is_refused(app, admin, jane, field, value, fragment):
    faces = {
        "display_name": form(f"{ACCOUNTS}edit/?id={jane}", "display_name", quota_mb="0", status="active"),
        "subject": form("/admin/autoresponders/new/", "subject", email="jane@example.com", body="b", is_active="y"),
        "body": form("/admin/autoresponders/new/", "body", email="jane@example.com", subject="s", is_active="y"),
        "name": form("/admin/groups/new/", "name", description=""),
        "description": form("/admin/groups/new/", "description", name="staff"),
    }
    refused(app, admin, faces[field], value, fragment)


# --- Passwords and hashes --------------------------------------------------------------------------

PASSWORDS = [
    ("empty", "", "This field is required.", "Enter the password"),
    ("whitespace only", "   ", "Enter a password.", "Enter a password."),
    ("tab and spaces", "\t \t", "Enter a password.", "Enter a password."),
    ("control character", "pass\x07word", "control characters", "control characters"),
    ("NUL", "pass\x00word", "control characters", "control characters"),
    ("73 bytes", "a" * 73, "longer than 72 bytes", "longer than 72 bytes"),
    ("37 two-byte characters", "é" * 37, "longer than 72 bytes", "longer than 72 bytes"),
]


@pytest.mark.parametrize(("plain", "form_fragment", "_"), [r[1:] for r in PASSWORDS], ids=[r[0] for r in PASSWORDS])
def test_bad_password_in_the_forms_is_refused_and_never_echoed(app, admin, jane, plain, form_fragment, _):
    add_account = form(ACCOUNTS + "new/", "password", email="new@example.com", quota_mb="0")
    never_echoed(refused(app, admin, add_account, plain, form_fragment), *[plain] * bool(plain.strip()))
    # Reset Password has no "required" of its own: the rule says "Enter a password." there.
    reset = form(f"{ACCOUNTS}password/?id={jane}", "new_password", confirm_password=plain)
    reset_fragment = "Enter a password." if form_fragment == "This field is required." else form_fragment
    never_echoed(refused(app, admin, reset, plain, reset_fragment), *[plain] * bool(plain.strip()))


def test_reset_password_confirmation_must_match(app, admin, jane):
    reset = form(f"{ACCOUNTS}password/?id={jane}", "confirm_password", new_password="first secret")
    never_echoed(refused(app, admin, reset, "second secret", "do not match"), "first secret", "second secret")


@pytest.mark.parametrize(("plain", "fragment"), [(r[1], r[3]) for r in PASSWORDS], ids=[r[0] for r in PASSWORDS])
@pytest.mark.parametrize("action", ["create", "password"])
def test_bad_plaintext_in_the_webhook_is_422(app, admin, jane, action, plain, fragment):
    face = webhook("password", action=action, email="jane@example.com")
    never_echoed(refused(app, admin, face, plain, fragment), *[plain] * bool(plain.strip()))


# The password policy (OPMAIL_PASSWORD_MIN_LENGTH, 10 here): every form, never the Panel's calls.
SHORT_PASSWORDS = [("one character", "Q", 1), ("nine characters", "123456789", 9), ("nine with spaces", " a b c d ", 9)]


@pytest.mark.parametrize(("plain", "length"), [r[1:] for r in SHORT_PASSWORDS], ids=[r[0] for r in SHORT_PASSWORDS])
def test_a_password_under_the_policy_is_refused_in_the_forms_not_from_the_panel(app, admin, jane, plain, length):
    fragment = f"The password must be at least 10 characters long (it has {length})."
    add_account = form(ACCOUNTS + "new/", "password", email="new@example.com", quota_mb="0")
    # One character is on every page anyway (in the CSRF token); longer ones must not be.
    never_echoed(refused(app, admin, add_account, plain, fragment), *[plain] * (len(plain) > 4))
    reset = form(f"{ACCOUNTS}password/?id={jane}", "new_password", confirm_password=plain)
    never_echoed(refused(app, admin, reset, plain, fragment), *[plain] * (len(plain) > 4))
    # The Panel enforces its own policy: its plaintext is stored as sent (docs/sync-webhook.md).
    assert sync_call(admin.client.application.test_client(), {"action": "password", "email": "jane@example.com", "password": plain}).status_code == 200


HASH_LIKE = "looks like a hash"
BAD_HASHES = [
    ("{PLAIN}", "{PLAIN}secret"),
    ("{PLAIN} empty", "{PLAIN}"),
    ("{MD5-CRYPT}", "{MD5-CRYPT}$1$saltsalt$hlDSmnqJgLtspUXgWk8r5."),
    ("MD5-crypt", "$1$saltsalt$hlDSmnqJgLtspUXgWk8r5."),
    ("{CRYPT} (DES)", "{CRYPT}abJnggxhB/yWI"),
    ("{SHA256-CRYPT}", "{SHA256-CRYPT}$5$rounds=5000$salt$" + "a" * 43),
    ("truncated bcrypt", PANEL_HASH[:-10]),
    ("bcrypt ident only", "$2y$12$"),
    ("bcrypt cost 03", "$2y$03$" + PANEL_HASH[7:]),
    ("bcrypt cost 16", "$2y$16$" + PANEL_HASH[7:]),
    ("bcrypt cost 31", "$2y$31$" + PANEL_HASH[7:]),  # the contract: cost 4-15 (docs/sync-webhook.md)
    ("bcrypt under another scheme", "{SHA512-CRYPT}" + PANEL_HASH),
    ("truncated SHA512-CRYPT", SHA512_HASH[:-5]),
    ("SHA512-CRYPT 999 rounds", SHA512_HASH.replace("$6$", "$6$rounds=999$", 1)),
    ("SHA512-CRYPT 1,000,000 rounds", SHA512_HASH.replace("$6$", "$6$rounds=1000000$", 1)),
    # A mangled scheme prefix (issue 15): it used to be hashed as a plaintext password.
    ("space before the scheme", "{ BLF-CRYPT}" + PANEL_HASH),
    ("space after the scheme", "{BLF-CRYPT }" + PANEL_HASH),
    ("space before the prefix", " {BLF-CRYPT}" + PANEL_HASH),
]


@pytest.mark.parametrize("value", [v for _, v in BAD_HASHES], ids=[name for name, _ in BAD_HASHES])
@pytest.mark.parametrize("action", ["create", "password"])
def test_malformed_or_unsupported_hash_is_422_and_never_echoed(app, admin, jane, action, value):
    face = webhook("password", action=action, email="jane@example.com")
    never_echoed(refused(app, admin, face, value, HASH_LIKE), value)


def test_a_bare_des_crypt_is_a_plaintext_password(app, admin, jane):
    """Deliberate: without its {CRYPT} prefix a DES crypt is 13 ordinary characters, and the contract
    takes any other string as a plaintext password (docs/sync-webhook.md); it is hashed, not stored as is."""
    response = sync_call(app.test_client(), {"action": "password", "email": "jane@example.com", "password": "abJnggxhB/yWI"})
    assert response.status_code == 200
    stored = snapshot(app)["mail_accounts"][0]
    assert "abJnggxhB/yWI" not in repr(stored) and "{BLF-CRYPT}$2y$" in repr(stored)


# --- Webhook transport -----------------------------------------------------------------------------

DELETE_JANE = {"action": "delete", "email": "jane@example.com"}
TRANSPORT = [
    # (row, body, status, field in "errors" (None: a plain JSON error), message fragment)
    ("over 64 KiB", b'{"action": "delete", "email": "jane@example.com", "x": "' + b"x" * 65_536 + b'"}', 413, None, "larger than 64 KiB"),
    ("array", b"[]", 422, "body", "must be a JSON object"),
    ("string", b'"delete jane@example.com"', 422, "body", "must be a JSON object"),
    ("number", b"42", 422, "body", "must be a JSON object"),
    ("null", b"null", 422, "body", "must be a JSON object"),
    ("truncated", json.dumps(DELETE_JANE).encode()[:-5], 422, "body", "not valid JSON"),
    ("form-encoded", b"action=delete&email=jane%40example.com", 422, "body", "not valid JSON"),
    ("empty", b"", 422, "body", "not valid JSON"),
    ("not UTF-8", b'{"action": "delete", "email": "jane@example.com\xff"}', 422, "body", "not valid JSON"),
    ("deeply nested", b"[" * 10_000 + b"]" * 10_000, 422, "body", "not valid JSON"),
    ("action other case", {**DELETE_JANE, "action": "Delete"}, 422, "action", "(lower-case)"),
    ("action upper case", {**DELETE_JANE, "action": "DELETE"}, 422, "action", "(lower-case)"),
    ("unknown action", {**DELETE_JANE, "action": "update"}, 422, "action", "must be one of"),
    ("action missing", {"email": "jane@example.com"}, 422, "action", "must be one of"),
    ("action not a string", {**DELETE_JANE, "action": ["delete"]}, 422, "action", "must be one of"),
    ("password not a string", {"action": "password", "email": "jane@example.com", "password": 12345678}, 422, "password", "Enter the password"),
    ("password missing", {"action": "password", "email": "jane@example.com"}, 422, "password", "Enter the password"),
    ("domain disagrees", {**DELETE_JANE, "domain": "other.org"}, 422, "domain", "does not match"),
    ("domain not a string", {**DELETE_JANE, "domain": 5}, 422, "domain", "Enter a domain name."),
]


@pytest.mark.parametrize(("body", "status", "field", "fragment"), [r[1:] for r in TRANSPORT], ids=[r[0] for r in TRANSPORT])
def test_webhook_refuses_bad_bodies_in_json(app, client, jane, body, status, field, fragment):
    before = snapshot(app)
    response = sync_call(client, body)
    assert response.status_code == status and response.is_json
    assert fragment in (response.json["error"] if field is None else " ".join(response.json["errors"][field]))
    assert snapshot(app) == before


def test_unknown_extra_keys_are_ignored(app, client, jane):
    """Documented in the README: keys the contract does not name are ignored, not refused."""
    body = {**DELETE_JANE, "display_name": "<b>x</b>", "is_admin": True, "quota_mb": None}
    assert sync_call(client, body).json == {"status": "ok"}
    with app.app_context():
        assert get_session().query(SyncEvent.outcome).scalar() == "deleted"


CREDENTIALS = {"missing": None, "empty": "", "wrong": SYNC_SECRET[::-1], "with spaces": f" {SYNC_SECRET} "}


@pytest.mark.parametrize("secret", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_webhook_without_the_right_secret_is_403(app, client, jane, secret):
    before = snapshot(app)
    response = sync_call(client, DELETE_JANE, secret=secret)
    assert (response.status_code, response.json) == (403, {"error": "Unauthorized."})
    assert snapshot(app) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_webhook_other_methods_are_405_in_json(app, client, jane, method):
    before = snapshot(app)
    response = client.open(SYNC_URL, method=method, json=DELETE_JANE, headers={"X-Sync-Secret": SYNC_SECRET})
    assert (response.status_code, response.json) == (405, {"error": "Method not allowed: use POST."})
    assert snapshot(app) == before


def test_an_admin_session_never_opens_the_webhook(app, admin, jane):
    before = snapshot(app)
    # The session cookie and the CSRF header a page would send, but no secret.
    response = admin.client.post(SYNC_URL, json=DELETE_JANE, headers={"HX-Request": "true", "X-CSRFToken": admin.token})
    assert (response.status_code, response.json) == (403, {"error": "Unauthorized."})
    assert snapshot(app) == before


# --- Uploads and request sizes ---------------------------------------------------------------------


class MadeAsRead(io.RawIOBase):
    """A multipart body of ``size`` bytes (one file field), made as the server reads it: the test
    sends 100 MB without holding them, and learns how much of it was read."""

    BOUNDARY = "opmail-test-boundary"

    def __init__(self, size: int) -> None:
        super().__init__()
        head = f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
        self.head, self.tail = head.encode(), f"\r\n--{self.BOUNDARY}--\r\n".encode()
        self.size, self.position, self.read_bytes = size, 0, 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.BOUNDARY}"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        start, end = self.position, min(self.position + len(buffer), self.size)
        filler = self.size - len(self.head) - len(self.tail)
        # The head, then "x" up to the tail, then the tail: the part of each in [start, end).
        for begin, part in ((0, self.head), (len(self.head), None), (len(self.head) + filler, self.tail)):
            length = filler if part is None else len(part)
            low, high = max(start, begin), min(end, begin + length)
            if low < high:
                chunk = b"x" * (high - low) if part is None else part[low - begin : high - begin]
                buffer[low - start : high - start] = chunk
        self.position, self.read_bytes = end, self.read_bytes + end - start
        return end - start


@pytest.mark.parametrize(("url", "logged_in"), [("/admin/login", False), ("/admin/accounts/import/", True)])
def test_a_100_mb_post_is_refused_unread_with_a_413_page(app, admin, jane, url, logged_in):
    body = MadeAsRead(100 * 1024 * 1024)
    client = admin.client if logged_in else app.test_client()
    before = snapshot(app)
    response = client.post(url, input_stream=body, content_type=body.content_type)
    assert response.status_code == 413 and response.mimetype == "text/html"
    assert "What you sent is larger than 5 MiB, so none of it was read or saved." in response.text
    assert "Traceback" not in response.text
    assert body.read_bytes < 64 * 1024  # refused on its Content-Length, not after reading it
    assert snapshot(app) == before


def test_an_htmx_post_over_the_limit_gets_a_toast(app, admin, jane):
    body = MadeAsRead(6 * 1024 * 1024)
    response = admin.client.post(
        BULK, input_stream=body, content_type=body.content_type,
        headers={"HX-Request": "true", "X-CSRFToken": admin.token},
    )
    assert response.status_code == 413 and "larger than 5 MiB" in toast_of(response)["message"]


IDN_REFUSALS = [
    ("jane@xn--zz.com", "'xn--zz' is not valid punycode"),
    ("jane@p\u0430ypal.com", "mixes Cyrillic and Latin letters"),
]


@pytest.mark.parametrize(("address", "fragment"), IDN_REFUSALS, ids=["invalid punycode", "mixed scripts"])
def test_a_bad_international_domain_in_a_csv_import_is_refused_by_admin_and_cli(app, admin, jane, tmp_path, address, fragment):
    before = snapshot(app)
    data = f"email,password\n{address},secret one\n".encode()
    response = admin.post(f"{ACCOUNTS}import/", {"file": (io.BytesIO(data), "idn.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422 and fragment in html.unescape(response.text)
    path = tmp_path / "idn.csv"
    path.write_bytes(data)
    result = app.test_cli_runner().invoke(args=["opmail", "import-accounts", str(path)])
    assert result.exit_code == 1
    assert "row 2, email: " in result.output and fragment in result.output
    assert "Nothing was written." in result.output
    assert snapshot(app) == before


def test_an_import_file_with_problems_is_listed_and_not_kept(app, admin, jane):
    """It may hold passwords: a file that fails its check is not stored for the confirm step."""
    before = snapshot(app)
    data = b"email,password\njane+x@example.com,secret one\n"
    response = admin.post(f"{ACCOUNTS}import/", {"file": (io.BytesIO(data), "bad.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422 and "may only contain" in response.text
    assert "secret one" not in response.text
    uploads = Path(app.instance_path) / "opmail-uploads"
    assert not uploads.exists() or not list(uploads.iterdir())
    assert snapshot(app) == before


# --- Admin session ---------------------------------------------------------------------------------


def state_changes(jane: int, domain: int) -> dict[str, tuple[str, dict, bool]]:
    """One state-changing request per kind: (url, form, sent as htmx)."""
    return {
        "form": (f"{ACCOUNTS}edit/?id={jane}", {"display_name": "Changed", "quota_mb": "5", "status": "suspended"}, False),
        "htmx header": (f"{ACCOUNTS}edit/?id={jane}", {"display_name": "Changed", "quota_mb": "5", "status": "active"}, True),
        "bulk": (BULK, {"action": "suspend", "rowid": str(jane), "url": ACCOUNTS}, True),
        "delete dialog": (f"{ACCOUNTS}delete/?id={jane}", {"admin_password": ADMIN_PASSWORD}, True),
        "domain delete dialog": (f"/admin/domains/delete/?id={domain}", {"admin_password": ADMIN_PASSWORD}, False),
        "add domain": ("/admin/domains/new/", {"domain": "new.org"}, False),
        "add group": ("/admin/groups/new/", {"name": "staff"}, False),
    }


@pytest.mark.parametrize("token", ["missing", "wrong", "another session's"])
@pytest.mark.parametrize("kind", list(state_changes(0, 0)))
def test_state_change_without_the_right_csrf_token_is_400(app, admin, jane, kind, token):
    url, data, htmx = state_changes(jane, _domain_id(app))[kind]
    other = log_in(app.test_client())
    sent = {"missing": "", "wrong": "not-a-token", "another session's": other.token}[token]
    before = snapshot(app)
    headers = {"HX-Request": "true", "X-CSRFToken": sent} if htmx else {}
    response = admin.client.post(url, data={**data, **({} if htmx else {"csrf_token": sent})}, headers=headers)
    assert response.status_code == 400
    assert snapshot(app) == before


WRONG_ADMIN_PASSWORDS = {"empty": "", "wrong": "not the password", "other case": ADMIN_PASSWORD.upper()}


@pytest.mark.parametrize("typed", WRONG_ADMIN_PASSWORDS.values(), ids=WRONG_ADMIN_PASSWORDS.keys())
@pytest.mark.parametrize("dialog", ["account dialog", "domain dialog", "bulk Delete"])
def test_delete_without_the_right_admin_password_deletes_nothing(app, admin, jane, dialog, typed):
    faces = {
        # The dialogs answer htmx with their own fragment (the dialog, with the message).
        "account dialog": form(f"{ACCOUNTS}delete/?id={jane}", "admin_password", htmx=True),
        "domain dialog": form(f"/admin/domains/delete/?id={_domain_id(app)}", "admin_password", htmx=True),
        "bulk Delete": bulk(jane, "admin_password", action="delete"),
    }
    fragment = "Enter your admin password." if not typed else "Wrong admin password: nothing was deleted."
    never_echoed(refused(app, admin, faces[dialog], typed, fragment), *[typed] * bool(typed))


def get_urls(app, ids: dict[str, int]) -> list[str]:
    """Every GET URL of the app (static files aside), enumerated from the URL map, with real ids."""
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint.endswith("static"):
                continue
            view = rule.endpoint.partition(".")[0]
            args = dict.fromkeys(rule.arguments, "csv")
            urls.append(url_for(rule.endpoint, **args, **({"id": ids[view]} if view in ids else {})))
    return sorted(urls)


def test_a_get_never_changes_state(app, admin, jane):
    add_domain(app, "other.org")
    admin.post("/admin/groups/new/", {"name": "staff"})
    admin.post("/admin/aliases/new/", {"alias_email": "sales@example.com", "destinations": "jane@example.com"})
    admin.post("/admin/autoresponders/new/", {"email": "jane@example.com", "subject": "s", "body": "b", "is_active": "y"})
    sync_call(app.test_client(), {"action": "create", "email": "bob@example.com", "password": "plain pass"})
    with app.app_context():
        db = get_session()
        ids = {
            "opmail_accounts": jane,
            "opmail_domains": db.query(MailDomain.id).first()[0],
            "opmail_groups": db.query(MailGroup.id).scalar(),
            "opmail_autoresponders": db.query(MailAutoresponder.id).scalar(),
            "opmail_sync_log": db.query(SyncEvent.id).first()[0],
        }
    urls = get_urls(app, ids)
    assert f"/admin/accounts/delete/?id={jane}" in urls and "/api/sync/account" in urls
    before = snapshot(app)
    for url in [*urls, "/admin/aliases/edit/?alias=sales@example.com", "/admin/autoresponders/new/?email=jane@example.com"]:
        for htmx in (False, True):
            response = admin.get(url, htmx=htmx)
            assert response.status_code < 500, url
            response.close()  # the CSV export streams: end it within its request
    assert snapshot(app) == before


OFF_SITE = ["https://evil.example/", "//evil.example/admin/", "/\\evil.example", "https:evil.example",
            "/\t/evil.example", "javascript:alert(1)", "/admin/\r\nSet-Cookie: x=1"]


ADMIN_NAMES = {
    # typed: logs in as admin?
    "ADMIN": True,
    "\uff41\uff44\uff4d\uff49\uff4e": True,  # full-width: NFKC makes it admin
    "\u00e1dmin": False,
    "admin\u200b": False,
    "ad\u200dmin": False,
    "\u3164admin": False,
}


@pytest.mark.parametrize(("typed", "logs_in"), ADMIN_NAMES.items(), ids=[repr(name) for name in ADMIN_NAMES])
def test_an_admin_name_logs_in_only_in_its_canonical_form(app, client, admin_user, typed, logs_in):
    response = AdminClient(client).login(typed, ADMIN_PASSWORD)
    assert response.status_code == (302 if logs_in else 401)
    if not logs_in:
        assert "Wrong username or password." in response.text


@pytest.mark.parametrize("target", OFF_SITE)
def test_off_site_next_after_login_is_ignored(app, client, admin_user, target):
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        query_string={"next": target},
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    assert (response.status_code, response.location) == (302, "/admin/")


@pytest.mark.parametrize("target", OFF_SITE[:4])
def test_off_site_url_of_a_bulk_action_is_ignored(app, admin, jane, target):
    response = admin.post(BULK, {"action": "suspend", "rowid": str(jane), "url": target + "?q=jane"})
    assert response.status_code == 302 and response.location == ACCOUNTS + "?q=jane"


def test_payloads_stay_text_in_a_real_browser(app, logged_in_page, jane):
    """Chromium renders the stored payloads as text, in the page and after an htmx swap: no alert,
    no <img>, no live hx-post (which would log the admin out on load)."""
    for number, payload in enumerate(PAYLOADS.values()):
        add_account(app, f"x{number}@example.com", display_name=payload)
    page = logged_in_page
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(ACCOUNTS)
    page.get_by_label("Search").fill("x")  # the rows come back as an htmx fragment
    page.wait_for_url("**q=x**")
    table = page.locator("#opmail-accounts")
    for payload in PAYLOADS.values():
        assert table.get_by_text(payload, exact=True).count() == 1
    # The bulk form around the table has its own hx-post: look inside the rows.
    assert table.locator("tbody").locator("script, img, [hx-post]").count() == 0 and alerts == []
    save_screenshot(page, "bad-input-payloads")
    page.goto(ACCOUNTS)  # still logged in: the hx-post to logout never ran
    assert page.url.endswith(ACCOUNTS)
