"""The opmail tables, on opmail's own declarative base.

The metadata carries ``bind_key = "opmail"``: Flask-SQLAlchemy routes every query on these models to
``SQLALCHEMY_BINDS["opmail"]``, whether the session belongs to opmail's standalone ``db`` or to a host
application's. Table and column names follow the product's Laravel migrations so an existing
Opterius Mail database and its Dovecot/Postfix queries keep working.

A new database is made from these models; every change to them also needs a revision in
``opmail/migrations/versions/`` for the databases that exist (docs/migrations.md), and
tests/test_migrations.py checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    func,
    true,
)
from sqlalchemy.dialects.mysql import INTEGER as MYSQL_INTEGER
from sqlalchemy.dialects.mysql import LONGTEXT
from sqlalchemy.dialects.mysql import VARCHAR as MYSQL_VARCHAR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

BIND_KEY = "opmail"

# SQLite only auto-increments an INTEGER PRIMARY KEY; MariaDB gets the spec's BIGINT.
BigId = BigInteger().with_variant(Integer, "sqlite")
# The largest id either database can hold (signed 64 bits): a bigger number from a URL or a form is
# no id at all, and binding it raises (SQLite: OverflowError) instead of matching nothing.
MAX_ID = 2**63 - 1
UnsignedInt = Integer().with_variant(MYSQL_INTEGER(unsigned=True), "mysql", "mariadb")
# MariaDB's TEXT stops at 64 KB: one bulk action's addresses and changes outgrow it at ~2,000 accounts.
LongText = Text().with_variant(LONGTEXT(), "mysql", "mariadb")

# InnoDB + utf8mb4 with a case-insensitive collation: Dovecot matches `JANE@x` to `jane@x` there.
MYSQL_TABLE_ARGS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def utcnow() -> datetime:
    """Naive UTC now: DATETIME columns on both backends hold UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(
        info={"bind_key": BIND_KEY},
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        },
    )


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


def _unicode_of_inserted(context) -> str | None:
    from .addresses import unicode_domain

    return unicode_domain(context.get_current_parameters()["domain"])


class MailDomain(Timestamps, Base):
    __tablename__ = "mail_domains"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), index=True)
    # The domain in Unicode when it is an IDN (bücher.example for xn--bcher-kva.example), else NULL:
    # Dovecot's and Postfix's queries find a login or a recipient in that form through this index.
    # Filled on every insert, from the domain (which is never renamed).
    unicode_domain: Mapped[str | None] = mapped_column(String(253), index=True, default=_unicode_of_inserted)
    # Limits and defaults of the domain (opmail.rules.limits); NULL = no limit / the server default.
    # Accounts that are not deleted; aliases' and groups' addresses; the sum of their quotas (MB).
    max_accounts: Mapped[int | None] = mapped_column(UnsignedInt)
    max_aliases: Mapped[int | None] = mapped_column(UnsignedInt)
    total_quota_mb: Mapped[int | None] = mapped_column(UnsignedInt)
    # The quota a new mailbox gets when none is given (Add Account, CSV import, the Panel's create).
    default_quota_mb: Mapped[int | None] = mapped_column(UnsignedInt)

    def __str__(self) -> str:
        from .addresses import display_domain

        return display_domain(self.domain)


