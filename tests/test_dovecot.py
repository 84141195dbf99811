"""The Dovecot and Postfix config opmail generates, the usage table Dovecot writes, and
``refresh-usage``.

What Dovecot itself does with these files is in test_dovecot_imap.py, what Postfix and Dovecot do
with mail in test_mail_flow.py.
"""

from __future__ import annotations

import errno
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from opmail import demo, dovecot
from opmail.db import get_engine, get_session
from opmail.models import (
    MailAccount,
    MailAlias,
    MailDomain,
    MailForward,
    MailGroup,
    MailGroupMember,
    MailQuotaUsage,
    MailSieveScript,
)
from tests.helpers import add_account, add_domain, rows


def generated(app, **options) -> dict[str, str]:
    with app.app_context():
        return dovecot.config_files(dovecot.app_settings(**options))


def query(sql_file: str, name: str) -> str:
    """One ``name = …`` setting of dovecot-sql.conf.ext, its continuation lines joined."""
    text = sql_file.replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith(f"{name} =")]
    return " ".join(line.split())


def test_only_active_accounts_of_active_domains_log_in(app):
    sql = generated(app)[dovecot.SQL_FILE]
    for name in ("password_query", "iterate_query"):
        assert "a.is_active = 1 AND a.deleted_at IS NULL AND d.is_active = 1" in query(sql, name)
    assert "WHERE a.email = '%Lu'" in query(sql, "password_query")


@pytest.mark.parametrize("scheme", ["BLF-CRYPT", "SHA512-CRYPT"])
def test_default_scheme_is_the_configured_one(app, scheme):
    app.config["DOVECOT_PASSWORD_SCHEME"] = scheme
    assert f"\ndefault_pass_scheme = {scheme}\n" in generated(app)[dovecot.SQL_FILE]


def test_user_query_gives_home_ids_and_quota_rule_the_database_can_run(app):
    add_domain(app, "example.com")
    add_account(app, "jane@example.com", quota_mb=100)
    user_query = query(
        generated(app, mail_root="/srv/mail/", uid=8, gid=12)[dovecot.SQL_FILE], "user_query"
    )
    assert "a.email AS user, '/srv/mail/%Ld/%Ln' AS home, 8 AS uid, 12 AS gid" in user_query
    # Run it as Dovecot would, with its variables filled in: the backend's own string syntax.
    sql = user_query.removeprefix("user_query = ")
    sql = (
        sql.replace("%Lu", "jane@example.com").replace("%Ld", "example.com").replace("%Ln", "jane")
    )
    with app.app_context(), get_engine().connect() as connection:
        found = connection.exec_driver_sql(sql).all()  # not text(): ":storage" is no bind parameter
    assert found == [("jane@example.com", "/srv/mail/example.com/jane", 8, 12, "*:storage=100M")]


def for_login(sql: str, login: str) -> str:
    """A query with Dovecot's variables for ``login`` filled in (Dovecot escapes them; these are plain)."""
    local, _, domain = login.partition("@")
    return sql.split(" = ", 1)[1].replace("%Lu", login).replace("%Ld", domain).replace("%Ln", local)


@pytest.mark.parametrize("login", ["anna@bücher.example", "anna@xn--bcher-kva.example"])
def test_an_international_address_logs_in_in_both_forms_by_index(app, login):
    """Issue 15: Dovecot refused anna@bücher.example. Both forms find the stored account, and its
    Maildir under the stored domain; each SELECT reads indexes only (no table scan)."""
    add_domain(app, "bücher.example")
    add_account(app, "anna@bücher.example", quota_mb=5)
    add_domain(app, "example.com")
    add_account(app, "anna@example.com")
    sql = generated(app, mail_root="/srv/mail", uid=8, gid=12)[dovecot.SQL_FILE]
    password_query = for_login(query(sql, "password_query"), login)
    user_query = for_login(query(sql, "user_query"), login)
    with app.app_context(), get_engine().connect() as connection:
        [(user, password)] = connection.exec_driver_sql(password_query).all()
        users = connection.exec_driver_sql(user_query).all()
        if connection.dialect.name == "sqlite":
            plans = [" ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}"))
                     for q in (password_query, user_query)]
            assert not any("SCAN a" in plan or "SCAN d" in plan for plan in plans), plans
        else:
            for q in (password_query, user_query):
                plan = connection.exec_driver_sql(f"EXPLAIN {q}").mappings().all()
                assert all(row["type"] != "ALL" for row in plan if row["table"] in ("a", "d")), plan
    assert user == "anna@xn--bcher-kva.example" and password.startswith("{BLF-CRYPT}")
    assert users == [("anna@xn--bcher-kva.example", "/srv/mail/xn--bcher-kva.example/anna", 8, 12, "*:storage=5M")]


