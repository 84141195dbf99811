"""Every promise of the admin and the webhook, checked by what a real Dovecot does (IMAP logins).

Dovecot reads the files ``flask opmail mail-config`` wrote, on SQLite and on MariaDB (where it
connects as the database user of docs/mail-flow.md). Each test drives opmail the way users do: the
admin's forms and bulk actions, or the Panel's webhook.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import bcrypt as pyca_bcrypt
import pytest
import sqlalchemy as sa

from opmail.addresses import normalize_domain
from opmail.admin.format import size_label
from opmail.db import get_engine
from opmail.models import MailAccount, MailDomain, MailQuotaUsage
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import opened_version, rows
from tests.mailserver import MailServer

PASSWORD = "mailbox-pass-1"
SYNC_SECRET = secrets.token_hex(16)
MESSAGE = b"From: a@example.net\r\nSubject: usage\r\n\r\n" + b"x" * 100_000 + b"\r\n"


@pytest.fixture
def dovecot(mail_server: MailServer) -> MailServer:
    """The run's private mail server (tests/mailserver.py): here only its IMAP side is used."""
    return mail_server


@pytest.fixture
def db_url(dovecot: MailServer) -> str:
    return dovecot.db_url


@pytest.fixture
def app_overrides(dovecot: MailServer) -> dict:
    return {"MAILDIR_ROOT": str(dovecot.mail_root), "MAIL_SYNC_SECRET": SYNC_SECRET}


@pytest.fixture
def domain(admin) -> str:
    """A domain added under Admin → Domains, new for each test (Dovecot outlives their rows)."""
    name = f"d{secrets.token_hex(4)}.example"
    response = admin.post("/admin/domains/new/", {"domain": name})
    assert response.status_code == 302, response.text
    return name


def add_account(admin, email: str, password: str = PASSWORD, quota_mb: int = 0) -> int:
    """Admin → Accounts → Add Account; returns the new account's id."""
    response = admin.post(
        "/admin/accounts/new/", {"email": email, "password": password, "quota_mb": str(quota_mb)}
    )
    assert response.status_code == 302, response.text
    return int(parse_qs(urlsplit(response.location).query)["id"][0])


def bulk(admin, action: str, *ids: int, **fields: str) -> None:
    """Tick the rows, pick a Bulk Action, apply."""
    response = admin.post(
        "/admin/accounts/action/", {"action": action, "rowid": list(ids), **fields}
    )
    assert response.status_code == 302, response.text


def sync(client, **body) -> None:
    """One call of the Panel's agent."""
    response = client.post("/api/sync/account", json=body, headers={"X-Sync-Secret": SYNC_SECRET})
    assert response.status_code == 200, response.text


def bcrypt_from_elsewhere(password: str, cost: int) -> str:
    """A ``$2y$`` hash as PHP (the Panel) writes it, made by another bcrypt implementation."""
    made = pyca_bcrypt.hashpw(password.encode(), pyca_bcrypt.gensalt(cost, prefix=b"2b")).decode()
    return "$2y$" + made.removeprefix("$2b$")


def storage_limit_kb(dovecot: MailServer, email: str) -> int | None:
    """The STORAGE limit IMAP GETQUOTAROOT reports for INBOX (None = no limit)."""
    imap = dovecot.login(email, PASSWORD)
    status, (_roots, quotas) = imap.getquotaroot("INBOX")
    imap.logout()
    assert status == "OK"
    match = re.search(rb"STORAGE \d+ (\d+)", b" ".join(line for line in quotas if line))
    return int(match[1]) if match else None


def test_account_created_in_admin_logs_in_at_once(dovecot, admin, domain):
    add_account(admin, f"jane@{domain}")
    assert dovecot.can_log_in(f"jane@{domain}", PASSWORD)


def test_wrong_password_is_refused(dovecot, admin, domain):
    add_account(admin, f"jane@{domain}")
    assert not dovecot.can_log_in(f"jane@{domain}", PASSWORD + "x")


def test_address_in_other_letter_case_logs_in(dovecot, admin, domain):
    add_account(admin, f"jane@{domain}")
    assert dovecot.can_log_in(f"Jane@{domain.upper()}", PASSWORD)


