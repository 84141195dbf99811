import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from opmail.db import create_schema, get_engine, get_session
from opmail.models import Base, MailAccount, MailDomain
from tests.conftest import make_app, require


def test_schema_creation_is_idempotent(app):
    with app.app_context():
        create_schema()
        create_schema()
        names = set(sa.inspect(get_session().get_bind(mapper=MailAccount.__mapper__)).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= names
    assert {
        "mail_domains", "mail_accounts", "mail_aliases", "mail_autoresponders", "mail_groups",
        "mail_group_members", "user_two_factor", "mail_quota_usage", "admins", "sync_events",
    } <= names


def test_init_db_command_runs_twice(runner):
    for _ in range(2):
        result = runner.invoke(args=["opmail", "init-db"])
        assert result.exit_code == 0, result.output
        assert "Schema ready." in result.output


def test_email_is_unique_regardless_of_case_at_the_database(app):
    """Even a write that bypasses the service's lower-casing cannot duplicate an address on MariaDB;
    on SQLite the service's lower-casing is what guarantees it (checked in the accounts tests)."""
    with app.app_context():
        db = get_session()
        domain = MailDomain(domain="example.com")
        db.add(domain)
        db.flush()
        db.add(MailAccount(domain_id=domain.id, email="jane@example.com", password="x"))
        db.commit()
        db.add(MailAccount(domain_id=domain.id, email="jane@example.com", password="y"))
        with pytest.raises(IntegrityError):
            db.commit()
        db.rollback()
        if db.get_bind(mapper=MailAccount.__mapper__).dialect.name == "mysql":
            db.add(MailAccount(domain_id=domain.id, email="JANE@example.com", password="y"))
            with pytest.raises(IntegrityError):
                db.commit()
            db.rollback()


def test_mysql_tables_are_innodb_utf8mb4(mysql_url, tmp_path):
    require(mysql_url is not None, "OPMAIL_TEST_MYSQL_URL is not set: no MariaDB to test against")
    app = make_app(mysql_url, tmp_path)
    with app.app_context():
        create_schema()
        with get_engine().connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT table_name, engine, table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE()"
            )).all()
        get_engine().dispose()
    assert len(rows) >= 10
    assert all(engine == "InnoDB" and collation.startswith("utf8mb4") for _, engine, collation in rows)


def test_foreign_keys_are_enforced(app):
    with app.app_context():
        db = get_session()
        db.add(MailAccount(domain_id=999, email="x@nowhere.com", password="x"))
        with pytest.raises(IntegrityError):
            db.commit()