def test_only_international_domains_have_a_unicode_form(app):
    add_domain(app, "bücher.example")
    add_domain(app, "example.com")
    assert sorted(rows(app, sa.select(MailDomain.domain, MailDomain.unicode_domain))) == [
        ("example.com", None),
        ("xn--bcher-kva.example", "bücher.example"),
    ]


def test_logins_may_hold_any_character(app):
    """Dovecot's default auth_username_chars refuses ü before it asks the database."""
    assert "\nauth_username_chars =\n" in generated(app)[dovecot.SNIPPET]


def test_snippet_wires_sql_quota_clone_and_the_dict(app):
    snippet = generated(app, conf_dir="/etc")[dovecot.SNIPPET]
    driver = "sqlite" if app.config["DATABASE_URL"].startswith("sqlite") else "mysql"
    for line in (
        "args = /etc/dovecot/dovecot-sql.conf.ext",
        "mail_location = maildir:~/Maildir",
        "mail_plugins = $mail_plugins quota quota_clone",
        "quota = count:User quota",
        "quota_vsizes = yes",
        "quota_clone_dict = proxy::opmail_quota",
        f"opmail_quota = {driver}:/etc/dovecot/dovecot-dict-quota.conf.ext",
    ):
        assert line in snippet


def test_dict_maps_storage_and_messages_to_the_usage_table(app):
    quota_dict = " ".join(generated(app)[dovecot.DICT_FILE].split())
    for pattern, field in (("storage", "bytes"), ("messages", "messages")):
        assert (
            f"pattern = priv/quota/{pattern} table = mail_quota_usage username_field = email "
            f"value_field = {field}"
        ) in quota_dict


@pytest.mark.parametrize(
    "url, connect",
    [
        (
            "mysql+pymysql://mail:s3cret@db.example:3307/opmail?charset=utf8mb4",
            "host=db.example port=3307 dbname=opmail user=mail password=s3cret",
        ),
        (
            "mysql+pymysql://mail:s3cret@localhost/opmail?unix_socket=/run/mysqld/mysqld.sock",
            "host=/run/mysqld/mysqld.sock dbname=opmail user=mail password=s3cret",
        ),
        ("sqlite:////var/lib/opmail/opmail.db", "/var/lib/opmail/opmail.db"),
    ],
)
def test_connect_line_from_a_database_url(url, connect):
    assert dovecot.connect_line(sa.make_url(url)) == connect


def test_connect_line_can_hide_the_password():
    url = sa.make_url("mysql+pymysql://mail:s3cret@db.example/opmail")
    assert dovecot.connect_line(url, hide_password=True).endswith("password=<password>")


@pytest.mark.parametrize(
    "url, problem",
    [
        ("postgresql://mail@db.example/opmail", "MariaDB/MySQL and SQLite"),
        ("sqlite://", "in-memory"),
        ("mysql+pymysql://mail:two%20words@db.example/opmail", "space"),
    ],
)
def test_connect_line_refuses_what_dovecot_cannot_use(url, problem):
    with pytest.raises(dovecot.DovecotConfigError, match=problem):
        dovecot.connect_line(sa.make_url(url))


def test_connect_override_is_a_url_or_a_ready_line(app):
    line = "host=/run/mysqld/mysqld.sock dbname=mail user=dovecot password=ro"
    assert f"\nconnect = {line}\n" in generated(app, connect=line)[dovecot.SQL_FILE]
    url = "mysql+pymysql://dovecot:ro@127.0.0.1:3306/mail"
    files = generated(app, connect=url)
    for name in (dovecot.SQL_FILE, dovecot.DICT_FILE):
        assert (
            "\nconnect = host=127.0.0.1 port=3306 dbname=mail user=dovecot password=ro\n"
            in files[name]
        )
    assert "\ndriver = mysql\n" in files[dovecot.SQL_FILE]


