"""Mail to every kind of address, through a real Postfix into a real Dovecot, as the admin set it up.

Each test drives opmail as an admin does (the forms) or as the Panel does (the webhook), then sends
with smtplib into Postfix's port 25 and reads with imaplib; what leaves for other domains (forwards,
autoresponder replies) is caught by the outside world's smtp-sink. Postfix and Dovecot read the files
``flask opmail mail-config`` wrote, on SQLite and on MariaDB, and are never reloaded: every change
counts for the next message.
"""

from __future__ import annotations

import secrets
import subprocess
from datetime import date, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from opmail.models import MailDomain, MailGroup, MailQuotaUsage
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import opened_version, rows
from tests.mailserver import MailServer

PASSWORD = "mailbox-pass-1"
SYNC_SECRET = secrets.token_hex(16)
OUTSIDE = "outside.test"  # not ours: Postfix relays it to the smtp-sink


@pytest.fixture
def db_url(mail_server: MailServer) -> str:
    return mail_server.db_url


@pytest.fixture
def app_overrides(mail_server: MailServer) -> dict:
    return {"MAILDIR_ROOT": str(mail_server.mail_root), "MAIL_SYNC_SECRET": SYNC_SECRET}


@pytest.fixture
def domain(admin) -> str:
    """A domain added under Admin → Domains, new for each test (the servers outlive their rows)."""
    name = f"d{secrets.token_hex(4)}.example"
    response = admin.post("/admin/domains/new/", {"domain": name})
    assert response.status_code == 302, response.text
    return name


def sender() -> str:
    """A new outside sender: autoresponders remember whom they answered."""
    return f"s{secrets.token_hex(4)}@{OUTSIDE}"


def add_account(admin, address: str, quota_mb: int = 0) -> int:
    """Admin → Accounts → Add Account; returns the new account's id."""
    response = admin.post(
        "/admin/accounts/new/", {"email": address, "password": PASSWORD, "quota_mb": str(quota_mb)}
    )
    assert response.status_code == 302, response.text
    return int(parse_qs(urlsplit(response.location).query)["id"][0])


def post_ok(admin, url: str, data: dict) -> None:
    response = admin.post(url, data)
    assert response.status_code == 302, response.text


def set_forwarding(admin, account_id: int, destinations: list[str], keep_copy: bool) -> None:
    """The account page's Forwarding form."""
    data = {"destinations": "\n".join(destinations)} | ({"keep_copy": "y"} if keep_copy else {})
    post_ok(admin, f"/admin/accounts/forwarding/?id={account_id}", data)


def delivered(server: MailServer, address: str, subjects: list[str]) -> None:
    """Wait until the account's INBOX (read over IMAP) holds exactly ``subjects``."""
    server.wait_for(lambda: server.inbox_subjects(address, PASSWORD) == sorted(subjects), f"{subjects} for {address}")


def test_mail_to_an_account_lands_in_its_inbox(mail_server, admin, domain):
    add_account(admin, f"jane@{domain}")
    mail_server.send(sender(), [f"JANE@{domain}"], "Hello Jane")
    delivered(mail_server, f"jane@{domain}", ["Hello Jane"])


def test_mail_to_an_alias_reaches_each_destination(mail_server, admin, domain):
    for name in ("jane", "bob"):
        add_account(admin, f"{name}@{domain}")
    post_ok(admin, "/admin/aliases/new/", {"alias_email": f"sales@{domain}", "destinations": f"jane@{domain}\nbob@{domain}"})
    mail_server.send(sender(), [f"sales@{domain}"], "Offer")
    delivered(mail_server, f"jane@{domain}", ["Offer"])
    delivered(mail_server, f"bob@{domain}", ["Offer"])


def test_a_catch_all_takes_unknown_addresses_but_never_an_accounts_mail(mail_server, admin, domain):
    for name in ("jane", "bob"):
        add_account(admin, f"{name}@{domain}")
    post_ok(admin, "/admin/aliases/new/", {"alias_email": f"@{domain}", "destinations": f"bob@{domain}"})
    mail_server.send(sender(), [f"nobody-here@{domain}"], "Stray")
    mail_server.send(sender(), [f"jane@{domain}"], "For Jane")
    delivered(mail_server, f"bob@{domain}", ["Stray"])
    delivered(mail_server, f"jane@{domain}", ["For Jane"])


