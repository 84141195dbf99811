"""A private mail server for the tests: Postfix, Dovecot (IMAP, LMTP, Sieve, quota-status) and an
outside world, set up with the files ``flask opmail mail-config`` writes.

One server per database for the whole run (a pytest plugin, see conftest.py): Dovecot's master
takes seconds to stop and Postfix's to start, so the tests that share it each create their own
domain and addresses. Postfix listens on two free ports of 127.0.0.1: ``smtp_port`` plays port 25
(mail from the internet: no relaying), ``submission_port`` takes what Dovecot sends (autoresponder
replies). Everything Postfix sends elsewhere lands in Postfix's own ``smtp-sink`` (``outbox``).
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import os
import pwd
import re
import secrets
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from string import Template

import pytest
import sqlalchemy as sa

from opmail.db import create_schema
from tests.conftest import make_app, require

# The test-only half of Dovecot's config; the other half is the conf.d snippet opmail printed.
DOVECOT_CONF = Template("""\
# A throw-away Dovecot for opmail's tests: everything lives under $root.
base_dir = $root/dovecot/run
state_dir = $root/dovecot/state
log_path = $root/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
hostname = mx.opmail.test
postmaster_address = postmaster@opmail.test
# Autoresponder replies go to this test's Postfix, not to the machine's sendmail.
submission_host = 127.0.0.1:$submission_port
# Refused logins answer at once instead of after the default 2 seconds.
auth_failure_delay = 0
# The mail user is nobody (65534).
first_valid_uid = 1000
!include $root/etc/dovecot/conf.d/11-opmail.conf

