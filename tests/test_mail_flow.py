"""Mail to every kind of address, through a real Postfix into a real Dovecot, as the admin set it up.

Each test drives opmail as an admin does (the forms), then sends with smtplib into Postfix's port 25
and reads with imaplib; what leaves for other domains (forwards, autoresponder replies) is caught by
the outside world's smtp-sink. Postfix and Dovecot read the files ``flask opmail mail-config`` wrote,
on SQLite and on MariaDB, and are never reloaded: every change counts for the next message.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.mailserver import MailServer

PASSWORD = "mailbox-pass-1"


@pytest.fixture
def db_url(mail_server: MailServer) -> str:
    return mail_server.db_url


@pytest.fixture
def app_overrides(mail_server: MailServer) -> dict:
    return {"MAILDIR_ROOT": str(mail_server.mail_root)}


@pytest.fixture
def domain(admin) -> str:
    """A domain added under Admin → Domains, new for each test (the servers outlive their rows)."""
    name = f"d{secrets.token_hex(4)}.example"
    response = admin.post("/admin/domains/new/", {"domain": name})
    assert response.status_code == 302, response.text
    return name


def add_account(admin, address: str, quota_mb: int = 0) -> int:
    """Admin → Accounts → Add Account; returns the new account's id."""
    response = admin.post(
        "/admin/accounts/new/", {"email": address, "password": PASSWORD, "quota_mb": str(quota_mb)}
    )
    assert response.status_code == 302, response.text
    return int(parse_qs(urlsplit(response.location).query)["id"][0])


def test_mail_to_an_account_lands_in_its_inbox(mail_server, admin, domain):
    add_account(admin, f"jane@{domain}")
    mail_server.send("someone@outside.test", [f"jane@{domain}"], "Hello Jane")
    assert mail_server.wait_for(
        lambda: mail_server.inbox_subjects(f"jane@{domain}", PASSWORD) == ["Hello Jane"], "jane's mail"
    )