class MailAccount(Timestamps, Base):
    __tablename__ = "mail_accounts"
    # The accounts list filters on deleted_at or domain_id and sorts by email, usage or share of the
    # quota: these indexes hand it the rows already in order, so a page reads 50 index entries, not
    # every matching account.
    __table_args__ = (
        Index("ix_mail_accounts_deleted_at_email", "deleted_at", "email"),
        Index("ix_mail_accounts_domain_id_email", "domain_id", "email"),
        Index("ix_mail_accounts_deleted_at_used_bytes", "deleted_at", "used_bytes"),
        Index("ix_mail_accounts_domain_id_used_bytes", "domain_id", "used_bytes"),
        Index("ix_mail_accounts_deleted_at_usage_share", "deleted_at", "usage_share"),
        Index("ix_mail_accounts_domain_id_usage_share", "domain_id", "usage_share"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("mail_domains.id"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    quota_mb: Mapped[int] = mapped_column(UnsignedInt, default=0, server_default="0", index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    # A copy of mail_quota_usage.bytes kept by the triggers below (Dovecot writes only that table),
    # so the list can sort by usage through an index instead of sorting every joined row.
    used_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Share of the quota in use (1.0 = full); NULL when unlimited. Stored, so it can be indexed.
    usage_share: Mapped[float | None] = mapped_column(
        Double,
        Computed(
            "CASE WHEN quota_mb > 0 THEN CAST(used_bytes AS DOUBLE) / (quota_mb * 1048576) END",
            persisted=True,
        ),
    )

    # Lists join the domain explicitly; a lazy load here would be one query per row.
    domain: Mapped[MailDomain] = relationship(lazy="raise_on_sql")

    def __str__(self) -> str:
        return self.email


class MailAlias(Timestamps, Base):
    """One row per (alias, destination): Postfix's virtual_alias_maps query returns them all."""

    __tablename__ = "mail_aliases"
    __table_args__ = (UniqueConstraint("alias_email", "destination_email"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("mail_domains.id"), index=True)
    alias_email: Mapped[str] = mapped_column(String(254), index=True)
    destination_email: Mapped[str] = mapped_column(String(254), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class MailAutoresponder(Timestamps, Base):
    __tablename__ = "mail_autoresponders"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class MailGroup(Timestamps, Base):
    """A distribution list: mail to ``email`` reaches every member (Postfix's virtual_alias_maps)."""

    __tablename__ = "mail_groups"
    # A unique index, not a constraint: SQLite can add an index to an existing table, not a constraint.
    __table_args__ = (Index("ix_mail_groups_email", "email", unique=True), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    # On one of our domains; null = a group without an address (a set of accounts, no list).
    email: Mapped[str | None] = mapped_column(String(254))

    def __str__(self) -> str:
        return self.name


class MailGroupMember(Base):
    __tablename__ = "mail_group_members"
    __table_args__ = (UniqueConstraint("group_id", "account_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("mail_groups.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="CASCADE"), index=True
    )


class MailAddress(Base):
    """Every address that receives mail here, claimed by exactly one thing: an account, an alias or
    a group. The primary key is what keeps one address one thing when two writers (an admin, the
    Panel, an import) claim it at the same moment: the second INSERT fails, on MariaDB and SQLite,
    whatever the rules read before."""

    __tablename__ = "mail_addresses"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    address: Mapped[str] = mapped_column(String(254), primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("mail_domains.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))


class MailForward(Base):
    """Where an account's mail goes instead (or as well): one row per destination. A row whose
    destination is the account itself keeps a copy in the mailbox, which is how Postfix's
    virtual_alias_maps delivers to an address and forwards it at once."""

    __tablename__ = "mail_forwards"
    __table_args__ = (UniqueConstraint("account_id", "destination_email"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    destination_email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MailSieveScript(Base):
    """The Sieve scripts Dovecot's Pigeonhole reads through its SQL dict: ``priv/sieve/name/<name>``
    gives ``id``, ``priv/sieve/data/<id>`` the script. A changed script is a new row (a new id), so
    Pigeonhole recompiles it; the old row goes in the same transaction."""

    __tablename__ = "mail_sieve_scripts"
    # AUTOINCREMENT: SQLite would otherwise give a replaced last row's id to its successor.
    __table_args__ = (UniqueConstraint("email", "name"), {**MYSQL_TABLE_ARGS, "sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(64))
    script: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserTwoFactor(Timestamps, Base):
    """Written by webmail; "2FA: on" means a row whose ``enabled_at`` is set."""

    __tablename__ = "user_two_factor"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    secret: Mapped[str] = mapped_column(String(255))
    recovery_codes: Mapped[str | None] = mapped_column(Text)
    enabled_at: Mapped[datetime | None] = mapped_column(DateTime)


class MailQuotaUsage(Base):
    """Written by Dovecot's quota_clone (or ``flask opmail refresh-usage``), read by the lists.

    Dovecot's dict upserts ``bytes`` and ``messages`` only (``INSERT … ON DUPLICATE KEY UPDATE`` on
    MariaDB, ``ON CONFLICT … DO UPDATE`` on SQLite), so the database stamps ``updated_at`` itself.
    """

    __tablename__ = "mail_quota_usage"
    __table_args__ = (
        {
            **MYSQL_TABLE_ARGS,
            "listeners": [
                (
                    "after_create",
                    DDL(
                        "ALTER TABLE mail_quota_usage MODIFY updated_at DATETIME NULL "
                        "DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
                    ).execute_if(dialect=("mysql", "mariadb")),
                ),
                (
                    "after_create",
                    DDL(
                        "CREATE TRIGGER mail_quota_usage_stamp "
                        "AFTER UPDATE OF bytes, messages ON mail_quota_usage "
                        "WHEN NEW.updated_at IS OLD.updated_at BEGIN "
                        "UPDATE mail_quota_usage SET updated_at = CURRENT_TIMESTAMP "
                        "WHERE email = NEW.email; END"
                    ).execute_if(dialect="sqlite"),
                ),
            ],
        },
    )

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)
    messages: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # CURRENT_TIMESTAMP is the server's clock: run MariaDB in UTC, like every DATETIME here.
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime, default=utcnow, onupdate=utcnow, server_default=func.current_timestamp()
    )


# mail_accounts.used_bytes follows mail_quota_usage.bytes: Dovecot's quota_clone (and refresh-usage)
# upsert that table only, so the database copies each change across; an account created after its
# usage row (a deleted address added again) picks the figure up on insert. MariaDB cannot update the
# table a trigger fires on, hence BEFORE INSERT … SET NEW there; SQLite cannot assign NEW, hence an
# AFTER INSERT update. Triggers run with their creator's rights: Dovecot's user needs no new grant.
_COPY_USAGE = "UPDATE mail_accounts SET used_bytes = {} WHERE email = {}"
_USAGE_OF_NEW = "COALESCE((SELECT bytes FROM mail_quota_usage WHERE email = NEW.email), 0)"
_ON_USAGE = "CREATE TRIGGER mail_quota_usage_copy_{} AFTER {} ON mail_quota_usage"
_ON_ACCOUNT = "CREATE TRIGGER mail_accounts_usage_on_insert {} INSERT ON mail_accounts"
_USAGE_TRIGGERS = {
    ("mysql", "mariadb"): [
        f"{_ON_USAGE.format('insert', 'INSERT')} FOR EACH ROW {_COPY_USAGE.format('NEW.bytes', 'NEW.email')}",
        f"{_ON_USAGE.format('update', 'UPDATE')} FOR EACH ROW {_COPY_USAGE.format('NEW.bytes', 'NEW.email')}",
        f"{_ON_USAGE.format('delete', 'DELETE')} FOR EACH ROW {_COPY_USAGE.format('0', 'OLD.email')}",
        f"{_ON_ACCOUNT.format('BEFORE')} FOR EACH ROW SET NEW.used_bytes = {_USAGE_OF_NEW}",
    ],
    "sqlite": [
        f"{_ON_USAGE.format('insert', 'INSERT')} BEGIN {_COPY_USAGE.format('NEW.bytes', 'NEW.email')}; END",
        f"{_ON_USAGE.format('update', 'UPDATE OF bytes')} BEGIN {_COPY_USAGE.format('NEW.bytes', 'NEW.email')}; END",
        f"{_ON_USAGE.format('delete', 'DELETE')} BEGIN {_COPY_USAGE.format('0', 'OLD.email')}; END",
        f"{_ON_ACCOUNT.format('AFTER')} BEGIN "  # noqa: S608 (constants, no input)
        f"UPDATE mail_accounts SET used_bytes = {_USAGE_OF_NEW} WHERE id = NEW.id; END",
    ],
}
for _dialects, _statements in _USAGE_TRIGGERS.items():
    for _statement in _statements:
        event.listen(Base.metadata, "after_create", DDL(_statement).execute_if(dialect=_dialects))


class Admin(Timestamps, Base):
    """An administrator of opmail. Admins are not mail users, and the reverse."""

    __tablename__ = "admins"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Stored in one canonical form (addresses.normalize_admin_name) and compared in binary: under
    # MariaDB's default collation BOB, bób and bob+zero-width space would all be bob.
    username: Mapped[str] = mapped_column(
        String(64).with_variant(MYSQL_VARCHAR(64, collation="utf8mb4_bin"), "mysql", "mariadb"), unique=True
    )
    password: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The key being enrolled, until a code from the app confirms it (then it moves to totp_secret).
    # Kept here, not in the session cookie, which is signed but readable by whoever holds it.
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # JSON list of the unused recovery codes' SHA-256 hashes (opmail.admin_2fa).
    totp_recovery_codes: Mapped[str | None] = mapped_column(Text)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Wrong passwords in a row (login or delete dialog) and the back-off they earned (opmail.auth).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    # Every session cookie carries this number; logging out raises it, so no copy stays valid.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # SERVER_ADMIN manages everything; DOMAIN_ADMIN only the domains of its admin_domains rows.
    role: Mapped[str] = mapped_column(String(16), default="server", server_default="server")
    # Set by a server admin: this admin must turn 2FA on before anything else.
    require_2fa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @property
    def is_server_admin(self) -> bool:
        return self.role == SERVER_ADMIN

    def __str__(self) -> str:
        return self.username


SERVER_ADMIN, DOMAIN_ADMIN = "server", "domain"


class AdminDomain(Base):
    """A domain a domain admin manages (opmail.scope): one row per (admin, domain)."""

    __tablename__ = "admin_domains"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), primary_key=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("mail_domains.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SyncEvent(Base):
    """One accepted Panel webhook call. Never holds a password or hash."""

    __tablename__ = "sync_events"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    action: Mapped[str] = mapped_column(String(16), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(45))


class AdminEvent(Base):
    """One change an admin made (opmail.audit). Never holds a password or hash."""

    __tablename__ = "admin_events"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    # The addresses, domains, aliases or groups the change touched, one per line.
    targets: Mapped[str] = mapped_column(LongText)
    # JSON {target: {field: [old, new]}} for quota and status changes; null when nothing to show.
    changes: Mapped[str | None] = mapped_column(LongText)


class AdminEventDomain(Base):
    """A domain an admin event touched: a domain admin's audit log is the events of its domains,
    read through the (domain_id, event_id) primary key newest first."""

    __tablename__ = "admin_event_domains"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    # No foreign key to mail_domains: the log outlives a deleted domain (a server admin reads it).
    domain_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("admin_events.id", ondelete="CASCADE"), primary_key=True, index=True
    )
