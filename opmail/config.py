"""Configuration: defaults, the environment (and ``.env``), and the checks that refuse to start."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from .passwords import BCRYPT_MAX_BYTES, DEFAULT_BCRYPT_ROUNDS, DEFAULT_MIN_LENGTH, SCHEMES

# Keys read from the environment for a standalone app, with their defaults. ``None`` = computed.
ENV_KEYS: dict[str, Any] = {
    "DATABASE_URL": None,  # SQLite in the instance folder
    "DOVECOT_PASSWORD_SCHEME": "BLF-CRYPT",
    "MAIL_SYNC_SECRET": "",
    "MAIL_SYNC_REQUIRE_SIGNATURE": "false",
    "SECRET_KEY": None,  # generated once, kept in the instance folder
    "MAILDIR_ROOT": "/var/mail",
    "OPMAIL_BCRYPT_ROUNDS": DEFAULT_BCRYPT_ROUNDS,
    "OPMAIL_PASSWORD_MIN_LENGTH": DEFAULT_MIN_LENGTH,
    "OPMAIL_IDLE_MINUTES": 30,
    "MAIL_ADMIN_PREFIX": "/admin",
    "MAIL_ADMIN_IPS": "",  # empty: every address may open the admin (after logging in)
    "OPMAIL_REQUIRE_2FA": "false",
    "OPMAIL_SQLITE_MODE": "0600",  # the SQLite file opmail creates: owner only
    "DATABASE_CONNECT_TIMEOUT": 5,
    "DATABASE_TIMEOUT": 10,
}


# A shorter shared secret can be guessed or brute-forced; `flask opmail sync-secret` makes 32.
MIN_SYNC_SECRET = 32
_FLAG_WORDS = {
    **dict.fromkeys(("true", "1", "yes", "on"), True),
    **dict.fromkeys(("false", "0", "no", "off", ""), False),
}


# Path segments of plain URL characters; none may start with "." (no "/..", no hidden names).
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(RuntimeError):
    """The configuration cannot work; the message is one line naming the key."""


def settings_from_env(instance_path: str) -> dict[str, Any]:
    """Read every opmail key from the environment, filling the computed defaults."""
    settings = {key: os.environ.get(key, default) for key, default in ENV_KEYS.items()}
    if not settings["DATABASE_URL"]:
        settings["DATABASE_URL"] = "sqlite:///" + str(Path(instance_path) / "opmail.db")
    return settings


def instance_secret_key(instance_path: str) -> str:
    """The secret key kept in ``instance/secret_key``, created on first use so sessions survive."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def sqlite_mode(config: Mapping[str, Any]) -> int:
    """``OPMAIL_SQLITE_MODE``: octal, read and write for the owner, no execute bits, not writable
    by others (e.g. 0600, or 0660 for a group such as Dovecot's)."""
    text = str(config.get("OPMAIL_SQLITE_MODE", ENV_KEYS["OPMAIL_SQLITE_MODE"])).strip()
    mode = int(text, 8) if re.fullmatch(r"0?[0-7]{3}", text) else None
    if mode is None or mode & 0o600 != 0o600 or mode & 0o113:
        raise ConfigError(
            "OPMAIL_SQLITE_MODE must be an octal file mode with read and write for the owner, no"
            f" execute bits and no write for others, e.g. 0600 or 0660 (got {text!r})."
        )
    return mode


def folder_mode(file_mode: int) -> int:
    """The mode of a folder that must let in whoever ``file_mode`` lets read the file: x added
    beside each r (0600 → 0700, 0640 → 0750, 0660 → 0770)."""
    return file_mode | ((file_mode & 0o444) >> 2)


def make_instance_folder(instance_path: str, config: Mapping[str, Any]) -> None:
    """Create the instance folder (secret key, uploads, the default SQLite file) if it is missing,
    open only as far as ``OPMAIL_SQLITE_MODE`` asks. An existing folder keeps its mode."""
    path = Path(instance_path)
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(folder_mode(sqlite_mode(config)))  # explicitly: mkdir's mode passes the umask


def create_sqlite_file(url: str, config: Mapping[str, Any]) -> None:
    """Create a missing SQLite database file (empty: a valid empty database) with
    ``OPMAIL_SQLITE_MODE``, before SQLite would create it with the umask's (usually 0644, readable
    by every user of the machine). SQLite gives its journal files the same mode. An existing file
    keeps its mode."""
    if not url.startswith("sqlite"):
        return
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        descriptor = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)
    os.chmod(database, sqlite_mode(config))


def check_settings(config: Mapping[str, Any]) -> None:
    """Raise ConfigError for a value opmail cannot run with."""
    scheme = config.get("DOVECOT_PASSWORD_SCHEME")
    if scheme not in SCHEMES:
        raise ConfigError(
            f"DOVECOT_PASSWORD_SCHEME must be one of {', '.join(SCHEMES)} (got {scheme!r})."
        )
    try:
        rounds = int(config.get("OPMAIL_BCRYPT_ROUNDS", DEFAULT_BCRYPT_ROUNDS))
    except (TypeError, ValueError):
        rounds = 0
    if not 4 <= rounds <= 15:
        raise ConfigError("OPMAIL_BCRYPT_ROUNDS must be a whole number from 4 to 15.")
    password_min_length(config)
    secret = config.get("MAIL_SYNC_SECRET") or ""
    if 0 < len(secret) < MIN_SYNC_SECRET:
        raise ConfigError(
            f"MAIL_SYNC_SECRET must be at least {MIN_SYNC_SECRET} characters"
            f" (got {len(secret)}): make one with `flask opmail sync-secret`."
        )
    flag(config, "MAIL_SYNC_REQUIRE_SIGNATURE")
    flag(config, "OPMAIL_REQUIRE_2FA")
    idle = str(config.get("OPMAIL_IDLE_MINUTES", 30))
    if not (idle.isascii() and idle.isdigit() and 1 <= int(idle) <= 24 * 60):
        raise ConfigError("OPMAIL_IDLE_MINUTES must be a whole number of minutes from 1 to 1440.")
    check_admin_prefix(config.get("MAIL_ADMIN_PREFIX", "/admin"))
    admin_networks(config)
    database_timeouts(config)
    sqlite_mode(config)