def add_group(app, admin, address: str, member_ids: list[int]) -> None:
    """Admin → Groups: a group with ``address``, then its members from the group's page."""
    post_ok(admin, "/admin/groups/new/", {"name": f"group {address}", "email": address})
    [(group_id,)] = rows(app, sa.select(MailGroup.id).where(MailGroup.email == address))
    for account_id in member_ids:
        post_ok(admin, f"/admin/groups/members/add/?id={group_id}", {"account_id": str(account_id)})


def test_mail_to_a_group_address_reaches_every_member(mail_server, app, admin, domain):
    ids = [add_account(admin, f"{name}@{domain}") for name in ("jane", "bob", "eve")]
    add_group(app, admin, f"team@{domain}", ids[:2])
    mail_server.send(sender(), [f"team@{domain}"], "Team news")
    delivered(mail_server, f"jane@{domain}", ["Team news"])
    delivered(mail_server, f"bob@{domain}", ["Team news"])
    mail_server.settle()
    assert mail_server.inbox_subjects(f"eve@{domain}", PASSWORD) == []


def test_forward_without_a_copy_leaves_the_mailbox_empty(mail_server, admin, domain):
    jane = add_account(admin, f"jane@{domain}")
    add_account(admin, f"bob@{domain}")
    set_forwarding(admin, jane, [f"bob@{domain}"], keep_copy=False)
    mail_server.send(sender(), [f"jane@{domain}"], "Forwarded")
    delivered(mail_server, f"bob@{domain}", ["Forwarded"])
    mail_server.settle()
    assert mail_server.inbox_subjects(f"jane@{domain}", PASSWORD) == []


def test_forward_with_a_copy_and_to_another_domain(mail_server, admin, domain):
    jane = add_account(admin, f"jane@{domain}")
    elsewhere = f"jane.elsewhere{secrets.token_hex(3)}@{OUTSIDE}"
    set_forwarding(admin, jane, [elsewhere], keep_copy=True)
    mail_server.send(sender(), [f"jane@{domain}"], "Both places")
    delivered(mail_server, f"jane@{domain}", ["Both places"])
    mail_server.settle()
    [received] = mail_server.sent_to(elsewhere)
    assert received.message["Subject"] == "Both places"
    # Turned off on the page: the next message stays home only.
    set_forwarding(admin, jane, [], keep_copy=False)
    mail_server.send(sender(), [f"jane@{domain}"], "Home only")
    delivered(mail_server, f"jane@{domain}", ["Both places", "Home only"])
    mail_server.settle()
    assert len(mail_server.sent_to(elsewhere)) == 1


def test_unknown_address_of_a_served_domain_is_refused_at_rcpt(mail_server, admin, domain):
    add_account(admin, f"jane@{domain}")
    code, reply = mail_server.rcpt(f"john@{domain}")
    assert (code, reply[:5]) == (550, "5.1.1"), reply


def test_disabled_domain_is_refused_and_enabled_again_receives(mail_server, app, admin, domain):
    add_account(admin, f"jane@{domain}")
    [(domain_id,)] = rows(app, sa.select(MailDomain.id).where(MailDomain.domain == domain))
    post_ok(admin, f"/admin/domains/toggle/?id={domain_id}", {})
    code, reply = mail_server.rcpt(f"jane@{domain}")
    assert code >= 500 and "Relay access denied" in reply, (code, reply)
    post_ok(admin, f"/admin/domains/toggle/?id={domain_id}", {})
    # smtpd remembers, per sender, how it resolved an address (docs/mail-flow.md): a new sender.
    assert mail_server.rcpt(f"jane@{domain}", sender=sender())[0] == 250