service imap-login {
  inet_listener imap {
    port = $imap_port
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
""")

# The test-only half of Postfix's main.cf; opmail's lines (postfix/opmail/main.cf) follow it.
POSTFIX_MAIN = Template("""\
compatibility_level = 3.6
config_directory = $root/etc/postfix
queue_directory = $root/postfix/queue
data_directory = $root/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $root/postfix.log
maillog_file_prefixes = $root
myhostname = mx.opmail.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
# The outside world: every domain that is not ours is this machine's smtp-sink.
relayhost = [127.0.0.1]:$sink_port
smtp_dns_support_level = disabled
# Answer at once: the tests read SMTP replies and poll the queue.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""")
# No chroot (the queue directory is private anyway); smtpd twice, as port 25 and as submission.
POSTFIX_MASTER = Template("""\
127.0.0.1:$smtp_port inet n - n - - smtpd
  -o smtpd_relay_restrictions=reject_unauth_destination
127.0.0.1:$submission_port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""")
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
STOP_TIMEOUT = 30
WAIT = 15  # seconds a message may take through Postfix and Dovecot on a busy 2-core machine

DOCS = Path(__file__).resolve().parent.parent / "docs" / "mail-flow.md"
_GRANT = re.compile(r"^GRANT (.+) ON mail\.(\S+) TO '(\w+)'@'localhost';$", re.MULTILINE)


def documented_grants(user: str) -> list[str]:
    """The GRANTs docs/mail-flow.md gives ``user`` (opmail, dovecot, postfix), as ``RIGHTS ON
    {db}.TABLE``: the tests create their database users from the documentation itself."""
    return [
        f"{rights} ON {{db}}.{table}"
        for rights, table, grantee in _GRANT.findall(DOCS.read_text())
        if grantee == user
    ]


@dataclass
class Received:
    """One message the outside world (smtp-sink) received."""

    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class MailServer:
    """A running Postfix + Dovecot reading the test database, and clients for them."""

    backend: str
    db_url: str
    root: Path
    imap_port: int
    smtp_port: int
    submission_port: int
    sink_port: int

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def mail_root(self) -> Path:
        return self.root / "mail"

    # --- IMAP -------------------------------------------------------------------------------------

    def login(self, address: str, password: str) -> imaplib.IMAP4:
        """An IMAP session with INBOX selected (raises ``imaplib.IMAP4.error`` when refused)."""
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            imap.login(address, password)
            # A login can succeed while the mail session fails (bad uid, home): select to be sure.
            assert imap.select("INBOX")[0] == "OK"
        except BaseException:
            imap.shutdown()
            raise
        return imap

    def can_log_in(self, address: str, password: str) -> bool:
        """True when Dovecot accepts the login, False when it says AUTHENTICATIONFAILED."""
        try:
            imap = self.login(address, password)
        except imaplib.IMAP4.error as error:
            # Anything else (a temporary failure, a broken query) is a broken setup, not a "no".
            if "AUTHENTICATIONFAILED" not in str(error):
                raise
            return False
        imap.logout()
        return True

    def inbox_subjects(self, address: str, password: str) -> list[str]:
        """The subjects in the account's INBOX, read over IMAP."""
        imap = self.login(address, password)
        try:
            _, [numbers] = imap.search(None, "ALL")
            if not numbers:
                return []
            _, data = imap.fetch(numbers.replace(b" ", b","), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        finally:
            imap.logout()
        headers = [part[1] for part in data if isinstance(part, tuple)]
        return sorted(
            str(email.message_from_bytes(header, policy=email.policy.default)["Subject"])
            for header in headers
        )

    def maildir_subjects(self, address: str) -> list[str]:
        """The subjects in the account's INBOX, read from its Maildir (for accounts IMAP refuses)."""
        local, _, domain = address.partition("@")
        maildir = self.mail_root / domain / local / "Maildir"
        found = []
        for part in ("new", "cur"):
            for path in (maildir / part).glob("*") if (maildir / part).is_dir() else ():
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                found.append(str(message["Subject"]))
        return sorted(found)

    # --- SMTP ---------------------------------------------------------------------------------------

    def send(
        self,
        sender: str,
        recipients: list[str],
        subject: str,
        *,
        headers: dict[str, str] | None = None,
        size: int = 0,
    ) -> None:
        """Send one message into port 25; every recipient must be accepted."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Message-ID"] = f"<{secrets.token_hex(8)}@outside.test>"
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content("Hello.\n" + "x" * size)
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            refused = smtp.send_message(message, sender, recipients)
        assert not refused, refused

    def rcpt(self, recipient: str, sender: str = "someone@outside.test", size: int = 0) -> tuple[int, str]:
        """What port 25 answers to RCPT TO:<recipient> (nothing is sent)."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            smtp.ehlo("outside.test")
            code, _ = smtp.mail(sender, [f"SIZE={size}"] if size else [])
            assert code == 250
            code, reply = smtp.rcpt(recipient)
            smtp.rset()
        return code, reply.decode()

    # --- waiting ------------------------------------------------------------------------------------

    def queued(self) -> list[Path]:
        """The messages in Postfix's queue (waiting, being delivered or deferred)."""
        queue = self.root / "postfix" / "queue"
        return [path for name in QUEUES for path in (queue / name).rglob("*") if path.is_file()]

    def settle(self) -> None:
        """Wait until Postfix has delivered everything it accepted (Dovecot's replies included)."""
        wait_until(lambda: not self.queued(), "Postfix's queue to empty", self)

    def wait_for(self, check: Callable[[], object], what: str) -> object:
        return wait_until(check, what, self)

    def outbox(self) -> list[Received]:
        """What the outside world has received so far, oldest first."""
        found = []
        for path in sorted((self.root / "sink").glob("m.*"), key=lambda path: path.stat().st_mtime_ns):
            found.append(parse_sink_dump(path.read_bytes()))
        return found

    def sent_to(self, address: str) -> list[Received]:
        return [received for received in self.outbox() if address in received.recipients]

    # --- Dovecot's own view ---------------------------------------------------------------------------

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def quota_kilobytes(self, address: str) -> int:
        """STORAGE in use as ``doveadm quota get`` reports it (KB)."""
        output = self.doveadm("-f", "tab", "quota", "get", "-u", address)
        header, *rows = [line.split("\t") for line in output.strip().splitlines()]
        [storage] = [fields for row in rows if (fields := dict(zip(header, row, strict=True)))["Type"] == "STORAGE"]
        return int(storage["Value"])

    def deliver_with_lda(self, address: str, message: bytes, sender: str = "someone@outside.test") -> None:
        """Deliver as an MTA's pipe would: dovecot-lda, run as the mail user."""
        nobody = pwd.getpwnam("nobody")
        # Its log to stderr: the test's log file is root's (a real server logs to syslog).
        command = ["/usr/lib/dovecot/dovecot-lda", "-c", str(self.conf), "-o", "log_path=/dev/stderr"]
        result = subprocess.run(
            [*command, "-d", address, "-f", sender],
            input=message, capture_output=True, timeout=30, user=nobody.pw_uid, group=nobody.pw_gid, check=False,
            extra_groups=[], cwd="/",
        )
        # Delivered, and nothing went wrong on the way (a dict it cannot reach is only logged).
        log = result.stderr.decode()
        assert result.returncode == 0 and "saved mail to INBOX" in log, log
        assert ": Error:" not in log and ": Warning:" not in log, log


def wait_until(check: Callable[[], object], what: str, server: MailServer | None = None) -> object:
    """Poll ``check`` until it returns something true; fail with the servers' logs after WAIT s."""
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            logs = ""
            if server is not None:
                for name in ("postfix.log", "dovecot.log"):
                    path = server.root / name
                    logs += f"\n--- {name} ---\n" + "\n".join(path.read_text().splitlines()[-40:])
            pytest.fail(f"waited {WAIT} s for {what}{logs}")
        time.sleep(0.05)


_SINK_HEADER = re.compile(rb"^X-(Mail|Rcpt)-Args: (.*)$", re.MULTILINE)


def parse_sink_dump(data: bytes) -> Received:
    """One smtp-sink dump: its X-Mail-Args / X-Rcpt-Args lines, then the message as received."""
    sender, recipients = "", []
    for kind, value in _SINK_HEADER.findall(data):
        address = value.decode().split()[0].strip("<>") if value.strip() else ""
        if kind == b"Mail":
            sender = address
        else:
            recipients.append(address)
    message = email.message_from_bytes(data, policy=email.policy.default)
    return Received(sender, recipients, message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing answers on port {port}:\n{log.read_text() if log.exists() else ''}")
            time.sleep(0.05)


def grant_user(mysql_url: str, role: str) -> str:
    """Create the MariaDB user docs/mail-flow.md describes for ``role`` (opmail, dovecot or
    postfix), with exactly its grants; returns the user's URL."""
    url = sa.make_url(mysql_url)
    name, password = f"{role}_{secrets.token_hex(4)}", secrets.token_hex(16)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'")
        for grant in documented_grants(role):
            connection.exec_driver_sql(f"GRANT {grant.format(db=url.database)} TO '{name}'@'127.0.0.1'")
    engine.dispose()
    return url.set(username=name, password=password).render_as_string(hide_password=False)


def drop_user(mysql_url: str, user_url: str) -> None:
    engine = sa.create_engine(sa.make_url(mysql_url))
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP USER IF EXISTS '{sa.make_url(user_url).username}'@'127.0.0.1'")
    engine.dispose()


def share_sqlite_file(db_dir: Path) -> None:
    """What docs/mail-flow.md tells a SQLite install: opmail's file stays its own (0600 here too),
    and ACLs let Dovecot read and write it (usage, the journal beside it) and Postfix read it."""
    (db_dir / "opmail.db").chmod(0o600)
    for args in (
        ["-m", "u:dovecot:rwx,u:postfix:rx", str(db_dir)],
        ["-d", "-m", "u:dovecot:rw,u:postfix:r", str(db_dir)],
        ["-m", "u:dovecot:rw,u:postfix:r", str(db_dir / "opmail.db")],
    ):
        subprocess.run(["setfacl", *args], check=True)


def keep_logs(root: Path, tmp_path_factory) -> None:
    """Copy the servers' logs to where pytest keeps its temp files, for a failure's post-mortem."""
    target = None
    for name in ("dovecot.log", "postfix.log"):
        if (root / name).exists():
            target = target or tmp_path_factory.mktemp("mailserver-logs")
            shutil.copy(root / name, target)


def _start(command: list[str], root: Path, log: str) -> None:
    # Output to a file, not a pipe: the daemon inherits it, and a pipe would never see EOF.
    with open(root / log, "w") as output:
        started = subprocess.run(command, stdout=output, stderr=output, check=False, timeout=60)
    assert started.returncode == 0, (root / log).read_text()


@pytest.fixture(name="mail_server", scope="session", params=["sqlite", "mysql"])
def mail_server_fixture(request, mysql_url, tmp_path_factory) -> Iterator[MailServer]:
    """Postfix and Dovecot on free ports, reading a fresh opmail database through the generated
    config; on MariaDB as the database users of docs/mail-flow.md."""
    for program in ("dovecot", "postfix", "smtp-sink", "setfacl"):
        require(shutil.which(program) is not None, f"{program} is not installed (see .ci/run)")
    require(os.geteuid() == 0, "the private mail server switches users: run the tests as root")
    if request.param == "mysql":
        require(mysql_url is not None, "OPMAIL_TEST_MYSQL_URL is not set: no MariaDB to test against")
    nobody = pwd.getpwnam("nobody")
    postfix = pwd.getpwnam("postfix")
    with ExitStack() as cleanup:  # undone in reverse order, also when the set-up fails half-way
        # Not under tmp_path: pytest keeps its temp root 0700, and the servers' unprivileged
        # processes must reach the Maildirs, the sockets and SQLite.
        root = Path(tempfile.mkdtemp(prefix=f"opmail-mail-{request.param}-"))
        cleanup.callback(shutil.rmtree, root)
        cleanup.callback(keep_logs, root, tmp_path_factory)
        root.chmod(0o755)
        for path in ("mail", "sink", "postfix/queue", "postfix/data", "dovecot", "db"):
            (root / path).mkdir(parents=True)
        os.chown(root / "mail", nobody.pw_uid, nobody.pw_gid)
        os.chown(root / "sink", nobody.pw_uid, nobody.pw_gid)
        os.chown(root / "postfix" / "data", postfix.pw_uid, postfix.pw_gid)
        db_url = f"sqlite:///{root / 'db' / 'opmail.db'}" if request.param == "sqlite" else mysql_url

        app = make_app(db_url, root, MAILDIR_ROOT=str(root / "mail"))
        with app.app_context():
            create_schema()
            app.extensions["opmail"].db.engines["opmail"].dispose()
        args = ["opmail", "mail-config", "--out", str(root / "etc"), "--mail-user", "nobody"]
        args += ["--uid", str(nobody.pw_uid), "--gid", str(nobody.pw_gid)]
        args += ["--postfix-queue", str(root / "postfix" / "queue")]
        if request.param == "mysql":
            for role, option in (("dovecot", "--connect"), ("postfix", "--postfix-connect")):
                user_url = grant_user(mysql_url, role)
                cleanup.callback(drop_user, mysql_url, user_url)
                args += [option, user_url]
        else:
            share_sqlite_file(root / "db")
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, result.output

        server = MailServer(
            backend=request.param,
            db_url=db_url,
            root=root,
            imap_port=free_port(),
            smtp_port=free_port(),
            submission_port=free_port(),
            sink_port=free_port(),
        )
        ports = {name: getattr(server, name) for name in ("imap_port", "smtp_port", "submission_port", "sink_port")}

        with open(root / "sink.log", "w") as sink_log:
            sink = subprocess.Popen(
                ["smtp-sink", "-u", "nobody", "-d", str(root / "sink" / "m."), f"127.0.0.1:{server.sink_port}", "20"],
                stdout=sink_log, stderr=sink_log,
            )
        cleanup.callback(sink.wait, timeout=STOP_TIMEOUT)
        cleanup.callback(sink.terminate)

        postfix_etc = root / "etc" / "postfix"
        opmail_lines = (postfix_etc / "opmail" / "main.cf").read_text()
        (postfix_etc / "main.cf").write_text(POSTFIX_MAIN.substitute(root=root, **ports) + opmail_lines)
        # opmail's delivery service for international domains, as printed, with this Dovecot's config
        # (dovecot-lda cannot write the test's log file, which is root's: its lines go to Postfix).
        opmail_master = (postfix_etc / "opmail" / "master.cf").read_text()
        lda_service = opmail_master[opmail_master.index("opmail-lda unix"):].replace(
            "/usr/lib/dovecot/dovecot-lda ",
            f"/usr/lib/dovecot/dovecot-lda -c {root / 'dovecot.conf'} -o log_path=/dev/stderr ",
        )
        (postfix_etc / "master.cf").write_text(POSTFIX_MASTER.substitute(**ports) + lda_service)
        _start(["postfix", "-c", str(postfix_etc), "start"], root, "postfix-start.log")
        cleanup.callback(
            subprocess.run, ["postfix", "-c", str(postfix_etc), "stop"], timeout=STOP_TIMEOUT, check=False
        )

        server.conf.write_text(DOVECOT_CONF.substitute(root=root, **ports))
        _start(["dovecot", "-c", str(server.conf)], root, "dovecot-start.log")
        cleanup.callback(
            subprocess.run, ["doveadm", "-c", str(server.conf), "stop"], timeout=STOP_TIMEOUT, check=False
        )
        for port in (server.imap_port, server.smtp_port, server.submission_port, server.sink_port):
            wait_for_port(port, root / "dovecot.log")
        yield server
