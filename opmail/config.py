"""Configuration: defaults, the environment (and ``.env``), and the checks that refuse to start."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .passwords import DEFAULT_BCRYPT_ROUNDS, SCHEMES

# Keys read from the environment for a standalone app, with their defaults. ``None`` = computed.
ENV_KEYS: dict[str, Any] = {
    "DATABASE_URL": None,  # SQLite in the instance folder
    "DOVECOT_PASSWORD_SCHEME": "BLF-CRYPT",
    "MAIL_SYNC_SECRET": "",
    "MAIL_SYNC_REQUIRE_SIGNATURE": "false",
    "SECRET_KEY": None,  # generated once, kept in the instance folder
    "MAILDIR_ROOT": "/var/mail",
    "OPMAIL_BCRYPT_ROUNDS": DEFAULT_BCRYPT_ROUNDS,
    "OPMAIL_IDLE_MINUTES": 30,
    "MAIL_ADMIN_PREFIX": "/admin",
    "MAIL_ADMIN_IPS": "",  # empty: every address may open the admin (after logging in)
    "OPMAIL_REQUIRE_2FA": "false",
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


def engine_options(url: str) -> dict[str, Any]:
    """Engine options: pre-ping so a restarted MariaDB does not turn the next request into a 500."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("mysql"):
        options["pool_recycle"] = 3600
    return options