def password_min_length(config: Mapping[str, Any]) -> int:
    """``OPMAIL_PASSWORD_MIN_LENGTH``: the fewest characters a new password may have, 1 to 72
    (bcrypt reads 72 bytes: a longer minimum could not be met)."""
    value = str(config.get("OPMAIL_PASSWORD_MIN_LENGTH", DEFAULT_MIN_LENGTH)).strip()
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= BCRYPT_MAX_BYTES):
        raise ConfigError(
            f"OPMAIL_PASSWORD_MIN_LENGTH must be a whole number of characters from 1 to {BCRYPT_MAX_BYTES}"
            f" (got {value!r})."
        )
    return int(value)


def check_admin_prefix(prefix: object) -> str:
    """``MAIL_ADMIN_PREFIX``: a path such as ``/admin`` or ``/ops/mail`` (no trailing slash)."""
    if not (isinstance(prefix, str) and _PREFIX_RE.fullmatch(prefix)):
        raise ConfigError(
            "MAIL_ADMIN_PREFIX must be a path like /admin or /ops/mail: a leading /, no trailing /,"
            f" only letters, digits and . _ ~ - (got {prefix!r})."
        )
    return prefix


def admin_networks(config: Mapping[str, Any]) -> tuple[Network, ...]:
    """``MAIL_ADMIN_IPS`` as networks: comma-separated addresses or CIDRs, IPv4 or IPv6 (a list
    works too). Empty: no restriction."""
    value = config.get("MAIL_ADMIN_IPS") or ""
    entries = value.split(",") if isinstance(value, str) else value
    networks = []
    for entry in (str(e).strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as error:
            # ipaddress says why, e.g. "10.0.0.1/8 has host bits set" (meant 10.0.0.0/8?).
            raise ConfigError(
                f"MAIL_ADMIN_IPS: {entry!r} is not an IP address or network ({error})."
            ) from None
    return tuple(networks)


def flag(config: Mapping[str, Any], key: str) -> bool:
    """A yes/no setting: a bool, or true/false/1/0/yes/no/on/off (from the environment)."""
    value = config.get(key, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _FLAG_WORDS:
        raise ConfigError(f"{key} must be true or false (got {value!r}).")
    return _FLAG_WORDS[text]


def database_timeouts(config: Mapping[str, Any]) -> tuple[int, int]:
    """``DATABASE_CONNECT_TIMEOUT`` and ``DATABASE_TIMEOUT``: whole seconds, 1 to 86,400."""
    timeouts = []
    for key in ("DATABASE_CONNECT_TIMEOUT", "DATABASE_TIMEOUT"):
        value = str(config.get(key, ENV_KEYS[key])).strip()
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 86_400):
            raise ConfigError(f"{key} must be a whole number of seconds from 1 to 86400 (got {value!r}).")
        timeouts.append(int(value))
    return timeouts[0], timeouts[1]


def engine_options(url: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Engine options. No ``pool_pre_ping``: it costs a round trip per request. A connection that a
    restarted MariaDB closed is replaced at checkout instead (``opmail.db.drop_closed_connections``)
    and a write that lost its connection before COMMIT runs again once (``opmail.db.retried``)."""
    options: dict[str, Any] = {}
    if url.startswith("mysql"):
        options["pool_recycle"] = 3600
        # No ROLLBACK after every COMMIT: opmail.db.drop_closed_connections rolls back only a
        # connection returned with its transaction still open (it must be on the engine: OpMail
        # adds it to the opmail bind's).
        options["pool_reset_on_return"] = None
        options["connect_args"] = {**mysql_timeouts(config or {}), "client_flag": mysql_client_flags()}
    return options


def mysql_client_flags() -> int:
    """PyMySQL's client flags: FOUND_ROWS, which SQLAlchemy sets itself unless given flags (an
    UPDATE counts the rows it matched, not only those it changed), and MULTI_STATEMENTS, so that
    the webhook sends its writes and their COMMIT as one round trip (``opmail.db.write_and_commit``).

    Several statements per query change nothing for injection: every value opmail sends is escaped
    by the driver, one statement or several."""
    from pymysql.constants import CLIENT

    return CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS


def mysql_timeouts(config: Mapping[str, Any]) -> dict[str, int]:
    """PyMySQL's timeouts, so a database that stops answering (hung, not down) fails the request
    with a 503 instead of holding the worker until the server kills it. A read covers one
    statement's answer, the server's greeting included; a write that lost its connection then a
    new connection's greeting can cost the first request two of them."""
    connect, each = database_timeouts(config)
    return {"connect_timeout": connect, "read_timeout": each, "write_timeout": each}
