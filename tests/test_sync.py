"""The Panel sync webhook, table-driven over its contract (docs/sync-webhook.md, docs/bad-input.md)."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta

import bcrypt as pyca_bcrypt
import pytest
from flask import jsonify
from passlib.hash import sha512_crypt
from sqlalchemy import select

from opmail.db import get_engine, get_session
from opmail.models import MailAccount, MailDomain, SyncEvent, utcnow
from opmail.passwords import hash_password, verify_password
from opmail.queries import recent_syncs
from tests.helpers import SYNC_SECRET as SECRET
from tests.helpers import SYNC_URL as URL
from tests.helpers import snapshot
from tests.helpers import sync_call as post

EMAIL = "jane@example.com"
EARLIER = datetime(2026, 1, 2, 3, 4, 5)

OLD_HASH = hash_password("old password", "BLF-CRYPT", bcrypt_rounds=4)
PANEL_PASSWORD = "from the panel"
# What the Panel sends: a hash made by another bcrypt (pyca, "$2b$"), rewritten to PHP's "$2y$".
PANEL_HASH = "$2y$" + pyca_bcrypt.hashpw(
    PANEL_PASSWORD.encode(), pyca_bcrypt.gensalt(rounds=4, prefix=b"2b")
).decode()[4:]
PANEL_STORED = "{BLF-CRYPT}" + PANEL_HASH
SHA512_HASH = sha512_crypt.using(rounds=5000).hash(PANEL_PASSWORD)  # "$6$salt$…": 5,000 implied
SHA512_ROUNDS_HASH = sha512_crypt.using(rounds=6000).hash(PANEL_PASSWORD)  # "$6$rounds=6000$…"

CREATE = {"action": "create", "email": EMAIL, "password": PANEL_HASH, "quota_mb": 2048, "domain": "example.com"}
DELETE = {"action": "delete", "email": EMAIL}
PASSWORD = {"action": "password", "email": EMAIL, "password": PANEL_HASH}
BODIES = {"create": CREATE, "delete": DELETE, "password": PASSWORD}


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SECRET}


def seed(app, state: str, *, domain_active: bool = True) -> None:
    """example.com with jane's account ``absent``, ``live``, ``suspended``, ``soft_deleted`` or
    ``suspended_deleted`` (an admin suspended it, then the Panel deleted it)."""
    with app.app_context():
        db = get_session()
        domain = MailDomain(domain="example.com", is_active=domain_active)
        db.add(domain)
        db.flush()
        if state != "absent":
            db.add(MailAccount(
                domain_id=domain.id,
                email=EMAIL,
                password=OLD_HASH,
                display_name="Jane",
                quota_mb=100,
                is_active=state not in ("suspended", "suspended_deleted"),
                deleted_at=EARLIER if state in ("soft_deleted", "suspended_deleted") else None,
            ))
        db.commit()


def account_row(app, email: str = EMAIL) -> dict | None:
    with app.app_context():
        row = get_session().execute(
            select(MailAccount.__table__).where(MailAccount.email == email)
        ).mappings().first()
        return None if row is None else dict(row)


def domain_rows(app) -> list[tuple[str, bool]]:
    with app.app_context():
        return get_session().execute(select(MailDomain.domain, MailDomain.is_active)).all()


def events(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        return get_session().execute(
            select(SyncEvent.action, SyncEvent.email, SyncEvent.outcome).order_by(SyncEvent.id)
        ).all()


def is_recent(moment: datetime | None, since: datetime) -> bool:
    # MariaDB DATETIME keeps whole seconds.
    return moment is not None and since - timedelta(seconds=1) <= moment <= utcnow() + timedelta(seconds=1)


# --- The check table, in order ------------------------------------------------------------------

WRONG = {
    "header missing": None,
    "header empty": "",
    "one character off": SECRET[:-1] + "0",
    "prefix of the secret": SECRET[:16],
    "secret plus more": SECRET + "0",
    "other letter case": SECRET.upper(),
    "non-ASCII header": "é" * 32,
    "surrounding spaces": f" {SECRET} ",
}


@pytest.mark.parametrize("app_overrides", [{"MAIL_SYNC_SECRET": ""}])
@pytest.mark.parametrize("secret", [None, "", SECRET], ids=["no header", "empty", "some secret"])
def test_standalone_mode_is_404(app, client, secret):
    before = snapshot(app)
    response = post(client, CREATE, secret=secret)
    assert (response.status_code, response.json) == (404, {"error": "Not found."})
    assert snapshot(app) == before


@pytest.mark.parametrize("secret", WRONG.values(), ids=WRONG.keys())
@pytest.mark.parametrize(
    "body", [CREATE, b"not json", b"x" * (1024 * 1024)], ids=["valid", "invalid", "1 MB"]
)
def test_missing_or_wrong_secret_is_403_before_the_body_is_looked_at(app, client, secret, body):
    seed(app, "live")
    before = snapshot(app)
    response = post(client, body, secret=secret)
    assert (response.status_code, response.json) == (403, {"error": "Unauthorized."})
    assert snapshot(app) == before


def test_an_admin_session_never_authorises_the_webhook(app, admin):
    before = snapshot(app)
    response = admin.client.post(URL, json=CREATE)
    assert (response.status_code, response.json) == (403, {"error": "Unauthorized."})
    assert snapshot(app) == before


def test_webhook_needs_no_csrf_token_and_no_login(app, admin):
    # The logged-in browser session carries a CSRF secret; the webhook still needs no token.
    assert post(admin.client, CREATE).json == {"status": "ok"}
    assert post(app.test_client(), DELETE).json == {"status": "ok"}


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded", None]
)
def test_valid_json_is_accepted_whatever_the_content_type(app, client, content_type):
    response = post(client, CREATE, content_type=content_type)
    assert (response.status_code, response.json) == (200, {"status": "ok"})
    assert response.mimetype == "application/json"


def test_the_accepted_answer_is_written_as_jsonify_writes_the_others(app, client):
    # A Panel agent that compares bytes, or logs them, sees one style of JSON from the webhook.
    with app.app_context():
        expected = jsonify(status="ok").get_data()
    assert post(client, CREATE).get_data() == expected


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405_in_json(app, client, method):
    response = client.open(URL, method=method, headers={"X-Sync-Secret": SECRET}, json=CREATE)
    assert response.status_code == 405
    assert response.json == {"error": "Method not allowed: use POST."}
    assert response.headers["Allow"] == "POST"


def test_head_is_405_too(app, client):
    assert client.head(URL).status_code == 405


# --- 413: over 64 KiB, refused before parsing --------------------------------------------------

def padded(body: dict, size: int) -> bytes:
    """``body`` as JSON, padded with spaces to exactly ``size`` bytes (still valid JSON)."""
    data = json.dumps(body).encode()
    return data + b" " * (size - len(data))


def test_exactly_64_kib_is_accepted(app, client):
    assert post(client, padded(CREATE, 64 * 1024)).status_code == 200


@pytest.mark.parametrize(
    "data",
    [padded(CREATE, 64 * 1024 + 1), b"x" * (1024 * 1024), b"[" * (1024 * 1024)],
    ids=["64 KiB + 1 of valid JSON", "1 MB of junk", "1 MB of nesting"],
)
def test_over_64_kib_is_413_and_nothing_is_written(app, client, data):
    before = snapshot(app)
    response = post(client, data)
    assert response.status_code == 413
    assert response.json == {"error": "The body is larger than 64 KiB."}
    assert snapshot(app) == before


def test_a_stream_without_content_length_is_cut_at_64_kib(app, client):
    before = snapshot(app)
    response = client.post(
        URL,
        input_stream=io.BytesIO(padded(CREATE, 200 * 1024)),
        headers={"X-Sync-Secret": SECRET},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert (response.status_code, response.json) == (413, {"error": "The body is larger than 64 KiB."})
    assert snapshot(app) == before


# --- 422: every kind of bad body, nothing written ------------------------------------------------

def with_(**changes) -> dict:
    """CREATE with some keys changed (a value of ``...`` removes the key)."""
    body = {**CREATE, **changes}
    return {key: value for key, value in body.items() if value is not ...}


BAD_BODIES = [
    # (id, body, fields named in "errors")
    ("not JSON", b"action=create&email=jane@example.com", {"body"}),
    ("empty body", b"", {"body"}),
    ("JSON array", [CREATE], {"body"}),
    ("JSON string", "create", {"body"}),
    ("JSON number", 1, {"body"}),
    ("JSON null", None, {"body"}),
    ("truncated JSON", json.dumps(CREATE)[:-7].encode(), {"body"}),
    ("deeply nested", b"[" * 60_000, {"body"}),
    ("not UTF-8", b'{"action": "create", "email": "\xff@example.com"}', {"body"}),
    ("action missing", with_(action=...), {"action"}),
    ("action CREATE", with_(action="CREATE"), {"action"}),
    ("action Create", with_(action="Create"), {"action"}),
    ("unknown action", with_(action="suspend"), {"action"}),
    ("action empty", with_(action=""), {"action"}),
    ("action a list", with_(action=["create"]), {"action"}),
    ("action a number", with_(action=1), {"action"}),
    ("email missing", with_(email=...), {"email"}),
    ("email null", with_(email=None), {"email"}),
    ("email a number", with_(email=12345), {"email"}),
    ("email empty", with_(email=""), {"email"}),
    ("email without @", with_(email="jane.example.com", domain=...), {"email"}),
    ("email with two @", with_(email="jane@doe@example.com", domain=...), {"email"}),
    ("email with a leading space", with_(email=" jane@example.com"), {"email"}),
    ("email with a trailing space", with_(email="jane@example.com "), {"email"}),
    ("email with a newline", with_(email="jane@example.com\n"), {"email"}),
    ("email with a zero-width space", with_(email="ja\u200bne@example.com"), {"email"}),
    ("email with +tag", with_(email="jane+tag@example.com"), {"email"}),
    ("email on a single-label domain", with_(email="jane@localhost", domain=...), {"email"}),
    ("email on an IP literal", with_(email="jane@[127.0.0.1]", domain=...), {"email"}),
    ("domain disagrees with email", with_(domain="example.org"), {"domain"}),
    ("domain is a subdomain", with_(domain="mail.example.com"), {"domain"}),
    ("domain not a string", with_(domain=7), {"domain"}),
    ("domain with spaces", with_(domain=" example.com"), {"domain"}),
    ("quota as a string", with_(quota_mb="1024"), {"quota_mb"}),
    ("quota -1", with_(quota_mb=-1), {"quota_mb"}),
    ("quota 1.5", with_(quota_mb=1.5), {"quota_mb"}),
    ("quota 1024.0", with_(quota_mb=1024.0), {"quota_mb"}),
    ("quota true", with_(quota_mb=True), {"quota_mb"}),
    ("quota over 10,000,000", with_(quota_mb=10_000_001), {"quota_mb"}),
    ("quota huge", with_(quota_mb=10**30), {"quota_mb"}),
    ("quota a list", with_(quota_mb=[1024]), {"quota_mb"}),
    ("quota negative on delete", {**DELETE, "quota_mb": -5}, {"quota_mb"}),
    ("create without password", with_(password=...), {"password"}),
    ("password action without password", {"action": "password", "email": EMAIL}, {"password"}),
    ("password null", with_(password=None), {"password"}),
    ("password empty", with_(password=""), {"password"}),
    ("password blank", with_(password="   "), {"password"}),
    ("password a number", with_(password=12345678), {"password"}),
    ("password with NUL", with_(password="pass\x00word"), {"password"}),
    ("plaintext over 72 bytes", with_(password="é" * 37), {"password"}),
    ("truncated bcrypt", with_(password="$2y$12$short"), {"password"}),
    ("bcrypt one character short", with_(password=PANEL_HASH[:-1]), {"password"}),
    ("bcrypt cost 3", with_(password="$2y$03$" + PANEL_HASH[7:]), {"password"}),
    ("bcrypt cost 16", with_(password="$2y$16$" + PANEL_HASH[7:]), {"password"}),
    ("bcrypt under the SHA512 prefix", with_(password="{SHA512-CRYPT}" + PANEL_HASH), {"password"}),
    ("{PLAIN}", with_(password="{PLAIN}x"), {"password"}),
    ("{MD5} prefix", with_(password="{MD5}1bc29b36f623ba82aaf6724fd3b16718"), {"password"}),
    ("MD5-crypt", with_(password="$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"), {"password"}),
    ("SHA512 with 999 rounds", with_(password="$6$rounds=999$" + SHA512_HASH[3:]), {"password"}),
    ("truncated SHA512", with_(password=SHA512_HASH[:-10]), {"password"}),
    ("everything wrong", {"action": "Create", "email": " x", "quota_mb": "1"}, {"action", "email", "quota_mb"}),
]


@pytest.mark.parametrize(("body", "fields"), [row[1:] for row in BAD_BODIES], ids=[row[0] for row in BAD_BODIES])
def test_bad_body_is_422_naming_the_fields_and_nothing_is_written(app, client, body, fields):
    seed(app, "live")
    before = snapshot(app)
    response = post(client, body)
    assert response.status_code == 422
    assert set(response.json) == {"error", "errors"}
    assert set(response.json["errors"]) == fields
    assert all(
        isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages)
        for messages in response.json["errors"].values()
    )
    assert response.json["error"] == f"Invalid {', '.join(response.json['errors'])}."
    # Neither the secret nor any password or hash sent comes back.
    sent = body.get("password") if isinstance(body, dict) else None
    for secret in (SECRET, PANEL_HASH, sent):
        assert not isinstance(secret, str) or len(secret) < 4 or secret not in response.text
    assert snapshot(app) == before


def test_unknown_keys_are_ignored(app, client):
    body = {**CREATE, "display_name": "Ignored", "is_active": False, "id": 99, "extra": {"x": [1]}}
    assert post(client, body).json == {"status": "ok"}
    row = account_row(app)
    assert (row["display_name"], row["is_active"]) == (None, True)


# --- Every action against every account state ---------------------------------------------------

SYNCED = object()  # the call's own time
LIVE = {"password": OLD_HASH, "quota_mb": 100, "is_active": True, "deleted_at": None, "last_synced_at": None}
UPSERTED = {"password": PANEL_STORED, "quota_mb": 2048, "is_active": True, "deleted_at": None, "last_synced_at": SYNCED}

MATRIX = [
    # action, state before, outcome, account after (None: no row)
    ("create", "absent", "created", {**UPSERTED, "display_name": None}),
    ("create", "live", "updated", {**UPSERTED, "display_name": "Jane"}),
    # An admin's suspension wins over the Panel's create (issue 15): password and quota change, the
    # account stays suspended, and the sync log says so; a soft-deleted one is still revived.
    ("create", "suspended", "still suspended", {**UPSERTED, "is_active": False, "display_name": "Jane"}),
    ("create", "soft_deleted", "revived", {**UPSERTED, "display_name": "Jane"}),
    ("create", "suspended_deleted", "still suspended", {**UPSERTED, "is_active": False, "display_name": "Jane"}),
    ("delete", "absent", "noop", None),
    ("delete", "live", "deleted", {**LIVE, "deleted_at": SYNCED, "last_synced_at": SYNCED}),
    ("delete", "suspended", "deleted", {**LIVE, "is_active": False, "deleted_at": SYNCED, "last_synced_at": SYNCED}),
    ("delete", "soft_deleted", "noop", {**LIVE, "deleted_at": EARLIER}),
    ("password", "absent", "noop", None),
    ("password", "live", "password", {**LIVE, "password": PANEL_STORED, "last_synced_at": SYNCED}),
    ("password", "suspended", "password", {**LIVE, "password": PANEL_STORED, "is_active": False, "last_synced_at": SYNCED}),
    ("password", "soft_deleted", "noop", {**LIVE, "deleted_at": EARLIER}),
]


@pytest.mark.parametrize(("action", "state", "outcome", "after"), MATRIX, ids=[f"{a}-{s}" for a, s, *_ in MATRIX])
def test_action_against_account_state(app, client, action, state, outcome, after):
    seed(app, state)
    since = utcnow()
    response = post(client, BODIES[action])
    assert (response.status_code, response.json) == (200, {"status": "ok"})

    row = account_row(app)
    if after is None:
        assert row is None
    else:
        for column, expected in after.items():
            if expected is SYNCED:
                assert is_recent(row[column], since), column
            else:
                assert row[column] == expected, column
    assert domain_rows(app) == [("example.com", True)]
    with app.app_context():
        event = get_session().scalars(select(SyncEvent)).one()
    assert (event.action, event.email, event.outcome, event.remote_addr) == (action, EMAIL, outcome, "127.0.0.1")
    if row is not None and after["last_synced_at"] is SYNCED:
        assert row["last_synced_at"] == event.received_at


def test_the_same_password_twice_in_one_second_is_logged_as_a_password_both_times(app, client):
    """The log row's outcome comes from the UPDATE's row count in SQL: an UPDATE that writes the
    values the row already holds (same hash, MariaDB's whole-second timestamps) still found the
    account. Counting changed rows instead would log the second call as a noop."""
    seed(app, "live")
    for _ in range(3):
        assert post(client, PASSWORD).status_code == 200
    with app.app_context():
        outcomes = get_session().scalars(select(SyncEvent.outcome).order_by(SyncEvent.id)).all()
    assert outcomes == ["password", "password", "password"]


def test_create_adds_a_missing_domain(app, client):
    assert post(client, CREATE).status_code == 200
    assert domain_rows(app) == [("example.com", True)]
    with app.app_context():
        account = get_session().scalars(select(MailAccount)).one()
        domain = get_session().scalars(select(MailDomain)).one()
    assert account.domain_id == domain.id


def test_create_leaves_a_disabled_domain_disabled(app, client):
    seed(app, "absent", domain_active=False)
    assert post(client, CREATE).status_code == 200
    assert domain_rows(app) == [("example.com", False)]
    assert account_row(app)["is_active"] is True


@pytest.mark.parametrize(
    ("changes", "stored_email", "stored_domain"),
    [
        ({"email": "Jane@Example.COM", "domain": "EXAMPLE.com"}, EMAIL, "example.com"),
        ({"email": "jane@bücher.example", "domain": "bücher.example"}, "jane@xn--bcher-kva.example", "xn--bcher-kva.example"),
        ({"email": "jane@xn--bcher-kva.example", "domain": "bücher.example"}, "jane@xn--bcher-kva.example", "xn--bcher-kva.example"),
        ({"domain": ...}, EMAIL, "example.com"),
        ({"domain": None}, EMAIL, "example.com"),
    ],
    ids=["upper case", "unicode domain", "xn-- email, unicode domain", "no domain key", "domain null"],
)
def test_address_is_stored_normalised(app, client, changes, stored_email, stored_domain):
    assert post(client, with_(**changes)).status_code == 200
    assert account_row(app, stored_email) is not None
    assert domain_rows(app) == [(stored_domain, True)]
    assert events(app) == [("create", stored_email, "created")]


@pytest.mark.parametrize(
    ("quota", "stored"), [(..., 0), (None, 0), (0, 0), (1, 1), (10_000_000, 10_000_000)]
)
def test_quota(app, client, quota, stored):
    assert post(client, with_(quota_mb=quota)).status_code == 200
    assert account_row(app)["quota_mb"] == stored


def test_create_again_with_no_quota_sets_unlimited(app, client):
    seed(app, "live")
    assert post(client, with_(quota_mb=...)).status_code == 200
    assert account_row(app)["quota_mb"] == 0


def test_repeating_create_leaves_the_same_state(app, client):
    volatile = ("updated_at", "last_synced_at")
    assert post(client, CREATE).status_code == 200
    first = account_row(app)
    assert post(client, CREATE).status_code == 200
    second = account_row(app)
    assert {k: v for k, v in first.items() if k not in volatile} == {
        k: v for k, v in second.items() if k not in volatile
    }
    assert [outcome for *_, outcome in events(app)] == ["created", "updated"]


def test_a_sync_leaves_other_accounts_alone(app, client):
    seed(app, "live")
    before = account_row(app)
    assert post(client, with_(email="bob@example.com")).status_code == 200
    assert account_row(app) == before


# --- The password value ------------------------------------------------------------------------

PANEL_HASH_12 = "$2y$" + pyca_bcrypt.hashpw(
    PANEL_PASSWORD.encode(), pyca_bcrypt.gensalt(rounds=12, prefix=b"2b")
).decode()[4:]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (PANEL_HASH_12, "{BLF-CRYPT}" + PANEL_HASH_12),
        ("{BLF-CRYPT}" + PANEL_HASH, PANEL_STORED),
        ("$2b$" + PANEL_HASH[4:], "{BLF-CRYPT}$2b$" + PANEL_HASH[4:]),
        ("$2a$" + PANEL_HASH[4:], "{BLF-CRYPT}$2a$" + PANEL_HASH[4:]),
        (SHA512_HASH, "{SHA512-CRYPT}" + SHA512_HASH),
        ("{SHA512-CRYPT}" + SHA512_HASH, "{SHA512-CRYPT}" + SHA512_HASH),
        (SHA512_ROUNDS_HASH, "{SHA512-CRYPT}" + SHA512_ROUNDS_HASH),
    ],
    ids=[
        "$2y$12$ from pyca bcrypt", "{BLF-CRYPT} prefixed", "$2b$", "$2a$",
        "SHA512-CRYPT", "{SHA512-CRYPT} prefixed", "SHA512-CRYPT rounds=6000",
    ],
)
def test_a_complete_hash_is_stored_as_given_with_its_scheme(app, client, sent, stored):
    assert post(client, with_(password=sent)).status_code == 200
    assert account_row(app)["password"] == stored
    assert verify_password(PANEL_PASSWORD, stored)
    assert not verify_password(PANEL_PASSWORD + "!", stored)


@pytest.mark.parametrize("plain", ["s3cret pass", "pa$$word", "pässwörd", "é" * 36])
def test_plaintext_is_hashed_in_the_configured_scheme(app, client, plain):
    assert post(client, with_(password=plain)).status_code == 200
    stored = account_row(app)["password"]
    assert stored.startswith("{BLF-CRYPT}$2y$04$")  # OPMAIL_BCRYPT_ROUNDS = 4 in tests
    assert verify_password(plain, stored)
    assert plain not in stored


@pytest.mark.parametrize("app_overrides", [{"MAIL_SYNC_SECRET": SECRET, "DOVECOT_PASSWORD_SCHEME": "SHA512-CRYPT"}])
def test_plaintext_is_hashed_with_sha512_crypt_when_configured(app, client):
    seventy_three_bytes = "é" * 36 + "x"  # too long for bcrypt, fine for SHA512-CRYPT
    for action in ("create", "password"):
        body = {**BODIES[action], "password": seventy_three_bytes}
        assert post(client, body).status_code == 200
        stored = account_row(app)["password"]
        assert stored.startswith("{SHA512-CRYPT}$6$")
        assert verify_password(seventy_three_bytes, stored)
    # A bcrypt hash from the Panel is still stored as bcrypt.
    assert post(client, PASSWORD).status_code == 200
    assert account_row(app)["password"] == PANEL_STORED


# --- A realistic agent session -------------------------------------------------------------------

def test_agent_session_create_password_delete_create_again(app, client):
    since = utcnow()
    steps = [
        ({**CREATE, "password": "first pass", "quota_mb": 512}, "created"),
        ({**PASSWORD, "password": PANEL_HASH}, "password"),
        (DELETE, "deleted"),
        (DELETE, "noop"),
        ({**PASSWORD, "password": "ignored"}, "noop"),
        ({"action": "create", "email": EMAIL, "password": "second pass"}, "revived"),
    ]
    rows = []
    for body, _ in steps:
        assert post(client, body).json == {"status": "ok"}
        rows.append(account_row(app))
    created, changed, deleted, deleted_again, still_deleted, revived = rows

    assert verify_password("first pass", created["password"])
    assert (created["quota_mb"], created["is_active"], created["deleted_at"]) == (512, True, None)
    assert changed["password"] == PANEL_STORED and changed["deleted_at"] is None
    assert changed["id"] == created["id"]
    assert is_recent(deleted["deleted_at"], since) and deleted["password"] == PANEL_STORED
    assert deleted_again == deleted and still_deleted == deleted
    assert revived["id"] == created["id"]
    assert verify_password("second pass", revived["password"])
    assert (revived["quota_mb"], revived["is_active"], revived["deleted_at"]) == (0, True, None)
    assert all(is_recent(row["last_synced_at"], since) for row in rows)
    assert events(app) == [(body["action"], EMAIL, outcome) for body, outcome in steps]


def test_sync_events_never_hold_a_password(app, client):
    secrets = ["first pass", PANEL_HASH, PANEL_HASH[7:29], "second pass"]
    post(client, {**CREATE, "password": "first pass"})
    post(client, PASSWORD)
    post(client, {**PASSWORD, "password": "second pass"})
    post(client, DELETE)
    stored = [account_row(app)["password"]]
    with app.app_context(), get_engine().connect() as connection:
        rows = connection.execute(select(SyncEvent.__table__)).all()
    assert len(rows) == 4
    for row in rows:
        for value in row:
            for secret in secrets + stored + [stored[0][11:]]:
                assert secret not in str(value)


def test_an_unexpected_error_is_json_without_details(app, client, monkeypatch):
    def explode(*args):
        raise RuntimeError("database exploded; secret detail")

    monkeypatch.setattr("opmail.sync.apply_sync", explode)
    response = post(client, CREATE)
    assert response.status_code == 500
    assert response.json == {"error": "Internal error: see the opmail log."}


# --- Admin: the sync log and the dashboard ------------------------------------------------------

def test_sync_log_needs_login(app, client):
    response = client.get("/admin/sync-log/")
    assert response.status_code == 302
    assert response.location.startswith("/admin/login?next=")


def test_sync_log_lists_events_newest_first_read_only(app, admin):
    post(admin.client, CREATE)
    post(admin.client, with_(email="bob@example.com"))
    post(admin.client, DELETE)
    page = admin.get("/admin/sync-log/")
    assert page.status_code == 200
    text = page.text
    assert "Sync Log" in text
    assert text.index("deleted") < text.index("bob@example.com") < text.index("created")
    assert PANEL_HASH not in text and SECRET not in text
    # Read-only: no create, edit or delete pages.
    before = snapshot(app)
    for url in ("/admin/sync-log/new/", "/admin/sync-log/edit/?id=1"):
        assert admin.get(url).status_code == 302
    assert admin.post("/admin/sync-log/delete/", data={"id": "1"}).status_code in (302, 404, 405)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({"flt0_outcome_equals": "deleted"}, [("delete", EMAIL, "deleted")]),
        ({"flt0_action_equals": "create"}, [("create", EMAIL, "created"), ("create", "bob@example.com", "created")]),
        ({"flt0_address_contains": "bob"}, [("create", "bob@example.com", "created")]),
    ],
)
def test_sync_log_filters(app, admin, query, shown):
    post(admin.client, CREATE)
    post(admin.client, with_(email="bob@example.com"))
    post(admin.client, DELETE)
    text = admin.get("/admin/sync-log/", query_string=query).text
    cells = re.findall(r'<td class="col-(?:action|email|outcome)">\s*(.*?)\s*</td>', text, re.S)
    assert sorted(zip(cells[0::3], cells[1::3], cells[2::3], strict=True)) == sorted(shown)


def test_recent_syncs_are_the_last_ten_newest_first(app, client):
    for number in range(12):
        post(client, with_(email=f"user{number}@example.com"))
    with app.app_context():
        rows = recent_syncs()
    assert [row.email for row in rows] == [f"user{n}@example.com" for n in range(11, 1, -1)]
    assert {row.outcome for row in rows} == {"created"}


def test_dashboard_shows_recent_syncs_with_a_link_to_the_log(app, admin):
    post(admin.client, CREATE)
    post(admin.client, DELETE)
    page = admin.get("/admin/")
    assert page.status_code == 200
    section = page.text[page.text.index("Recent Syncs"):]
    assert 'href="/admin/sync-log/"' in section
    assert section.index("deleted") < section.index("created")
    assert EMAIL in section


def test_dashboard_says_when_there_were_no_syncs(app, admin):
    assert "No calls from the Panel agent yet." in admin.get("/admin/").text


# --- CLI -----------------------------------------------------------------------------------------

def test_sync_secret_command_prints_a_new_secret_and_the_env_line(runner):
    first = runner.invoke(args=["opmail", "sync-secret"])
    second = runner.invoke(args=["opmail", "sync-secret"])
    assert first.exit_code == 0, first.output
    lines = re.findall(r"^MAIL_SYNC_SECRET=([0-9a-f]{32})$", first.output + second.output, re.M)
    assert len(lines) == 2 and lines[0] != lines[1]
    assert ".env" in first.output


def test_fass_and_fa_sharp_s_are_two_domains_under_idna_2008(app, client):
    """Issue 15: under IDNA 2003 a create for jane@faß.de changed the password of jane@fass.de, while
    jane@xn--fa-hia.de (the same address in IDNA 2008) made a second row."""
    assert post(client, {"action": "create", "email": "jane@fass.de", "password": "fass password"}).status_code == 200
    assert post(client, {"action": "create", "email": "jane@faß.de", "password": "sharp password"}).status_code == 200
    again = post(client, {"action": "password", "email": "jane@xn--fa-hia.de", "password": "sharp again"})
    assert again.status_code == 200

    assert verify_password("fass password", account_row(app, "jane@fass.de")["password"])
    assert verify_password("sharp again", account_row(app, "jane@xn--fa-hia.de")["password"])
    with app.app_context():
        assert sorted(get_session().scalars(select(MailAccount.email))) == ["jane@fass.de", "jane@xn--fa-hia.de"]
        outcomes = get_session().execute(select(SyncEvent.email, SyncEvent.outcome).order_by(SyncEvent.id)).all()
    assert outcomes == [("jane@fass.de", "created"), ("jane@xn--fa-hia.de", "created"), ("jane@xn--fa-hia.de", "password")]


@pytest.mark.parametrize(
    ("email", "fragment"),
    [("jane@xn--zz.com", "not valid punycode"), ("jane@p\u0430ypal.com", "mixes Cyrillic and Latin letters")],
)
def test_a_bad_international_domain_is_a_422_naming_the_email(app, client, email, fragment):
    before = snapshot(app)
    response = post(client, {"action": "create", "email": email, "password": "a password"})
    assert response.status_code == 422
    assert fragment in response.json["errors"]["email"][0]
    assert snapshot(app) == before
