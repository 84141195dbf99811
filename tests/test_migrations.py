"""`flask opmail init-db` and opmail's revisions: a new database, every earlier release's, a host's.

The snapshots in tests/schema_snapshots/ are the schemas earlier releases made (see its README);
each is loaded into an empty database, given data, upgraded, and compared with the models.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from opmail.migrations import SCRIPT_LOCATION, VERSION_TABLE, alembic_config, upgrade
from opmail.models import Base
from opmail.passwords import hash_password
from tests.conftest import ADMIN_PASSWORD, AdminClient, log_in, make_app, mysql_database
from tests.test_usage_sort import MB, dovecot_upsert, listed

SNAPSHOTS = Path(__file__).resolve().parent / "schema_snapshots"
RELEASES = sorted({path.name.split(".")[0] for path in SNAPSHOTS.glob("*.sql")})
HEAD = ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
# The newest revision written for databases from releases before versioning (usage_sorts).
LAST_BEFORE_VERSIONING = "56473bf69181"
# The test admin's password as every release stored admin passwords (bcrypt, here at cost 4).
ADMIN_HASH = hash_password(ADMIN_PASSWORD, "BLF-CRYPT", bcrypt_rounds=4)
NOW = "2024-01-02 03:04:05"
# What every release could hold: an admin, a domain, three accounts (two with recorded usage), an
# alias and a group. Columns every release had; later ones keep their defaults.
OLD_DATA = [
    "INSERT INTO admins (id, username, password, created_at, updated_at) "
    f"VALUES (1, 'admin', '{ADMIN_HASH}', '{NOW}', '{NOW}')",
    "INSERT INTO mail_domains (id, domain, is_active, created_at, updated_at) "
    f"VALUES (1, 'example.com', 1, '{NOW}', '{NOW}')",
    *(
        "INSERT INTO mail_accounts (id, domain_id, email, password, display_name, quota_mb, "
        f"is_active, created_at, updated_at) VALUES ({account_id}, 1, '{email}', '{{BLF-CRYPT}}x', "
        f"'{email.upper()}', {quota}, 1, '{NOW}', '{NOW}')"
        for account_id, email, quota in [(1, "a@example.com", 100), (2, "b@example.com", 10), (3, "c@example.com", 0)]
    ),
    "INSERT INTO mail_quota_usage (email, bytes, messages) "
    f"VALUES ('a@example.com', {50 * MB}, 3), ('b@example.com', {9 * MB}, 1)",
    "INSERT INTO mail_aliases (domain_id, alias_email, destination_email, is_active, created_at, "
    f"updated_at) VALUES (1, 'info@example.com', 'a@example.com', 1, '{NOW}', '{NOW}')",
    f"INSERT INTO mail_groups (id, name, created_at, updated_at) VALUES (1, 'staff', '{NOW}', '{NOW}')",
    "INSERT INTO mail_group_members (group_id, account_id) VALUES (1, 2)",
]


@contextmanager
def new_database(db_url: str, folder: Path) -> Iterator[str]:
    """An empty database of its own (the run's shared MariaDB database has the tables)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{folder / f'{uuid.uuid4().hex[:10]}.db'}"
        return
    with mysql_database(db_url, f"opmail_migrations_{uuid.uuid4().hex[:10]}") as url:
        yield url


@pytest.fixture
def empty_url(db_url, tmp_path) -> Iterator[str]:
    with new_database(db_url, tmp_path) as url:
        yield url


@pytest.fixture
def engine(empty_url) -> Iterator[sa.Engine]:
    engine = sa.create_engine(empty_url)
    yield engine
    engine.dispose()


def kind(engine: sa.Engine) -> str:
    return "sqlite" if engine.dialect.name == "sqlite" else "mariadb"


def load(engine: sa.Engine, release: str) -> None:
    """``release``'s schema, as its ``init-db`` left it, and the data every release could hold."""
    text = (SNAPSHOTS / f"{release}.{kind(engine)}.sql").read_text()
    with engine.begin() as connection:
        for statement in text.split(";\n\n"):
            connection.exec_driver_sql(statement.strip().removesuffix(";"))
        for statement in OLD_DATA:
            connection.exec_driver_sql(statement)


def init_db(app) -> list[str]:
    result = app.test_cli_runner().invoke(args=["opmail", "init-db"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def version(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")))


def differences(engine: sa.Engine) -> list:
    """What alembic's autogenerate would change to make the database match the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, type_, _: type_ != "table" or name in Base.metadata.tables,
            },
        )
        return compare_metadata(context, Base.metadata)


def triggers(engine: sa.Engine) -> dict[str, str]:
    """Each trigger's name and what it does, as the database keeps it."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            )
        else:
            rows = connection.exec_driver_sql(
                "SELECT trigger_name, CONCAT_WS(' ', action_timing, event_manipulation, "
                "event_object_table, action_statement) FROM information_schema.triggers "
                "WHERE trigger_schema = DATABASE()"
            )
        return dict(rows.all())


def tables(engine: sa.Engine) -> dict[str, list]:
    """Each opmail table as the database describes it, in an order both kinds of change share.

    MariaDB: SHOW CREATE TABLE's lines, sorted (columns added later come last), without the next
    AUTO_INCREMENT value (the data's, not the schema's). SQLite: each column's name, type, NOT NULL,
    default and key (a VIRTUAL and a STORED usage_share read alike).
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return {
                table: sorted(
                    tuple(row)[1:6]
                    for row in connection.exec_driver_sql(f"PRAGMA table_xinfo({table})")
                )
                for table in Base.metadata.tables
            }
        return {
            table: sorted(
                re.sub(r" AUTO_INCREMENT=\d+", "", line.strip().rstrip(","))
                for line in connection.exec_driver_sql(f"SHOW CREATE TABLE {table}").one()[1].splitlines()
            )
            for table in Base.metadata.tables
        }


def describe(engine: sa.Engine) -> dict:
    return {"tables": tables(engine), "triggers": triggers(engine)}


_REFERENCES: dict[str, dict] = {}


@pytest.fixture
def reference(db_url, tmp_path_factory) -> dict:
    """A new database's schema (what the models make): what every upgrade must equal. Made once
    per kind of database and run."""
    kind = db_url.split(":")[0]
    if kind not in _REFERENCES:
        with new_database(db_url, tmp_path_factory.mktemp("reference")) as url:
            engine = sa.create_engine(url)
            with engine.begin() as connection:
                upgrade(connection)
            _REFERENCES[kind] = describe(engine)
            engine.dispose()
    return _REFERENCES[kind]


def assert_same_schema(engine: sa.Engine, reference: dict) -> None:
    assert differences(engine) == []
    assert describe(engine) == reference


def test_there_is_one_newest_revision():
    """Two revisions written in parallel on the same parent make two heads: point one at the other."""
    assert len(ScriptDirectory(str(SCRIPT_LOCATION)).get_heads()) == 1


def test_a_new_database_gets_the_models_tables_at_the_newest_revision(empty_url, engine, tmp_path):
    app = make_app(empty_url, tmp_path)

    lines = init_db(app)

    assert lines == [*(f"Created table {table.name}" for table in Base.metadata.sorted_tables), "Schema ready."]
    assert version(engine) == [HEAD]
    assert differences(engine) == []


def test_the_revisions_from_nothing_make_the_models_schema(engine, reference):
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")

    assert version(engine) == [HEAD]
    assert_same_schema(engine, reference)


def test_each_revision_names_what_it_changes(engine):
    """Applied one at a time from nothing, every revision prints at least one line."""
    script = ScriptDirectory(str(SCRIPT_LOCATION))
    for revision in reversed(list(script.walk_revisions())):
        with engine.begin() as connection:
            config = alembic_config(connection)
            command.upgrade(config, revision.revision)
        assert config.attributes["changes"], f"{revision.revision} ({revision.doc}) printed nothing"


@pytest.mark.parametrize("release", RELEASES)
def test_every_earlier_release_upgrades_to_the_models_schema(release, empty_url, engine, reference, tmp_path):
    load(engine, release)
    app = make_app(empty_url, tmp_path)

    lines = init_db(app)

    assert lines[-1] == "Schema ready."
    assert version(engine) == [HEAD]
    assert_same_schema(engine, reference)
    with engine.connect() as connection:
        accounts = connection.execute(
            sa.text("SELECT email, display_name, quota_mb, used_bytes FROM mail_accounts ORDER BY email")
        ).all()
        kept = [
            connection.scalar(sa.text(f"SELECT COUNT(*) FROM {table}"))
            for table in ("admins", "mail_domains", "mail_aliases", "mail_groups", "mail_group_members")
        ]
    assert [tuple(row) for row in accounts] == [
        ("a@example.com", "A@EXAMPLE.COM", 100, 50 * MB),
        ("b@example.com", "B@EXAMPLE.COM", 10, 9 * MB),
        ("c@example.com", "C@EXAMPLE.COM", 0, 0),
    ]
    assert kept == [1, 1, 1, 1, 1]
    assert init_db(app) == ["Schema ready."]


def test_the_first_release_upgrade_names_each_change(empty_url, engine, tmp_path):
    load(engine, "01_first_release")

    lines = init_db(make_app(empty_url, tmp_path))

    before_versioning = [
        "Changed column mail_quota_usage.updated_at: stamped by the database",
        *(["Added trigger mail_quota_usage_stamp"] if engine.dialect.name == "sqlite" else []),
        "Added index ix_mail_accounts_deleted_at_email",
        "Added index ix_mail_accounts_domain_id_email",
        "Dropped index ix_mail_accounts_deleted_at (the (deleted_at, …) indexes cover it)",
        "Dropped index ix_mail_accounts_domain_id (the (domain_id, …) indexes cover it)",
        "Added column admins.failed_logins",
        "Added column admins.locked_until",
        "Added column admins.session_version",
        "Created table admin_events",
        "Added column admins.totp_recovery_codes",
        "Added column mail_accounts.used_bytes",
        "Added column mail_accounts.usage_share",
        "Added index ix_mail_accounts_deleted_at_used_bytes",
        "Added index ix_mail_accounts_domain_id_used_bytes",
        "Added index ix_mail_accounts_deleted_at_usage_share",
        "Added index ix_mail_accounts_domain_id_usage_share",
        "Added trigger mail_quota_usage_copy_insert",
        "Added trigger mail_quota_usage_copy_update",
        "Added trigger mail_quota_usage_copy_delete",
        "Added trigger mail_accounts_usage_on_insert",
        "Copied the usage Dovecot recorded into mail_accounts.used_bytes",
    ]
    assert lines[: len(before_versioning)] == before_versioning  # later revisions print after these
    assert lines[-1] == "Schema ready."


def test_the_last_release_before_versioning_needs_no_change(engine):
    """09_usage_sorts already has the schema of the last revision written for such releases."""
    load(engine, "09_usage_sorts")

    with engine.begin() as connection:
        config = alembic_config(connection)
        command.upgrade(config, LAST_BEFORE_VERSIONING)

    assert config.attributes["changes"] == []
    assert version(engine) == [LAST_BEFORE_VERSIONING]


def test_an_upgraded_database_logs_in_sorts_by_usage_and_follows_dovecot(empty_url, engine, tmp_path):
    """What an admin sees after upgrading the oldest release: the old admin logs in, the usage
    Dovecot recorded before sorts the list, and what it writes next reaches the list."""
    load(engine, "01_first_release")
    app = make_app(empty_url, tmp_path)
    init_db(app)
    admin = log_in(app.test_client())

    assert listed(admin, "sort=usage&dir=desc") == ["a@example.com", "b@example.com", "c@example.com"]
    assert listed(admin, "sort=percent&dir=desc") == ["b@example.com", "a@example.com", "c@example.com"]
    dovecot_upsert(app, "c@example.com", 70 * MB)
    assert listed(admin, "sort=usage&dir=desc")[0] == "c@example.com"
    with engine.connect() as connection:
        stamped = connection.scalar(
            sa.text("SELECT updated_at FROM mail_quota_usage WHERE email = 'c@example.com'")
        )
    assert stamped is not None  # the database stamps what Dovecot writes, also in an old table


def test_a_database_a_newer_opmail_upgraded_is_refused_in_one_line(empty_url, engine, tmp_path):
    """Going back to an older opmail after an upgrade: init-db says so and changes nothing."""
    load(engine, "11_versioned")
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dfeed0001'")

    result = make_app(empty_url, tmp_path).test_cli_runner().invoke(args=["opmail", "init-db"])

    assert result.exit_code == 1
    assert result.output == (
        "Error: The database is at revision f00dfeed0001, which this opmail does not have: a newer "
        "opmail upgraded it. Install that release or a later one.\n"
    )
    assert version(engine) == ["f00dfeed0001"]


def test_a_hosts_own_alembic_and_tables_are_left_alone(empty_url, engine, tmp_path):
    """A host site keeping its tables (and its Alembic's alembic_version) in the mail database."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('host0001')")
        connection.exec_driver_sql("CREATE TABLE pages (id INTEGER PRIMARY KEY, title VARCHAR(50))")

    lines = init_db(make_app(empty_url, tmp_path))

    assert "Created table mail_accounts" in lines
    assert version(engine) == [HEAD]
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT version_num FROM alembic_version")) == "host0001"
        assert "pages" in sa.inspect(connection).get_table_names()
    assert differences(engine) == []


def test_embedded_opmail_migrates_its_bind_only(empty_url, engine, tmp_path):
    """In a host site, init-db works on SQLALCHEMY_BINDS["opmail"], never the host's database."""
    from examples.host_site import create_app as create_host_app

    host_db = tmp_path / "host.db"
    app = create_host_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{host_db}",
         "SQLALCHEMY_BINDS": {"opmail": empty_url}},
        instance_path=str(tmp_path / "instance"),
    )

    lines = init_db(app)

    assert lines[-1] == "Schema ready."
    assert version(engine) == [HEAD]
    host = sa.create_engine(f"sqlite:///{host_db}")
    with host.connect() as connection:
        assert not set(sa.inspect(connection).get_table_names()) & {VERSION_TABLE, *Base.metadata.tables}
    host.dispose()


def test_admin_names_are_brought_to_their_canonical_form_and_clashes_reported(empty_url, engine, tmp_path):
    """Issue 15: names stored before are lower-cased (so the canonical login finds them); a name that
    cannot be (an invisible character in it) is named in the printout and left, never merged."""
    load(engine, "01_first_release")
    with engine.begin() as connection:
        for admin_id, name in [(2, "Ops"), (3, "bob\u200b")]:
            connection.execute(
                sa.text(
                    "INSERT INTO admins (id, username, password, created_at, updated_at) "
                    "VALUES (:id, :name, :hash, :now, :now)"
                ),
                {"id": admin_id, "name": name, "hash": ADMIN_HASH, "now": NOW},
            )
    app = make_app(empty_url, tmp_path)

    output = init_db(app)

    assert "Renamed admin 'Ops' to 'ops' (names are lower-case now)" in output
    assert (
        # repr: the invisible character shows as its escape, so the operator sees it.
        "Left admin 'bob\\u200b' as it is (it holds an invisible character): it cannot log in until "
        "renamed or deleted by hand" in output
    )
    with engine.connect() as connection:
        assert sorted(connection.scalars(sa.text("SELECT username FROM admins"))) == ["admin", "bob\u200b", "ops"]
    client = app.test_client()
    assert AdminClient(client).login("Ops", ADMIN_PASSWORD).status_code == 302


def test_the_unicode_form_of_existing_international_domains_is_filled(empty_url, engine, tmp_path):
    """Issue 15: Dovecot finds a login typed in Unicode through mail_domains.unicode_domain."""
    load(engine, "11_versioned")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO mail_domains (id, domain, is_active, created_at, updated_at) "
            f"VALUES (2, 'xn--bcher-kva.example', 1, '{NOW}', '{NOW}')"
        )

    output = init_db(make_app(empty_url, tmp_path))

    assert "Filled mail_domains.unicode_domain for 1 international domain(s)" in output
    with engine.connect() as connection:
        found = connection.execute(sa.text("SELECT domain, unicode_domain FROM mail_domains ORDER BY id")).all()
    assert found == [("example.com", None), ("xn--bcher-kva.example", "bücher.example")]