def test_cli_prints_every_file_under_a_heading(app, runner):
    result = runner.invoke(args=["opmail", "mail-config", "--mail-root", "/srv/mail"])
    assert result.exit_code == 0, result.output
    names = [dovecot.SQL_FILE, dovecot.DICT_FILE, dovecot.SIEVE_DICT_FILE, dovecot.SNIPPET]
    for name in [*names, *dovecot.POSTFIX_LOOKUPS, dovecot.POSTFIX_MAIN, dovecot.POSTFIX_MASTER]:
        assert f"==> /etc/{name} <==" in result.output
    assert "'/srv/mail/%Ld/%Ln' AS home" in result.output


def test_cli_writes_the_files_with_the_password_readable_by_their_server_only(app, runner, tmp_path):
    out = tmp_path / "etc"
    result = runner.invoke(args=["opmail", "mail-config", "--out", str(out)])
    assert result.exit_code == 0, result.output
    secret = [dovecot.SQL_FILE, dovecot.DICT_FILE, dovecot.SIEVE_DICT_FILE, *dovecot.POSTFIX_LOOKUPS]
    public = [dovecot.SNIPPET, dovecot.POSTFIX_MAIN, dovecot.POSTFIX_MASTER]
    modes = {name: stat.S_IMODE((out / name).stat().st_mode) for name in secret + public}
    assert modes == {**dict.fromkeys(secret, 416), **dict.fromkeys(public, 420)}
    groups = {name.partition("/")[0]: (out / name).group() for name in secret}
    assert groups == {"dovecot": "dovecot", "postfix": "postfix"}
    assert f"args = {out}/dovecot/dovecot-sql.conf.ext" in (out / dovecot.SNIPPET).read_text()
    driver = "sqlite" if app.config["DATABASE_URL"].startswith("sqlite") else "mysql"
    main_cf = (out / dovecot.POSTFIX_MAIN).read_text()
    assert (
        f"virtual_alias_maps = proxy:{driver}:{out}/postfix/opmail/unicode-addresses.cf, "
        f"proxy:{driver}:{out}/postfix/opmail/virtual-alias-maps.cf\n"
    ) in main_cf
    assert f"\ntransport_maps = proxy:{driver}:{out}/postfix/opmail/transport-maps.cf\n" in main_cf
    # The service transport-maps.cf names, for mail in the Unicode form (SMTPUTF8; issue 15).
    assert "\nopmail-lda unix " in (out / dovecot.POSTFIX_MASTER).read_text()


def test_cli_refuses_a_mail_root_that_would_break_the_query(app, runner):
    result = runner.invoke(args=["opmail", "mail-config", "--mail-root", "/srv/it's"])
    assert result.exit_code == 1
    assert "The mail root must be an absolute path" in result.output


def test_dovecot_page_shows_the_files_without_the_password(app, admin):
    page = admin.get("/admin/dovecot/")
    assert page.status_code == 200
    names = [dovecot.SQL_FILE, dovecot.DICT_FILE, dovecot.SIEVE_DICT_FILE, dovecot.SNIPPET]
    names += [*dovecot.POSTFIX_LOOKUPS, dovecot.POSTFIX_MAIN, dovecot.POSTFIX_MASTER]
    for name in names:
        assert f"/etc/{name}" in page.text
    assert page.text.count('data-copy="dovecot-file-') == len(names)
    assert "onclick" not in page.text
    password = sa.make_url(app.config["DATABASE_URL"]).password
    if password:  # MariaDB; SQLite has none
        assert f"password={password}" not in page.text
        assert f"password = {password}" not in page.text
        assert "password=&lt;password&gt;" in page.text  # Dovecot's connect line
        assert "password = &lt;password&gt;" in page.text  # Postfix's lookup files


# --- The usage table ------------------------------------------------------------------------------

# What Dovecot's dict sends (MariaDB: seen in its general log; SQLite: its ON CONFLICT form).
DOVECOT_UPSERT = {
    "mysql": "INSERT INTO mail_quota_usage (bytes,messages,email) "
    "VALUES ('{0}','1','jane@example.com') "
    "ON DUPLICATE KEY UPDATE bytes='{0}',messages='1'",
    "sqlite": "INSERT INTO mail_quota_usage (bytes,messages,email) "
    "VALUES ('{0}','1','jane@example.com') "
    "ON CONFLICT (email) DO UPDATE SET bytes='{0}',messages='1'",
}


