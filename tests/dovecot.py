"""A private Dovecot for the tests, set up with the files ``flask opmail dovecot-config`` writes.

One instance per test module and backend (Dovecot's master takes seconds to stop), so the tests
that share it each create their own domain and addresses. Import ``dovecot_server`` to get the
``dovecot`` fixture.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from string import Template

import pytest
import sqlalchemy as sa

from opmail import dovecot
from opmail.db import create_schema
from tests.conftest import make_app, require

# The test-only half of the config; the other half is the conf.d snippet opmail printed.
DOVECOT_CONF = Template("""\
# A throw-away Dovecot for opmail's tests: everything lives under $root.
base_dir = $root/run
state_dir = $root/state
log_path = $root/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
# Refused logins answer at once instead of after the default 2 seconds.
auth_failure_delay = 0
# The mail user is nobody (65534).
first_valid_uid = 1000
!include $root/etc/$snippet

service imap-login {
  inet_listener imap {
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
# Tests fail logins on purpose: no auth penalty (a growing delay for the address that failed).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
# imap processes run as the mail user and reach the quota dict through this socket.
service dict {
  unix_listener dict {
    mode = 0666
  }
}
""")
STOP_TIMEOUT = 30


@dataclass
class PrivateDovecot:
    """A running Dovecot that reads the test database, and an IMAP client for it."""

    db_url: str
    root: Path
    port: int

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def mail_root(self) -> Path:
        return self.root / "mail"

    def login(self, email: str, password: str) -> imaplib.IMAP4:
        """An IMAP session with INBOX selected (raises ``imaplib.IMAP4.error`` when refused)."""
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            imap.login(email, password)
            # A login can succeed while the mail session fails (bad uid, home): select to be sure.
            assert imap.select("INBOX")[0] == "OK"
        except BaseException:
            imap.shutdown()
            raise
        return imap

    def can_log_in(self, email: str, password: str) -> bool:
        """True when Dovecot accepts the login, False when it says AUTHENTICATIONFAILED."""
        try:
            imap = self.login(email, password)
        except imaplib.IMAP4.error as error:
            # Anything else (a temporary failure, a broken query) is a broken setup, not a "no".
            if "AUTHENTICATIONFAILED" not in str(error):
                raise
            return False
        imap.logout()
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, log: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"Dovecot does not answer on port {port}:\n{log.read_text()}")
            time.sleep(0.05)


def grant_dovecot_user(mysql_url: str) -> tuple[str, str]:
    """Create the MariaDB user docs/dovecot.md describes; return (name, password)."""
    url = sa.make_url(mysql_url)
    name, password = f"dovecot_{secrets.token_hex(4)}", secrets.token_hex(16)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in (
            f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'",
            f"GRANT SELECT ON {url.database}.mail_accounts TO '{name}'@'127.0.0.1'",
            f"GRANT SELECT ON {url.database}.mail_domains TO '{name}'@'127.0.0.1'",
            # MariaDB checks SELECT too for the dict's INSERT … ON DUPLICATE KEY UPDATE.
            f"GRANT SELECT, INSERT, UPDATE ON {url.database}.mail_quota_usage "
            f"TO '{name}'@'127.0.0.1'",
        ):
            connection.exec_driver_sql(statement)
    engine.dispose()
    return name, password


def drop_user(mysql_url: str, name: str) -> None:
    engine = sa.create_engine(sa.make_url(mysql_url))
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP USER IF EXISTS '{name}'@'127.0.0.1'")
    engine.dispose()


def keep_log(root: Path, tmp_path_factory) -> None:
    """Copy Dovecot's log to where pytest keeps its temp files, for a failure's post-mortem."""
    if (root / "dovecot.log").exists():
        shutil.copy(root / "dovecot.log", tmp_path_factory.mktemp("dovecot-log"))


@pytest.fixture(name="dovecot", scope="module", params=["sqlite", "mysql"])
def dovecot_server(request, mysql_url, tmp_path_factory) -> Iterator[PrivateDovecot]:
    """Dovecot on a free port, reading a fresh opmail database through the generated config."""
    require(shutil.which("dovecot") is not None, "dovecot is not installed (see .ci/run)")
    require(os.geteuid() == 0, "the private Dovecot switches to a mail user: run the tests as root")
    if request.param == "mysql":
        require(
            mysql_url is not None, "OPMAIL_TEST_MYSQL_URL is not set: no MariaDB to test against"
        )
    mail_user, dict_user = pwd.getpwnam("nobody"), pwd.getpwnam("dovecot")
    with ExitStack() as cleanup:  # undone in reverse order, also when the set-up fails half-way
        # Not under tmp_path: pytest keeps its temp root 0700 (and closes it again whenever another
        # session starts), and Dovecot's unprivileged processes must reach the Maildirs and SQLite.
        root = Path(tempfile.mkdtemp(prefix=f"opmail-dovecot-{request.param}-"))
        cleanup.callback(shutil.rmtree, root)
        cleanup.callback(keep_log, root, tmp_path_factory)
        root.chmod(0o755)
        (root / "mail").mkdir()
        os.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        if request.param == "sqlite":
            (root / "db").mkdir()
            db_url = f"sqlite:///{root / 'db' / 'opmail.db'}"
        else:
            db_url = mysql_url

        app = make_app(db_url, root, MAILDIR_ROOT=str(root / "mail"))
        with app.app_context():
            create_schema()
            app.extensions["opmail"].db.engines["opmail"].dispose()
        args = ["opmail", "dovecot-config", "--out", str(root / "etc")]
        args += ["--uid", str(mail_user.pw_uid), "--gid", str(mail_user.pw_gid)]
        if request.param == "mysql":
            name, password = grant_dovecot_user(mysql_url)
            cleanup.callback(drop_user, mysql_url, name)
            url = sa.make_url(mysql_url).set(username=name, password=password)
            args += ["--connect", url.render_as_string(hide_password=False)]
        else:
            # The dict process (user dovecot) writes usage into the file and its journal beside it.
            for path in (root / "db", root / "db" / "opmail.db"):
                os.chown(path, dict_user.pw_uid, dict_user.pw_gid)
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, result.output

        server = PrivateDovecot(db_url=db_url, root=root, port=free_port())
        server.conf.write_text(
            DOVECOT_CONF.substitute(root=root, port=server.port, snippet=dovecot.SNIPPET)
        )
        # Output to a file, not a pipe: the daemon inherits it, and a pipe would never see EOF.
        with open(root / "start.log", "w") as output:
            started = subprocess.run(
                ["dovecot", "-c", server.conf], stdout=output, stderr=output, check=False
            )
        assert started.returncode == 0, (root / "start.log").read_text()
        cleanup.callback(
            subprocess.run,
            ["doveadm", "-c", server.conf, "stop"],
            timeout=STOP_TIMEOUT,
            check=False,
        )
        wait_for_port(server.port, root / "dovecot.log")
        yield server
