"""The mail server's side of the mail database: the Dovecot and Postfix files that make them read
opmail's tables (logins, delivery, aliases, groups, forwards, quotas, autoresponders), and the
Maildir walk that fills ``mail_quota_usage`` where quota_clone is not used.

Rules layer: the app context gives the config and the database; no Flask request in here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import URL, func, make_url, select
from sqlalchemy.dialects import mysql, sqlite

from .db import get_engine, get_session
from .models import MailAccount, MailQuotaUsage, utcnow
from .rules.core import transaction
from .sieve import SCRIPT_NAME

CONF_DIR = "/etc"  # the files go to CONF_DIR/dovecot/… and CONF_DIR/postfix/…
POSTFIX_QUEUE = "/var/spool/postfix"  # Postfix's queue_directory, where Dovecot puts its sockets
DEFAULT_UID = DEFAULT_GID = 5000  # the customary "vmail" owner of every Maildir
MAIL_USER = "vmail"
SQL_FILE = "dovecot/dovecot-sql.conf.ext"
DICT_FILE = "dovecot/dovecot-dict-quota.conf.ext"
SIEVE_DICT_FILE = "dovecot/dovecot-dict-sieve.conf.ext"
SNIPPET = "dovecot/conf.d/11-opmail.conf"
# Postfix's lookup tables: the file, what it answers, and its query (%s = the address or domain
# Postfix looks up, %d its domain; Postfix quotes both). Each query reads unique indexes or primary
# keys. An address of a disabled domain is nobody's: smtpd remembers for a while which domains are
# ours, so the maps themselves must not answer for a domain that was just turned off.
_DOMAIN_ACTIVE = "EXISTS (SELECT 1 FROM mail_domains WHERE domain = '%d' AND is_active = 1)"
POSTFIX_LOOKUPS = {
    "postfix/opmail/virtual-mailbox-domains.cf": (
        "the domains Postfix receives mail for (active ones only), an international one also in\n"
        "# Unicode (bücher.example as well as xn--bcher-kva.example).",
        "SELECT domain FROM mail_domains WHERE domain = '%s' AND is_active = 1"
        " UNION ALL SELECT domain FROM mail_domains WHERE unicode_domain = '%s' AND is_active = 1",
    ),
    "postfix/opmail/unicode-addresses.cf": (
        "an address of an international domain written in Unicode (anna@bücher.example, sent\n"
        "# with SMTPUTF8) is the stored address (anna@xn--bcher-kva.example), when that address\n"
        "# or the domain's catch-all receives and it is no deleted account; the other maps then\n"
        "# take it from there.",
        "SELECT CONCAT('%u', '@', d.domain) FROM mail_domains d"
        " WHERE d.unicode_domain = '%d' AND d.is_active = 1"
        " AND EXISTS (SELECT 1 FROM mail_addresses m"
        " WHERE m.address IN (CONCAT('%u', '@', d.domain), CONCAT('@', d.domain)))"
        " AND NOT EXISTS (SELECT 1 FROM mail_accounts a"
        " WHERE a.email = CONCAT('%u', '@', d.domain) AND a.deleted_at IS NOT NULL)",
    ),
    "postfix/opmail/virtual-mailbox-maps.cf": (
        "the mailboxes: accounts that exist and are not deleted (suspended ones receive).",
        f"SELECT email FROM mail_accounts WHERE email = '%s' AND deleted_at IS NULL AND {_DOMAIN_ACTIVE}",
    ),
    "postfix/opmail/virtual-alias-maps.cf": (
        "where mail to an address goes: an alias's (or catch-all @domain's) destinations, a"
        "\n# group's members, an account's forwards (a copy kept = the account itself among them), or"
        "\n# the account itself, so that a catch-all never takes an account's mail.",
        "SELECT t.destination FROM ("
        "SELECT destination_email AS destination FROM mail_aliases WHERE alias_email = '%s' AND is_active = 1"
        " UNION ALL SELECT a.email FROM mail_groups g"
        " JOIN mail_group_members m ON m.group_id = g.id JOIN mail_accounts a ON a.id = m.account_id"
        " WHERE g.email = '%s' AND a.deleted_at IS NULL"
        " UNION ALL SELECT f.destination_email FROM mail_accounts a"
        " JOIN mail_forwards f ON f.account_id = a.id WHERE a.email = '%s' AND a.deleted_at IS NULL"
        " UNION ALL SELECT a.email FROM mail_accounts a WHERE a.email = '%s' AND a.deleted_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM mail_forwards f WHERE f.account_id = a.id)"
        f") t WHERE {_DOMAIN_ACTIVE}",
    ),
    "postfix/opmail/transport-maps.cf": (
        "how mail for an international domain is stored: through dovecot-lda (the opmail-lda\n"
        "# service of master.cf), because Dovecot 2.3's LMTP does not offer SMTPUTF8, and Postfix\n"
        "# returns a message sent to anna@bücher.example with SMTPUTF8 that LMTP would have to take.",
        "SELECT 'opmail-lda:' FROM mail_domains WHERE domain = '%s' AND unicode_domain IS NOT NULL",
    ),
    "postfix/opmail/sender-login-maps.cf": (
        "who may send as an address: the account itself, the accounts an alias"
        "\n# delivers to, a group's members.",
        "SELECT email FROM mail_accounts WHERE email = '%s' AND deleted_at IS NULL"
        " UNION ALL SELECT a.email FROM mail_aliases al JOIN mail_accounts a ON a.email = al.destination_email"
        " WHERE al.alias_email = '%s' AND al.is_active = 1 AND a.deleted_at IS NULL"
        " UNION ALL SELECT a.email FROM mail_groups g"
        " JOIN mail_group_members m ON m.group_id = g.id JOIN mail_accounts a ON a.id = m.account_id"
        " WHERE g.email = '%s' AND a.deleted_at IS NULL",
    ),
}
POSTFIX_MAIN = "postfix/opmail/main.cf"
POSTFIX_MASTER = "postfix/opmail/master.cf"
HIDDEN_PASSWORD = "<password>"  # noqa: S105 what the page shows instead of it
USAGE_BATCH = 500

# Dovecot's SQL driver for each SQLAlchemy dialect, and how that driver glues strings together.
_DRIVERS = {"mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
_QUOTA_RULE = {
    "mysql": "CONCAT('*:storage=', a.quota_mb, 'M')",
    "sqlite": "'*:storage=' || a.quota_mb || 'M'",
}
_CAN_LOG_IN = "a.is_active = 1 AND a.deleted_at IS NULL AND d.is_active = 1"
# The stored address and Maildir of a login typed with a Unicode domain: its local part (always
# ASCII) with the stored domain, d.domain.
_STORED_ADDRESS = {"mysql": "CONCAT('%Ln', '@', d.domain)", "sqlite": "'%Ln' || '@' || d.domain"}
# Paths end up inside SQL strings and Dovecot's %-expansion: only plain characters are safe there.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+/-]+")
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_-]*")


_CONCAT = re.compile(r"CONCAT\(([^()]*)\)")


def sql_for(query: str, driver: str) -> str:
    """A lookup written for MariaDB in the driver's dialect: SQLite joins strings with ``||``
    (Debian 12's SQLite predates its CONCAT)."""
    if driver != "sqlite":
        return query
    return _CONCAT.sub(lambda match: "(" + " || ".join(match[1].split(", ")) + ")", query)


class DovecotConfigError(ValueError):
    """opmail cannot write a working mail server config from these settings; the message says why."""


@dataclass(frozen=True)
class PostfixDatabase:
    """How Postfix's lookup tables reach the database: a file (SQLite) or a server (MariaDB)."""

    driver: str = "mysql"
    path: str | None = None
    hosts: str | None = None
    user: str | None = None
    password: str | None = None
    dbname: str | None = None


@dataclass(frozen=True)
class DovecotSettings:
    """Everything the generated files depend on."""

    driver: str
    connect: str
    scheme: str
    mail_root: str
    uid: int = DEFAULT_UID
    gid: int = DEFAULT_GID
    conf_dir: str = CONF_DIR
    postfix_db: PostfixDatabase = PostfixDatabase()
    mail_user: str = MAIL_USER
    postfix_queue: str = POSTFIX_QUEUE


def dovecot_driver(url: URL) -> str:
    """``mysql`` or ``sqlite``: the Dovecot (and Postfix) driver that reads this database."""
    try:
        return _DRIVERS[url.get_backend_name()]
    except KeyError:
        raise DovecotConfigError(
            "opmail writes mail server config for MariaDB/MySQL and SQLite, "
            f"not {url.get_backend_name()}."
        ) from None


def _sqlite_path(url: URL) -> str:
    if url.database in (None, "", ":memory:"):
        raise DovecotConfigError("Dovecot and Postfix cannot read an in-memory SQLite database.")
    return os.path.abspath(url.database)


def connect_line(url: URL, *, hide_password: bool = False) -> str:
    """Dovecot's ``connect`` value for a SQLAlchemy URL: ``host=… dbname=…``, or a SQLite path."""
    if dovecot_driver(url) == "sqlite":
        return _sqlite_path(url)
    socket = url.query.get("unix_socket")
    password = HIDDEN_PASSWORD if hide_password and url.password else url.password
    values = {
        "host": socket or url.host or "localhost",
        "port": None if socket else url.port,
        "dbname": url.database,
        "user": url.username,
        "password": password,
    }
    pairs = [f"{key}={value}" for key, value in values.items() if value not in (None, "")]
    if any(len(pair.split()) != 1 for pair in pairs):
        # Dovecot 2.3 splits the connect line at spaces and has no quoting.
        raise DovecotConfigError(
            "A database setting contains a space, which Dovecot's connect line cannot hold: "
            "give Dovecot its own user with --connect."
        )
    return " ".join(pairs)


def postfix_database(url: URL, *, hide_password: bool = False) -> PostfixDatabase:
    """Postfix's ``mysql:``/``sqlite:`` connection settings for a SQLAlchemy URL."""
    if dovecot_driver(url) == "sqlite":
        return PostfixDatabase(driver="sqlite", path=_sqlite_path(url))
    socket = url.query.get("unix_socket")
    if socket:
        hosts = f"unix:{socket}"
    else:
        hosts = f"inet:{url.host or 'localhost'}:{url.port or 3306}"
    values = [url.username, url.password, url.database, hosts]
    if any(value and ("\n" in value or value != value.strip()) for value in values):
        raise DovecotConfigError(
            "A database setting starts or ends with a space or holds a line break, which a Postfix "
            "lookup file cannot hold: give Postfix its own user with --postfix-connect."
        )
    password = HIDDEN_PASSWORD if hide_password and url.password else url.password
    return PostfixDatabase(hosts=hosts, user=url.username, password=password, dbname=url.database)


def app_settings(
    *,
    connect: str | None = None,
    postfix_connect: str | None = None,
    mail_root: str | None = None,
    uid: int = DEFAULT_UID,
    gid: int = DEFAULT_GID,
    mail_user: str = MAIL_USER,
    conf_dir: str = CONF_DIR,
    postfix_queue: str = POSTFIX_QUEUE,
    hide_password: bool = False,
) -> DovecotSettings:
    """Settings for this app's database, scheme and ``MAILDIR_ROOT``, with the operator's overrides.

    ``connect`` is a database URL or a ready Dovecot connect line (e.g. for Dovecot's own user);
    ``postfix_connect`` a database URL (e.g. for Postfix's own user).
    """
    url = get_engine().url
    dovecot_url = url
    if connect and "://" in connect:
        dovecot_url, connect = make_url(connect), None
    postfix_url = make_url(postfix_connect) if postfix_connect else url
    if not _PLAIN_NAME.fullmatch(mail_user):
        raise DovecotConfigError(f"The mail user must be a plain user name (got {mail_user!r}).")
    return DovecotSettings(
        driver=dovecot_driver(dovecot_url),
        connect=connect or connect_line(dovecot_url, hide_password=hide_password),
        scheme=current_app.config["DOVECOT_PASSWORD_SCHEME"],
        mail_root=mail_root or current_app.config["MAILDIR_ROOT"],
        uid=uid,
        gid=gid,
        conf_dir=conf_dir,
        postfix_db=postfix_database(postfix_url, hide_password=hide_password),
        mail_user=mail_user,
        postfix_queue=postfix_queue,
    )


def _plain_path(path: str, what: str) -> str:
    path = path.rstrip("/")
    if not _PLAIN_PATH.fullmatch(path):
        raise DovecotConfigError(
            f"{what} must be an absolute path of letters, digits and . _ + - / (got {path!r})."
        )
    return path


def holds_password(name: str) -> bool:
    """Whether a generated file holds the database password (so only its server may read it)."""
    return name.endswith(".ext") or name in POSTFIX_LOOKUPS


def config_files(settings: DovecotSettings) -> dict[str, str]:
    """The files Dovecot and Postfix need, keyed by their path under ``settings.conf_dir``."""
    conf_dir = _plain_path(settings.conf_dir, "The config directory")
    mail_root = _plain_path(settings.mail_root, "The mail root")
    context = {
        "driver": settings.driver,
        "connect": settings.connect,
        "scheme": settings.scheme,
        "mail_root": mail_root,
        "conf_dir": f"{conf_dir}/dovecot",
        "postfix_dir": f"{conf_dir}/postfix",
        "postfix_queue": _plain_path(settings.postfix_queue, "Postfix's queue directory"),
        "postfix_db": settings.postfix_db,
        "uid": int(settings.uid),
        "gid": int(settings.gid),
        "mail_user": settings.mail_user,
        "quota_rule": _QUOTA_RULE[settings.driver],
        "can_log_in": _CAN_LOG_IN,
        "stored_address": _STORED_ADDRESS[settings.driver],
        "stored_home": (
            f"CONCAT('{mail_root}/', d.domain, '/%Ln')"
            if settings.driver == "mysql"
            else f"'{mail_root}/' || d.domain || '/%Ln'"
        ),
        "sieve_name": SCRIPT_NAME,
    }
    # The app's Jinja environment (a host can override the templates), without the context
    # processors, which expect a request. Jinja drops a template's final newline; config files end
    # with one.
    templates = current_app.jinja_env

    def render(template: str, **extra) -> str:
        return templates.get_template(f"opmail/{template}").render(context, **extra) + "\n"

    files = {
        name: render(name.replace("/conf.d/", "/"))
        for name in (SQL_FILE, DICT_FILE, SIEVE_DICT_FILE, SNIPPET)
    }
    for name, (purpose, query) in POSTFIX_LOOKUPS.items():
        files[name] = render("postfix/_lookup.cf", purpose=purpose, query=sql_for(query, settings.postfix_db.driver))
    files[POSTFIX_MAIN] = render("postfix/main.cf")
    files[POSTFIX_MASTER] = render("postfix/master.cf")
    return files


# --- Usage from the Maildirs ----------------------------------------------------------------------


@dataclass
class UsageReport:
    """What a Maildir walk measured, and the mailboxes it could not."""

    measured: int = 0
    missing: list[str] = field(default_factory=list)  # no Maildir yet: usage recorded as 0
    unreadable: list[str] = field(default_factory=list)  # usage left as it was


def maildir_usage(maildir: Path) -> tuple[int, int]:
    """Bytes and messages in ``cur/`` and ``new/`` of the inbox and every folder, counted as
    Dovecot's quota counts them (``quota_vsizes = yes``): with CRLF line ends, which a Maildir
    file (LF) holds about 1.3 % fewer of. So the number agrees with ``doveadm quota get``.

    Raises FileNotFoundError when ``maildir`` does not exist, another OSError when it is unreadable.
    """
    with os.scandir(maildir) as entries:
        folders = [maildir] + [
            Path(entry.path)
            for entry in entries
            if entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
        ]
    size = count = 0
    for folder in folders:
        for part in ("cur", "new"):
            try:
                files = os.scandir(folder / part)
            except FileNotFoundError:
                continue  # Dovecot creates a folder's cur/ and new/ when it first needs them
            with files:
                for entry in files:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            size += message_vsize(entry)
                            count += 1
                    except FileNotFoundError:
                        pass  # moved from new/ to cur/ (or expunged) while we looked
    return size, count


# Dovecot names each message it stores "<unique>,S=<size>,W=<size with CRLF>:2,<flags>".
_VSIZE_IN_NAME = re.compile(r",W=(\d+)")


def message_vsize(entry: os.DirEntry) -> int:
    """A message's size with CRLF line ends: from its file name when Dovecot wrote it there, else
    counted in the file (one more byte for each LF without a CR before it)."""
    named = _VSIZE_IN_NAME.search(entry.name.partition(":")[0])
    if named:
        return int(named[1])
    size, previous = 0, b""
    with open(entry.path, "rb") as message:
        while chunk := message.read(1 << 16):
            bare_lf = chunk.count(b"\n") - chunk.count(b"\r\n")
            if chunk.startswith(b"\n") and previous.endswith(b"\r"):
                bare_lf -= 1  # a CRLF split between two reads
            size += len(chunk) + bare_lf
            previous = chunk
    return size


def count_accounts() -> int:
    return get_session().scalar(select(func.count(MailAccount.id)))


def _upsert_usage(dialect: str):
    """INSERT … or UPDATE bytes, messages and updated_at, in the dialect's own syntax."""
    columns = ("bytes", "messages", "updated_at")
    if dialect == "sqlite":
        statement = sqlite.insert(MailQuotaUsage)
        return statement.on_conflict_do_update(
            index_elements=[MailQuotaUsage.email],
            set_={name: statement.excluded[name] for name in columns},
        )
    statement = mysql.insert(MailQuotaUsage)
    return statement.on_duplicate_key_update({name: statement.inserted[name] for name in columns})


def refresh_usage(
    mail_root: str | None = None,
    *,
    batch_size: int = USAGE_BATCH,
    progress: Callable[[int], None] = lambda done: None,
) -> UsageReport:
    """Measure every account's Maildir and upsert ``mail_quota_usage``, a transaction per batch."""
    root = Path(mail_root or current_app.config["MAILDIR_ROOT"])
    upsert = _upsert_usage(get_engine().dialect.name)
    report = UsageReport()
    # Keyset pages by id: each batch is one short query, however many accounts there are.
    accounts = select(MailAccount.id, MailAccount.email).order_by(MailAccount.id).limit(batch_size)
    last_id = 0
    while batch := get_session().execute(accounts.where(MailAccount.id > last_id)).all():
        last_id = batch[-1].id
        rows = []
        for _, email in batch:
            local, _, domain = email.partition("@")
            try:
                size, count = maildir_usage(root / domain / local / "Maildir")
            except FileNotFoundError:
                report.missing.append(email)
                size = count = 0
            except OSError:
                report.unreadable.append(email)
                continue
            rows.append({"email": email, "bytes": size, "messages": count, "updated_at": utcnow()})
        if rows:
            with transaction() as db:
                db.execute(upsert, rows)
        report.measured += len(rows)
        progress(len(batch))
    return report