def test_database_stamps_updated_at_when_dovecot_writes_usage(app):
    stamped = sa.select(MailQuotaUsage.bytes, MailQuotaUsage.updated_at)
    with app.app_context(), get_engine().begin() as connection:
        upsert = DOVECOT_UPSERT[connection.dialect.name]
        connection.exec_driver_sql(upsert.format(100))
        [(_, inserted_at)] = connection.execute(stamped).all()
        connection.execute(sa.update(MailQuotaUsage).values(updated_at=datetime(2001, 1, 1)))
        connection.exec_driver_sql(upsert.format(200))
        [(used, updated_at)] = connection.execute(stamped).all()
    assert inserted_at is not None
    assert (used, updated_at.year > 2001) == (200, True)


# --- refresh-usage --------------------------------------------------------------------------------


def message(folder: Path, name: str, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x" * size)


@pytest.fixture
def mailboxes(app, tmp_path) -> Path:
    """jane: messages in INBOX and Sent; joe: no Maildir yet; ann: a Sent folder it cannot read."""
    add_domain(app, "example.com")
    for local in ("jane", "joe", "ann"):
        add_account(app, f"{local}@example.com")
    root = Path(app.config["MAILDIR_ROOT"]) / "example.com"
    jane = root / "jane" / "Maildir"
    message(jane / "cur", "1.M1.host,S=100:2,S", 100)
    message(jane / "new", "2.M2.host,S=50", 50)
    message(jane / ".Sent" / "cur", "3.M3.host,S=30:2,S", 30)
    message(jane / "tmp", "4.M4.host", 999)  # still being delivered: not counted
    (jane / "dovecot.index.log").write_bytes(b"x" * 500)  # Dovecot's own files: not mail
    message(root / "ann" / "Maildir" / "cur", "1.M1.host", 10)
    (root / "ann" / "Maildir" / ".Sent" / "cur").mkdir(parents=True)
    return root


@pytest.fixture
def unreadable_sent(monkeypatch, mailboxes):
    """Make ann's Sent folder unreadable; done in Python, as root reads a 0000 directory anyway."""
    locked = mailboxes / "ann" / "Maildir" / ".Sent" / "cur"
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(dovecot.os, "scandir", scandir)


def usage(app) -> dict[str, tuple[int, int]]:
    found = rows(
        app, sa.select(MailQuotaUsage.email, MailQuotaUsage.bytes, MailQuotaUsage.messages)
    )
    return {email: (used, messages) for email, used, messages in found}


def test_refresh_usage_measures_every_maildir(app, runner, mailboxes, unreadable_sent):
    with app.app_context():
        get_session().add(MailQuotaUsage(email="ann@example.com", bytes=7, messages=7))
        get_session().commit()
    result = runner.invoke(args=["opmail", "refresh-usage"])
    assert result.exit_code == 0, result.output
    assert (
        "Usage stored for 2 accounts (1 without a Maildir yet, counted as empty)." in result.stdout
    )
    assert "Cannot read the Maildir of ann@example.com" in result.stderr
    assert usage(app) == {
        "jane@example.com": (180, 3),
        "joe@example.com": (0, 0),
        "ann@example.com": (7, 7),  # left as it was, not half-counted
    }


def test_sizes_are_counted_with_crlf_line_ends_as_dovecot_does(tmp_path):
    maildir = tmp_path / "Maildir"
    # LF lines, CRLF lines, and a CRLF split across two 64 KiB reads (one byte before the LF).
    body = b"x" * 65535 + b"\r\n" + b"lf line\n" * 10 + b"crlf line\r\n" * 10
    message(maildir / "cur", "1.M1.other:2,S", 0)
    (maildir / "cur" / "1.M1.other:2,S").write_bytes(body)
    # Dovecot's own name carries the size with CRLF (W=): it is taken as it is.
    message(maildir / "new", "2.M2.host,S=5,W=7", 5)
    assert dovecot.maildir_usage(maildir) == (len(body) + 10 + 7, 2)


def test_refresh_usage_works_in_batches_and_reports_progress(app, mailboxes):
    done = []
    with app.app_context():
        report = dovecot.refresh_usage(batch_size=2, progress=done.append)
    assert done == [2, 1]
    assert (report.measured, report.missing, report.unreadable) == (3, ["joe@example.com"], [])
    assert usage(app)["jane@example.com"] == (180, 3)


def test_refresh_usage_reads_another_mail_root(app, runner, mailboxes, tmp_path):
    moved = tmp_path / "elsewhere"
    mailboxes.parent.rename(moved)
    result = runner.invoke(args=["opmail", "refresh-usage", "--mail-root", str(moved)])
    assert result.exit_code == 0, result.output
    assert usage(app)["jane@example.com"] == (180, 3)


# --- Every lookup reads indexes -------------------------------------------------------------------

# The values Postfix and Dovecot put into the queries for one address.
LOOKUP_VALUES = {"%s": "user7@demo00001.example", "%d": "demo00001.example", "%Lu": "user7@demo00001.example",
                 "%Ld": "demo00001.example", "%Ln": "user7", "%u": "user7"}


def filled(query: str) -> str:
    for variable, value in LOOKUP_VALUES.items():
        query = query.replace(variable, value)
    return query


@pytest.mark.mariadb_only
def test_every_generated_lookup_reads_indexes_not_whole_tables(app):
    """Postfix asks at every message and Dovecot at every login and delivery: each query must find
    its rows through a key, whatever the number of accounts (EXPLAIN on MariaDB, no full scan)."""
    with app.app_context():
        demo.seed_demo(3000, 20, "{BLF-CRYPT}x")
        with get_engine().begin() as connection:
            ids = connection.execute(sa.select(MailAccount.id, MailAccount.email, MailAccount.domain_id)).all()
            connection.execute(sa.insert(MailAlias), [
                {"domain_id": domain_id, "alias_email": f"alias{n}-{email}", "destination_email": email}
                for n, (_, email, domain_id) in enumerate(ids[:600])
            ])
            connection.execute(sa.insert(MailGroup), [{"name": f"g{n}", "email": f"g{n}@demo00001.example"} for n in range(100)])
            group_ids = connection.scalars(sa.select(MailGroup.id)).all()
            connection.execute(sa.insert(MailGroupMember), [
                {"group_id": group_ids[n % 100], "account_id": account_id} for n, (account_id, _, _) in enumerate(ids[:1000])
            ])
            connection.execute(sa.insert(MailForward), [
                {"account_id": account_id, "destination_email": "x@elsewhere.example"} for account_id, _, _ in ids[:500]
            ])
            connection.execute(sa.insert(MailSieveScript), [
                {"email": email, "name": "opmail", "script": "keep;"} for _, email, _ in ids[:500]
            ])
            connection.exec_driver_sql(
                "ANALYZE TABLE mail_domains, mail_accounts, mail_aliases, mail_groups, mail_group_members,"
                " mail_forwards, mail_sieve_scripts, mail_quota_usage"
            )
    files = generated(app)
    queries = {name: query for name, (_, query) in dovecot.POSTFIX_LOOKUPS.items()}
    for setting in ("password_query", "user_query"):  # iterate_query lists every account on purpose
        queries[setting] = query(files[dovecot.SQL_FILE], setting).removeprefix(f"{setting} = ")
    # What Dovecot's dict asks for an autoresponder and for the usage (as its SQL driver builds it).
    queries["sieve name"] = "SELECT id FROM mail_sieve_scripts WHERE name = 'opmail' AND email = '%s'"
    queries["sieve data"] = "SELECT script FROM mail_sieve_scripts WHERE id = '7' AND email = '%s'"
    queries["usage"] = "SELECT bytes FROM mail_quota_usage WHERE email = '%s'"
    with app.app_context(), get_engine().connect() as connection:
        for name, sql in queries.items():
            plan = connection.exec_driver_sql("EXPLAIN " + filled(sql)).mappings().all()
            # <derived…> and <union…> are the few rows the query already found, not a table.
            scans = [row for row in plan if row["type"] == "ALL" and not str(row["table"]).startswith("<")]
            assert not scans, (name, plan)
