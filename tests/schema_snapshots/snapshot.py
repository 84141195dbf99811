"""Save the schema that `flask opmail init-db` of one or more commits leaves in a new database.

    python tests/schema_snapshots/snapshot.py NAME COMMIT [COMMIT…]

Each commit's own code (``git archive``, run with this venv) runs ``init-db`` in turn on one new
database, as a database that lived through those releases (one whose ``init-db`` failed leaves it
as it left it, and the next one goes on); the result is written to
``NAME.sqlite.sql`` and, with ``OPMAIL_TEST_MYSQL_URL`` set, ``NAME.mariadb.sql`` beside this file:
SQL statements separated by blank lines, which tests/test_migrations.py loads and upgrades.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
INIT_DB = """
import sys
from opmail import create_app
app = create_app({"DATABASE_URL": sys.argv[1], "SECRET_KEY": "x", "MAIL_SYNC_SECRET": ""},
                 instance_path=sys.argv[2])
result = app.test_cli_runner().invoke(args=["opmail", "init-db"])
sys.stderr.write(result.output)
sys.exit(result.exit_code)
"""


def run_init_db(commits: list[str], url: str, workdir: str) -> None:
    for commit in commits:
        source = Path(workdir, commit)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "opmail"], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(source, filter="data")
        # The old commit's own opmail first on the path, whatever the venv has installed.
        env = {**os.environ, "PYTHONPATH": str(source)}
        command = [sys.executable, "-c", INIT_DB, url, f"{workdir}/instance"]
        ran = subprocess.run(command, cwd=source, env=env, check=False)
        if ran.returncode:
            # Kept as that release left it: an operator moved on to the next release.
            print(f"init-db of {commit} failed on {url.split(':')[0]}", file=sys.stderr)


def dump(connection: sa.Connection) -> str:
    if connection.dialect.name == "sqlite":
        statements = [
            f"{sql};"
            for (sql,) in connection.exec_driver_sql(
                # sqlite_sequence (made by an AUTOINCREMENT table) is SQLite's own: it cannot be created.
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
    else:
        statements = ["SET FOREIGN_KEY_CHECKS=0;"]
        tables = connection.exec_driver_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "ORDER BY create_time, table_name"
        )
        for (table,) in tables.all():
            sql = connection.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").one()[1]
            statements.append(re.sub(r" AUTO_INCREMENT=\d+", "", sql) + ";")
        triggers = connection.exec_driver_sql(
            "SELECT trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE() ORDER BY created"
        )
        for (trigger,) in triggers.all():
            sql = connection.exec_driver_sql(f"SHOW CREATE TRIGGER `{trigger}`").one()[2]
            statements.append(re.sub(r"DEFINER=\S+ ", "", sql) + ";")
        statements.append("SET FOREIGN_KEY_CHECKS=1;")
    if sa.inspect(connection).has_table("opmail_alembic_version"):
        for (version,) in connection.exec_driver_sql("SELECT version_num FROM opmail_alembic_version"):
            statements.append(f"INSERT INTO opmail_alembic_version (version_num) VALUES ('{version}');")
    return "\n\n".join(statements) + "\n"


def snapshot(name: str, commits: list[str], kind: str) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        if kind == "sqlite":
            url = f"sqlite:///{workdir}/snapshot.db"
            server = None
        else:
            server = sa.create_engine(sa.make_url(os.environ["OPMAIL_TEST_MYSQL_URL"]))
            database = f"opmail_snapshot_{uuid.uuid4().hex[:8]}"
            with server.begin() as connection:
                connection.exec_driver_sql(
                    f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            url = server.url.set(database=database, query={"charset": "utf8mb4"})
            url = url.render_as_string(hide_password=False)
        try:
            run_init_db(commits, url, workdir)
            engine = sa.create_engine(url)
            with engine.connect() as connection:
                (HERE / f"{name}.{kind}.sql").write_text(dump(connection))
            engine.dispose()
        finally:
            if server is not None:
                with server.begin() as connection:
                    connection.exec_driver_sql(f"DROP DATABASE {database}")
                server.dispose()


if __name__ == "__main__":
    name, *commits = sys.argv[1:]
    snapshot(name, commits, "sqlite")
    if os.environ.get("OPMAIL_TEST_MYSQL_URL"):
        snapshot(name, commits, "mariadb")