def test_a_domain_turned_off_is_refused_even_by_an_smtpd_that_remembers_it(mail_server, app, admin, domain):
    add_account(admin, f"jane@{domain}")
    writer = sender()
    assert mail_server.rcpt(f"jane@{domain}", sender=writer)[0] == 250
    [(domain_id,)] = rows(app, sa.select(MailDomain.id).where(MailDomain.domain == domain))
    post_ok(admin, f"/admin/domains/toggle/?id={domain_id}", {})
    code, reply = mail_server.rcpt(f"jane@{domain}", sender=writer)
    assert code >= 500, (code, reply)


def test_deleted_accounts_are_refused_at_rcpt(mail_server, admin, client, domain):
    gone = add_account(admin, f"gone@{domain}")
    add_account(admin, f"panel@{domain}")
    assert mail_server.rcpt(f"gone@{domain}")[0] == 250
    response = admin.post(f"/admin/accounts/delete/?id={gone}", {"admin_password": ADMIN_PASSWORD}, follow_redirects=True)
    assert "Maildir" in response.text, response.text
    response = client.post(
        "/api/sync/account",
        json={"action": "delete", "email": f"panel@{domain}"},
        headers={"X-Sync-Secret": SYNC_SECRET},
    )
    assert response.status_code == 200, response.text
    for address in (f"gone@{domain}", f"panel@{domain}"):
        code, reply = mail_server.rcpt(address)
        assert (code, reply[:5]) == (550, "5.1.1"), (address, reply)


def test_suspended_account_receives_but_cannot_log_in(mail_server, admin, domain):
    jane = add_account(admin, f"jane@{domain}")
    post_ok(admin, "/admin/accounts/action/", {"action": "suspend", "rowid": [jane]})
    mail_server.send(sender(), [f"jane@{domain}"], "While away")
    mail_server.wait_for(lambda: mail_server.maildir_subjects(f"jane@{domain}") == ["While away"], "the Maildir")
    assert not mail_server.can_log_in(f"jane@{domain}", PASSWORD)


def test_full_mailbox_is_refused_at_rcpt_and_nothing_is_queued(mail_server, admin, domain):
    jane = add_account(admin, f"jane@{domain}")
    mail_server.send(sender(), [f"jane@{domain}"], "Big", size=1_500_000)
    delivered(mail_server, f"jane@{domain}", ["Big"])
    # 1.5 MB in a mailbox that may hold 1 MB (set on the account page): full.
    post_ok(admin, f"/admin/accounts/edit/?id={jane}", {
        "display_name": "", "quota_mb": "1", "status": "active", "version": opened_version(admin, jane),
    })
    mail_server.settle()
    code, reply = mail_server.rcpt(f"jane@{domain}", size=2000)
    assert (code, reply[:5]) == (452, "4.2.2"), reply
    assert mail_server.queued() == []
    assert mail_server.inbox_subjects(f"jane@{domain}", PASSWORD) == ["Big"]