def test_suspended_account_is_refused_until_unsuspended(dovecot, admin, domain):
    account_id = add_account(admin, f"jane@{domain}")
    bulk(admin, "suspend", account_id)
    assert not dovecot.can_log_in(f"jane@{domain}", PASSWORD)
    bulk(admin, "unsuspend", account_id)
    assert dovecot.can_log_in(f"jane@{domain}", PASSWORD)


def test_status_on_the_account_page_decides_login(dovecot, admin, domain):
    account_id = add_account(admin, f"jane@{domain}")
    for status, can_log_in in (("suspended", False), ("active", True)):
        response = admin.post(
            f"/admin/accounts/edit/?id={account_id}",
            {
                "display_name": "Jane",
                "quota_mb": "0",
                "status": status,
                "version": opened_version(admin, account_id),
            },
        )
        assert response.status_code == 302, response.text
        assert dovecot.can_log_in(f"jane@{domain}", PASSWORD) is can_log_in


def test_disabled_domain_refuses_its_accounts(dovecot, app, admin, domain):
    add_account(admin, f"jane@{domain}")
    [(domain_id,)] = rows(app, sa.select(MailDomain.id).where(MailDomain.domain == domain))
    for can_log_in in (False, True):
        response = admin.post(f"/admin/domains/toggle/?id={domain_id}")
        assert response.status_code == 302, response.text
        assert dovecot.can_log_in(f"jane@{domain}", PASSWORD) is can_log_in


def test_reset_password_replaces_the_old_one(dovecot, admin, domain):
    account_id = add_account(admin, f"jane@{domain}")
    response = admin.post(
        f"/admin/accounts/password/?id={account_id}",
        {
            "new_password": "brand-new-pass",
            "confirm_password": "brand-new-pass",
            "version": opened_version(admin, account_id),
        },
    )
    assert response.status_code == 302, response.text
    assert not dovecot.can_log_in(f"jane@{domain}", PASSWORD)
    assert dovecot.can_log_in(f"jane@{domain}", "brand-new-pass")


def test_webhook_create_with_a_panel_hash_keeps_the_original_password(dovecot, client):
    domain = f"d{secrets.token_hex(4)}.example"
    hashed = bcrypt_from_elsewhere(PASSWORD, cost=12)
    sync(
        client, action="create", email=f"jane@{domain}", password=hashed, quota_mb=0, domain=domain
    )
    assert dovecot.can_log_in(f"jane@{domain}", PASSWORD)


def test_webhook_password_leaves_only_the_new_one(dovecot, admin, client, domain):
    add_account(admin, f"jane@{domain}")
    sync(
        client,
        action="password",
        email=f"jane@{domain}",
        password=bcrypt_from_elsewhere("panel-pass", 4),
    )
    assert not dovecot.can_log_in(f"jane@{domain}", PASSWORD)
    assert dovecot.can_log_in(f"jane@{domain}", "panel-pass")


def test_webhook_delete_refuses_login(dovecot, admin, client, domain):
    add_account(admin, f"jane@{domain}")
    sync(client, action="delete", email=f"jane@{domain}")
    assert not dovecot.can_log_in(f"jane@{domain}", PASSWORD)


def test_sha512_crypt_scheme_and_hashes_from_before_the_switch(dovecot, app, admin, domain):
    add_account(admin, f"before@{domain}")
    app.config["DOVECOT_PASSWORD_SCHEME"] = "SHA512-CRYPT"  # the operator changes the scheme
    add_account(admin, f"after@{domain}")
    stored = dict(
        rows(
            app,
            sa.select(MailAccount.email, MailAccount.password).where(
                MailAccount.email.in_([f"before@{domain}", f"after@{domain}"])
            ),
        )
    )
    assert stored[f"before@{domain}"].startswith("{BLF-CRYPT}$2y$")
    assert stored[f"after@{domain}"].startswith("{SHA512-CRYPT}$6$")
    assert dovecot.can_log_in(f"after@{domain}", PASSWORD)
    assert dovecot.can_log_in(f"before@{domain}", PASSWORD)


