"""Dovecot's side of the mail database: the config files that make Dovecot authenticate against
opmail's tables, and the Maildir walk that fills ``mail_quota_usage`` where quota_clone is not used.

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

from .accounts import transaction
from .db import get_engine, get_session
from .models import MailAccount, MailQuotaUsage, utcnow

CONF_DIR = "/etc/dovecot"
DEFAULT_UID = DEFAULT_GID = 5000  # the customary "vmail" owner of every Maildir
SQL_FILE = "dovecot-sql.conf.ext"
DICT_FILE = "dovecot-dict-quota.conf.ext"
SNIPPET = "conf.d/11-opmail.conf"
HIDDEN_PASSWORD = "<password>"  # noqa: S105 what the page shows instead of it
USAGE_BATCH = 500

# Dovecot's SQL driver for each SQLAlchemy dialect, and how that driver glues strings together.
_DRIVERS = {"mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
_QUOTA_RULE = {
    "mysql": "CONCAT('*:storage=', a.quota_mb, 'M')",
    "sqlite": "'*:storage=' || a.quota_mb || 'M'",
}
_CAN_LOG_IN = "a.is_active = 1 AND a.deleted_at IS NULL AND d.is_active = 1"
# Paths end up inside SQL strings and Dovecot's %-expansion: only plain characters are safe there.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+/-]+")


class DovecotConfigError(ValueError):
    """opmail cannot write a working Dovecot config from these settings; the message says why."""


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


def dovecot_driver(url: URL) -> str:
    """``mysql`` or ``sqlite``: the Dovecot driver that reads this database."""
    try:
        return _DRIVERS[url.get_backend_name()]
    except KeyError:
        raise DovecotConfigError(
            "opmail writes Dovecot config for MariaDB/MySQL and SQLite, "
            f"not {url.get_backend_name()}."
        ) from None


def connect_line(url: URL, *, hide_password: bool = False) -> str:
    """Dovecot's ``connect`` value for a SQLAlchemy URL: ``host=… dbname=…``, or a SQLite path."""
    if dovecot_driver(url) == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise DovecotConfigError("Dovecot cannot read an in-memory SQLite database.")
        return os.path.abspath(url.database)
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


def app_settings(
    *,
    connect: str | None = None,
    mail_root: str | None = None,
    uid: int = DEFAULT_UID,
    gid: int = DEFAULT_GID,
    conf_dir: str = CONF_DIR,
    hide_password: bool = False,
) -> DovecotSettings:
    """Settings for this app's database, scheme and ``MAILDIR_ROOT``, with the operator's overrides.

    ``connect`` is a database URL or a ready Dovecot connect line (e.g. for Dovecot's own user).
    """
    url = get_engine().url
    if connect and "://" in connect:
        url, connect = make_url(connect), None
    return DovecotSettings(
        driver=dovecot_driver(url),
        connect=connect or connect_line(url, hide_password=hide_password),
        scheme=current_app.config["DOVECOT_PASSWORD_SCHEME"],
        mail_root=mail_root or current_app.config["MAILDIR_ROOT"],
        uid=uid,
        gid=gid,
        conf_dir=conf_dir,
    )


def _plain_path(path: str, what: str) -> str:
    path = path.rstrip("/")
    if not _PLAIN_PATH.fullmatch(path):
        raise DovecotConfigError(
            f"{what} must be an absolute path of letters, digits and . _ + - / (got {path!r})."
        )
    return path


def config_files(settings: DovecotSettings) -> dict[str, str]:
    """The files Dovecot needs, keyed by their path under its config directory."""
    context = {
        "driver": settings.driver,
        "connect": settings.connect,
        "scheme": settings.scheme,
        "mail_root": _plain_path(settings.mail_root, "The mail root"),
        "conf_dir": _plain_path(settings.conf_dir, "The Dovecot config directory"),
        "uid": int(settings.uid),
        "gid": int(settings.gid),
        "quota_rule": _QUOTA_RULE[settings.driver],
        "can_log_in": _CAN_LOG_IN,
    }
    # The app's Jinja environment (a host can override the templates), without the context
    # processors, which expect a request. Jinja drops a template's final newline; config files end
    # with one.
    templates = current_app.jinja_env
    return {
        name: templates.get_template(f"opmail/dovecot/{Path(name).name}").render(context) + "\n"
        for name in (SQL_FILE, DICT_FILE, SNIPPET)
    }


# --- Usage from the Maildirs ----------------------------------------------------------------------


@dataclass
class UsageReport:
    """What a Maildir walk measured, and the mailboxes it could not."""

    measured: int = 0
    missing: list[str] = field(default_factory=list)  # no Maildir yet: usage recorded as 0
    unreadable: list[str] = field(default_factory=list)  # usage left as it was


def maildir_usage(maildir: Path) -> tuple[int, int]:
    """Bytes and message files in ``cur/`` and ``new/`` of the inbox and every folder (``du -b``).

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
                            size += entry.stat(follow_symlinks=False).st_size
                            count += 1
                    except FileNotFoundError:
                        pass  # moved from new/ to cur/ (or expunged) while we looked
    return size, count


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