def kilobytes(size: int) -> int:
    """A byte count as doveadm shows it: in KB, rounded up."""
    return -(-size // 1024)


def usage_bytes(app, address: str) -> int | None:
    found = rows(app, sa.select(MailQuotaUsage.bytes).where(MailQuotaUsage.email == address))
    return found[0][0] if found else None


def test_usage_after_lmtp_and_lda_deliveries_is_what_dovecot_counts(mail_server, app, admin, domain):
    address = f"jane@{domain}"
    add_account(admin, address, quota_mb=100)
    mail_server.send(sender(), [address], "By LMTP", size=50_000)
    delivered(mail_server, address, ["By LMTP"])
    after_lmtp = mail_server.wait_for(lambda: usage_bytes(app, address), "usage after LMTP")
    assert kilobytes(after_lmtp) == mail_server.quota_kilobytes(address) > 40

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender(), address, "By LDA"
    message.set_content("y" * 30_000)
    mail_server.deliver_with_lda(address, message.as_bytes())
    after_lda = mail_server.wait_for(lambda: (usage_bytes(app, address) or 0) > after_lmtp and usage_bytes(app, address), "usage after LDA")
    assert kilobytes(after_lda) == mail_server.quota_kilobytes(address) > kilobytes(after_lmtp)
    assert mail_server.inbox_subjects(address, PASSWORD) == ["By LDA", "By LMTP"]


# --- Autoresponders ----------------------------------------------------------------------------------


def autoresponder(admin, address: str, subject: str, body: str = "I am away.", *, starts: date | None = None,
                  ends: date | None = None, active: bool = True, autoresponder_id: int | None = None) -> None:
    """Admin → Autoresponders: add one for ``address``, or save the one with ``autoresponder_id``."""
    data = {"subject": subject, "body": body, "starts_at": starts.isoformat() if starts else "",
            "ends_at": ends.isoformat() if ends else ""} | ({"is_active": "y"} if active else {})
    if autoresponder_id is None:
        post_ok(admin, "/admin/autoresponders/new/", {"email": address, **data})
    else:
        post_ok(admin, f"/admin/autoresponders/edit/?id={autoresponder_id}", data)


def replies_to(server: MailServer, writer: str) -> list:
    """The autoresponder replies the outside sender ``writer`` received, once everything settled."""
    server.settle()
    return [received.message for received in server.sent_to(writer)]


def test_autoresponder_answers_each_sender_once_within_its_interval(mail_server, admin, domain):
    address = f"jane@{domain}"
    add_account(admin, address)
    autoresponder(admin, address, "Out of office", "Back on Monday.\nAsk bob@example.com meanwhile.")
    first, second = sender(), sender()
    for writer, subject in ((first, "One"), (first, "Two"), (second, "Three")):
        mail_server.send(writer, [address], subject)
    delivered(mail_server, address, ["One", "Three", "Two"])
    [reply] = replies_to(mail_server, first)
    assert reply["Subject"] == "Out of office"
    assert reply.get_content().strip() == "Back on Monday.\nAsk bob@example.com meanwhile."
    assert reply["Auto-Submitted"].startswith("auto-replied")
    assert [received.sender for received in mail_server.sent_to(first)] == [""]  # null sender: no loops
    assert len(replies_to(mail_server, second)) == 1


def test_autoresponder_answers_only_between_its_dates(mail_server, admin, domain):
    today = date.today()
    for name, starts, ends in (
        ("later", today + timedelta(days=2), None),
        ("over", None, today - timedelta(days=2)),
        ("now", today - timedelta(days=1), today + timedelta(days=1)),
    ):
        add_account(admin, f"{name}@{domain}")
        autoresponder(admin, f"{name}@{domain}", f"{name} away", starts=starts, ends=ends)
    writer = sender()
    mail_server.send(writer, [f"{name}@{domain}" for name in ("later", "over", "now")], "Anyone there?")
    for name in ("later", "over", "now"):
        delivered(mail_server, f"{name}@{domain}", ["Anyone there?"])
    assert [reply["Subject"] for reply in replies_to(mail_server, writer)] == ["now away"]


@pytest.mark.parametrize("header", [{"List-Id": "<news.outside.test>"}, {"Precedence": "list"}])
def test_autoresponder_never_answers_a_mailing_list(mail_server, admin, domain, header):
    address = f"jane@{domain}"
    add_account(admin, address)
    autoresponder(admin, address, "Away")
    writer = sender()
    mail_server.send(writer, [address], "Newsletter", headers=header)
    delivered(mail_server, address, ["Newsletter"])
    assert replies_to(mail_server, writer) == []


def test_autoresponder_turned_off_or_changed_counts_for_the_next_message(mail_server, app, admin, domain):
    address = f"jane@{domain}"
    add_account(admin, address)
    autoresponder(admin, address, "First text")
    [(autoresponder_id,)] = rows(app, sa.text(f"SELECT id FROM mail_autoresponders WHERE email = '{address}'"))
    writer = sender()
    mail_server.send(writer, [address], "One")
    assert [reply["Subject"] for reply in replies_to(mail_server, writer)] == ["First text"]
    # A new text is a new script (a new data id): Pigeonhole compiles it for the next message.
    autoresponder(admin, address, "Second text", autoresponder_id=autoresponder_id)
    writer = sender()
    mail_server.send(writer, [address], "Two")
    assert [reply["Subject"] for reply in replies_to(mail_server, writer)] == ["Second text"]
    autoresponder(admin, address, "Second text", active=False, autoresponder_id=autoresponder_id)
    writer = sender()
    mail_server.send(writer, [address], "Three")
    delivered(mail_server, address, ["One", "Three", "Two"])
    assert replies_to(mail_server, writer) == []


def test_autoresponder_text_cannot_smuggle_sieve_commands(mail_server, admin, domain):
    address = f"jane@{domain}"
    add_account(admin, address)
    subject = 'Away" ; discard ; vacation "x'
    body = 'Back soon.\\" ;\ndiscard;\nredirect "thief@outside.test";\n${hex:41} \\\\ "quoted" \\'
    autoresponder(admin, address, subject, body)
    writer = sender()
    mail_server.send(writer, [address], "Still delivered")
    delivered(mail_server, address, ["Still delivered"])
    [reply] = replies_to(mail_server, writer)
    assert reply["Subject"] == subject
    assert reply.get_content().strip() == body
    assert mail_server.sent_to("thief@outside.test") == []


def test_who_may_send_as_an_address(mail_server, app, admin, domain):
    """smtpd_sender_login_maps, asked as Postfix asks it (postmap reading the generated table)."""
    ids = [add_account(admin, f"{name}@{domain}") for name in ("jane", "bob")]
    post_ok(admin, "/admin/aliases/new/", {"alias_email": f"sales@{domain}", "destinations": f"jane@{domain}\nelse@{OUTSIDE}"})
    add_group(app, admin, f"crew@{domain}", ids[1:])
    table = f"{mail_server.backend}:{mail_server.root}/etc/postfix/opmail/sender-login-maps.cf"

    def logins(address: str) -> set[str]:
        result = subprocess.run(
            ["postmap", "-c", str(mail_server.root / "etc" / "postfix"), "-q", address, table],
            capture_output=True, text=True, timeout=30, check=False,
        )
        return set(filter(None, result.stdout.strip().split(",")))

    assert logins(f"jane@{domain}") == {f"jane@{domain}"}
    assert logins(f"sales@{domain}") == {f"jane@{domain}"}
    assert logins(f"crew@{domain}") == {f"bob@{domain}"}
    assert logins(f"nobody@{domain}") == set()


# --- International domains (issue 15) ------------------------------------------------------------

def send_smtputf8(server: MailServer, recipient: str, subject: str) -> None:
    """Send as a server that speaks SMTPUTF8 does: the recipient as written, UTF-8 on the wire."""
    import smtplib

    message = EmailMessage()
    message["From"] = f"someone@{OUTSIDE}"
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content("Hallo.\n")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        refused = smtp.send_message(message, f"someone@{OUTSIDE}", [recipient], mail_options=["SMTPUTF8"])
    assert not refused, refused


@pytest.fixture
def idn_domain(admin) -> tuple[str, str]:
    """An international domain added in Unicode: (its Unicode form, its stored xn-- form)."""
    from opmail.addresses import normalize_domain

    shown = f"bücher{secrets.token_hex(3)}.example"
    post_ok(admin, "/admin/domains/new/", {"domain": shown})
    return shown, normalize_domain(shown)


def test_mail_to_an_international_address_arrives_in_both_forms(mail_server, admin, idn_domain):
    shown, stored = idn_domain
    add_account(admin, f"anna@{shown}")
    mail_server.send(sender(), [f"anna@{stored}"], "ACE form")
    send_smtputf8(mail_server, f"anna@{shown}", "Unicode form")
    delivered(mail_server, f"anna@{stored}", ["ACE form", "Unicode form"])


def test_an_unknown_international_address_is_refused_at_rcpt_in_both_forms(mail_server, admin, idn_domain):
    import smtplib

    shown, stored = idn_domain
    add_account(admin, f"anna@{shown}")
    assert mail_server.rcpt(f"nobody@{stored}")[0] == 550
    with smtplib.SMTP("127.0.0.1", mail_server.smtp_port, timeout=30) as smtp:
        smtp.ehlo("outside.test")
        assert smtp.mail(f"someone@{OUTSIDE}", ["SMTPUTF8"])[0] == 250
        code, _ = smtp.rcpt(f"nobody@{shown}")
    assert code == 550