def test_quota_set_in_the_admin_is_the_imap_quota(dovecot, admin, domain):
    account_id = add_account(admin, f"jane@{domain}", quota_mb=100)
    assert storage_limit_kb(dovecot, f"jane@{domain}") == 100 * 1024
    bulk(admin, "quota", account_id, quota_mb="250")
    assert storage_limit_kb(dovecot, f"jane@{domain}") == 250 * 1024
    bulk(admin, "quota", account_id, quota_mb="0")
    assert storage_limit_kb(dovecot, f"jane@{domain}") is None


def test_usage_written_by_dovecot_shows_in_the_accounts_list(dovecot, app, admin, domain):
    email = f"jane@{domain}"
    add_account(admin, email, quota_mb=10)
    imap = dovecot.login(email, PASSWORD)
    assert imap.append("INBOX", None, None, MESSAGE)[0] == "OK"
    imap.logout()
    usage = sa.select(MailQuotaUsage.bytes, MailQuotaUsage.messages, MailQuotaUsage.updated_at)
    # quota_clone writes through the dict process, a moment after the APPEND.
    for _ in range(50):
        if found := rows(app, usage.where(MailQuotaUsage.email == email)):
            break
        time.sleep(0.1)
    [(used, messages, updated_at)] = found
    assert (messages, used >= len(MESSAGE)) == (1, True)
    assert updated_at is not None  # stamped by the database: Dovecot writes bytes and messages only
    page = admin.get(f"/admin/accounts/?q={email}")
    assert f"{size_label(used)} used" in page.text


