"""What `flask opmail …` says when its database cannot be used: one line, exit 1, no trace."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import make_app, mysql_database

# Nothing listens on port 1: the connection is refused at once.
UNREACHABLE = "mysql+pymysql://x:y@127.0.0.1:1/db"

COMMANDS = [
    ["init-db"],
    ["first-admin"],
    ["unlock-admin", "bob"],
    ["reset-admin-2fa", "bob"],
    ["refresh-usage"],
    ["seed-demo", "--accounts", "1", "--password", "demo-password-1"],
    ["create-admin", "bob", "--password-stdin"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_a_database_that_is_down_is_one_clear_line(tmp_path, command):
    app = make_app(UNREACHABLE, tmp_path)

    result = app.test_cli_runner().invoke(args=["opmail", *command], input="a good password\n")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # handled, not an exception escaping
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: the database is not answering (Can't connect to MySQL server")
    assert line.endswith("). Check DATABASE_URL and that the server is running.")


@pytest.fixture
def empty_db_url(db_url):
    """A database init-db has not run on (the run's shared MariaDB database has the tables)."""
    if db_url.startswith("sqlite"):
        yield db_url
        return
    with mysql_database(db_url, f"{sa.make_url(db_url).database}_empty") as url:
        yield url


def test_a_database_without_the_tables_says_to_run_init_db(empty_db_url, tmp_path):
    app = make_app(empty_db_url, tmp_path)

    result = app.test_cli_runner().invoke(args=["opmail", "unlock-admin", "bob"])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: the database has no opmail tables yet (")
    assert "admins" in result.output  # the driver's words name the table
    assert result.output.endswith("). Run: flask opmail init-db\n")


def test_a_command_without_the_database_still_works(tmp_path):
    app = make_app(UNREACHABLE, tmp_path)

    result = app.test_cli_runner().invoke(args=["opmail", "sync-secret"])

    assert result.exit_code == 0
    assert "MAIL_SYNC_SECRET=" in result.output