def doveadm(dovecot: MailServer, *args: str) -> list[dict[str, str]]:
    """A doveadm command's table (``-f tab``), one dict per row."""
    header, *lines = dovecot.doveadm("-f", "tab", *args).splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def test_refresh_usage_counts_what_dovecot_counts(dovecot, app, admin, domain, runner):
    """quota_vsizes: Dovecot counts every message with CRLF line ends, while the Maildir files hold
    LF. refresh-usage stores Dovecot's number, which ``doveadm quota get`` shows in KiB."""
    email = f"jane@{domain}"
    add_account(admin, email, quota_mb=10)
    imap = dovecot.login(email, PASSWORD)
    lines = b"From: a@example.net\r\nSubject: lines\r\n\r\n" + b"a line of text\r\n" * 3000
    assert imap.append("INBOX", None, None, lines)[0] == "OK"
    assert imap.create("Sent")[0] == "OK" and imap.append("Sent", None, None, MESSAGE)[0] == "OK"
    imap.logout()
    # One delivered by another program: LF line ends, no sizes in its file name.
    maildir = dovecot.mail_root / domain / "jane" / "Maildir"
    elsewhere = maildir / "new" / "1700000000.M1P1.elsewhere"
    elsewhere.write_bytes(b"From: b@example.net\nSubject: other\n\n" + b"more text\n" * 1000)
    os.chown(elsewhere, maildir.stat().st_uid, maildir.stat().st_gid)
    on_disk = sum(path.stat().st_size for path in maildir.glob("**/*") if path.parent.name in ("cur", "new"))

    doveadm(dovecot, "quota", "recalc", "-u", email)
    [status] = doveadm(dovecot, "mailbox", "status", "-u", email, "-t", "vsize messages", "*")
    quota = {row["Type"]: int(row["Value"]) for row in doveadm(dovecot, "quota", "get", "-u", email)}
    with app.app_context(), get_engine().begin() as connection:  # forget what quota_clone wrote
        connection.execute(sa.delete(MailQuotaUsage).where(MailQuotaUsage.email == email))
    result = runner.invoke(args=["opmail", "refresh-usage"])
    assert result.exit_code == 0, result.output

    [(used, messages)] = rows(app, sa.select(MailQuotaUsage.bytes, MailQuotaUsage.messages).where(MailQuotaUsage.email == email))
    assert (used, messages) == (int(status["vsize"]), int(status["messages"])) == (used, 3)
    assert (-(-used // 1024), messages) == (quota["STORAGE"], quota["MESSAGE"])  # KiB, rounded up
    assert used > on_disk  # what `du -b` would have said


def test_admin_delete_refuses_login_and_keeps_the_maildir(dovecot, admin, domain):
    account_id = add_account(admin, f"jane@{domain}")
    assert dovecot.can_log_in(f"jane@{domain}", PASSWORD)  # the first login creates the Maildir
    response = admin.post(
        f"/admin/accounts/delete/?id={account_id}", {"admin_password": ADMIN_PASSWORD}, follow_redirects=True
    )
    assert response.status_code == 200, response.text
    assert not dovecot.can_log_in(f"jane@{domain}", PASSWORD)
    assert (dovecot.mail_root / domain / "jane" / "Maildir" / "cur").is_dir()


def test_doveadm_checks_of_the_guide_work(dovecot, admin, domain):
    add_account(admin, f"jane@{domain}", quota_mb=100)
    doveadm = ["doveadm", "-c", str(dovecot.conf)]
    auth = subprocess.run(
        [*doveadm, "auth", "test", f"jane@{domain}", PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "auth succeeded" in auth.stdout
    user = subprocess.run(
        [*doveadm, "user", f"jane@{domain}"], capture_output=True, text=True, check=True
    )
    fields = dict(line.split("\t", 1) for line in user.stdout.splitlines())
    assert fields["home"] == f"{dovecot.mail_root}/{domain}/jane"
    assert fields["quota_rule"] == "*:storage=100M"


# --- International domains (issue 15) ------------------------------------------------------------

def sasl_plain_login(dovecot: MailServer, login: str, password: str) -> bool:
    """AUTHENTICATE PLAIN, whose credentials are UTF-8 by definition (imaplib's LOGIN is ASCII)."""
    import imaplib

    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10)
    try:
        imap.authenticate("PLAIN", lambda _: b"\0" + login.encode() + b"\0" + password.encode())
    except imaplib.IMAP4.error as error:
        if "AUTHENTICATIONFAILED" not in str(error):
            raise
        return False
    finally:
        imap.shutdown()
    return True


@pytest.fixture
def idn_domain(admin) -> tuple[str, str]:
    """An international domain added in Unicode: (its Unicode form, its stored xn-- form)."""
    label = f"bücher{secrets.token_hex(3)}"
    response = admin.post("/admin/domains/new/", {"domain": f"{label}.example"})
    assert response.status_code == 302, response.text
    return f"{label}.example", normalize_domain(f"{label}.example")


def test_an_international_address_logs_in_in_both_forms(dovecot, admin, idn_domain):
    """Dovecot refused anna@bücher.example (its default auth_username_chars, and no lookup of the
    Unicode form). Both forms log in, to the one mailbox; a wrong password is still refused."""
    shown, stored = idn_domain
    add_account(admin, f"anna@{shown}")
    assert dovecot.can_log_in(f"anna@{stored}", PASSWORD)
    assert sasl_plain_login(dovecot, f"anna@{stored}", PASSWORD)
    assert sasl_plain_login(dovecot, f"anna@{shown}", PASSWORD)
    assert not sasl_plain_login(dovecot, f"anna@{shown}", PASSWORD + "x")
    assert not sasl_plain_login(dovecot, f"bob@{shown}", PASSWORD)
    # The Unicode form is the stored account: the same user and home for every Dovecot service.
    found = dovecot.doveadm("user", f"anna@{shown}")
    assert re.search(rf"^user\s+anna@{re.escape(stored)}$", found, re.M), found
    assert re.search(rf"^home\s+\S+/{re.escape(stored)}/anna$", found, re.M), found


def test_an_international_address_is_refused_when_suspended_in_both_forms(dovecot, admin, idn_domain):
    shown, stored = idn_domain
    account_id = add_account(admin, f"anna@{shown}")
    bulk(admin, "suspend", account_id)
    assert not sasl_plain_login(dovecot, f"anna@{shown}", PASSWORD)
    assert not sasl_plain_login(dovecot, f"anna@{stored}", PASSWORD)
