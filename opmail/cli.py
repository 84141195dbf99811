"""``flask opmail …``: the commands an operator runs."""

from __future__ import annotations

import secrets
import shutil
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import ProgrammingError

from . import admin_2fa, audit, demo, dovecot
from .account_csv import MAX_BYTES
from .addresses import InvalidInput, normalize_admin_name
from .auth import create_first_admin, set_admin_password, unlock_admin
from .db import create_schema
from .errors import DATABASE_AWAY
from .migrations import UnknownRevision
from .passwords import hash_password
from .queries import idna_2008_review
from .rules import imports


def database_problem(error: Exception) -> str:
    """One line saying why the database could not be used: the driver's own words, no trace."""
    orig = getattr(error, "orig", None) or error
    reason = str(orig.args[-1] if orig.args else orig).strip()
    if _missing_table(error):
        return f"the database has no opmail tables yet ({reason}). Run: flask opmail init-db"
    return (
        f"the database is not answering ({reason}). "
        "Check DATABASE_URL and that the server is running."
    )


def _missing_table(error: Exception) -> bool:
    """SQLite's "no such table" (an OperationalError) or MariaDB's error 1146 (a ProgrammingError)."""
    orig = getattr(error, "orig", None)
    reason = str(orig or error)
    return "no such table" in reason or bool(orig and orig.args and orig.args[0] == 1146)


class OpMailGroup(click.Group):
    """Commands whose database is away, or still empty, say so in one line and exit 1 instead of a
    traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (*DATABASE_AWAY, ProgrammingError) as error:
            if isinstance(error, ProgrammingError) and not _missing_table(error):
                raise
            raise click.ClickException(database_problem(error)) from None


@click.group("opmail", cls=OpMailGroup)
def opmail_cli() -> None:
    """Manage opmail: schema, admins, Dovecot and Postfix config, Panel sync."""


@opmail_cli.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the opmail tables, or bring an older opmail's up to date (safe to run again)."""
    try:
        changes = create_schema()
    except UnknownRevision as error:
        raise click.ClickException(str(error)) from None
    for change in changes:
        click.echo(change)
    # Names stored under the IDNA 2003 rules that the IDNA 2008 ones write differently or refuse.
    for line in idna_2008_review():
        click.echo(line)
    click.echo("Schema ready.")


@opmail_cli.command("create-admin")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--domain", "domains", multiple=True, metavar="DOMAIN",
    help="Make it a domain admin of this domain (repeat for several): it manages only their accounts.",
)
@click.option("--require-2fa", is_flag=True, help="With --domain: it must turn 2FA on before anything else.")
@with_appcontext
def create_admin(username: str, password_stdin: bool, domains: tuple[str, ...], require_2fa: bool) -> None:
    """Create admin USERNAME, or set a new password for it (a server admin, unless --domain)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        created = set_admin_password(username, password, domains, require_2fa)
    except InvalidInput as error:
        raise click.ClickException(error.message) from None
    name = normalize_admin_name(username)
    click.echo(f"Admin {name!r} {'created' if created else 'password changed'}.")
    if domains:
        click.echo(f"It is a domain admin of: {', '.join(sorted(set(domains)))}.")


@opmail_cli.command("first-admin")
@click.option("--port", default=5000, show_default=True, help="The port `flask run` serves on (make run PORT=…).")
@click.option("--url", help="Where the admin is served.  [default: http://127.0.0.1:PORT<MAIL_ADMIN_PREFIX>/]")
@with_appcontext
def first_admin(port: int, url: str | None) -> None:
    """Print how to log in; when there is no admin yet, create one with a one-time password."""
    url = url or f"http://127.0.0.1:{port}{current_app.config['MAIL_ADMIN_PREFIX']}/"
    password = create_first_admin()
    if password is None:
        click.echo(f"Log in at {url} with your admin account.")
        click.echo("Forgot it? .venv/bin/flask --app app opmail create-admin NAME sets a new password.")
        return
    click.secho("No admin existed, so one was created. Log in with:", bold=True)
    click.echo(f"  URL:      {url}")
    click.echo("  Username: admin")
    click.echo(f"  Password: {password}")
    click.echo("This password is shown once. Change it with: .venv/bin/flask --app app opmail create-admin admin")


mail_root_option = click.option(
    "--mail-root", metavar="PATH", help="Where the Maildirs live.  [default: MAILDIR_ROOT]"
)


@opmail_cli.command("mail-config")
@click.option(
    "--out",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the files into DIR/dovecot and DIR/postfix (e.g. --out /etc) instead of printing them.",
)
@click.option(
    "--connect",
    metavar="DSN",
    help="How Dovecot reaches the database, e.g. as its own user: a URL or a Dovecot connect "
    "line.  [default: opmail's database URL]",
)
@click.option(
    "--postfix-connect",
    metavar="URL",
    help="How Postfix reaches the database, e.g. as its own read-only user.  "
    "[default: opmail's database URL]",
)
@mail_root_option
@click.option(
    "--uid",
    type=click.IntRange(min=1),
    default=dovecot.DEFAULT_UID,
    show_default=True,
    help="Owner of the Maildirs.",
)
@click.option(
    "--gid",
    type=click.IntRange(min=1),
    default=dovecot.DEFAULT_GID,
    show_default=True,
    help="Group of the Maildirs.",
)
@click.option(
    "--mail-user",
    default=dovecot.MAIL_USER,
    show_default=True,
    help="Name of the Maildirs' owner (dovecot-lda runs as it and needs Dovecot's dict socket).",
)
@click.option(
    "--postfix-queue",
    metavar="DIR",
    default=dovecot.POSTFIX_QUEUE,
    show_default=True,
    help="Postfix's queue_directory: Dovecot puts its LMTP, quota-status and auth sockets in DIR/private.",
)
@with_appcontext
def mail_config(
    out: Path | None,
    connect: str | None,
    postfix_connect: str | None,
    mail_root: str | None,
    uid: int,
    gid: int,
    mail_user: str,
    postfix_queue: str,
) -> None:
    """Print the Dovecot and Postfix config for this database: logins, delivery over LMTP, aliases,
    groups, forwards, quotas (refused at RCPT when full) and autoresponders."""
    conf_dir = str(out.resolve()) if out else dovecot.CONF_DIR
    try:
        settings = dovecot.app_settings(
            connect=connect,
            postfix_connect=postfix_connect,
            mail_root=mail_root,
            uid=uid,
            gid=gid,
            mail_user=mail_user,
            conf_dir=conf_dir,
            postfix_queue=postfix_queue,
        )
        files = dovecot.config_files(settings)
    except dovecot.DovecotConfigError as error:
        raise click.ClickException(str(error)) from None
    for name, text in files.items():
        if out is None:
            click.secho(f"==> {conf_dir}/{name} <==", bold=True)
            click.echo(text)
            continue
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # Files with the database password: like Debian's own, root:dovecot (root:postfix) 0640,
        # set before the text is written. Dovecot's dict and Postfix's proxymap read them as
        # those users.
        secret = dovecot.holds_password(name)
        path.touch(mode=0o600)
        path.chmod(0o640 if secret else 0o644)
        path.write_text(text)
        click.echo(f"Wrote {path}")
        if secret:
            server = name.partition("/")[0]
            try:
                shutil.chown(path, group=server)
            except (LookupError, PermissionError):
                click.echo(f"Let {server} read it: chgrp {server} {path}", err=True)


@opmail_cli.command("refresh-usage")
@mail_root_option
@with_appcontext
def refresh_usage(mail_root: str | None) -> None:
    """Measure every account's Maildir and store the usage the accounts list shows.

    For servers without Dovecot's quota_clone, which keeps the same figures up to date by itself.
    """
    with click.progressbar(length=dovecot.count_accounts(), label="Measuring Maildirs") as bar:
        report = dovecot.refresh_usage(mail_root, progress=bar.update)
    click.echo(
        f"Usage stored for {report.measured} accounts "
        f"({len(report.missing)} without a Maildir yet, counted as empty)."
    )
    for email in report.unreadable:
        click.echo(f"Cannot read the Maildir of {email}: its usage is left as it was.", err=True)


@opmail_cli.command("sync-secret")
def sync_secret() -> None:
    """Print a new secret for the Panel sync webhook and the .env line that sets it."""
    secret = secrets.token_hex(16)
    click.echo("Put this line in .env (and the same secret in the Panel agent), then restart opmail:")
    click.echo(f"MAIL_SYNC_SECRET={secret}")


@opmail_cli.command("seed-demo")
@click.option("--accounts", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--domains", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--password",
    help="The password every demo account gets.  [default: a random one, printed at the end]",
)
@with_appcontext
def seed_demo(accounts: int, domains: int, password: str | None) -> None:
    """Fill the database with demo domains and accounts, fast (bulk inserts, one shared hash).

    Refuses to run when demo domains (demoNNNNN.example) already exist.
    """
    config = current_app.config
    password = password or secrets.token_urlsafe(12)
    try:
        password_hash = hash_password(
            password, config["DOVECOT_PASSWORD_SCHEME"], bcrypt_rounds=config["OPMAIL_BCRYPT_ROUNDS"]
        )
        with click.progressbar(length=accounts, label="Adding demo accounts") as bar:
            report = demo.seed_demo(accounts, min(domains, accounts), password_hash, progress=bar.update)
    except (InvalidInput, demo.DemoExists) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Added {report.accounts:,} accounts in {report.domains:,} demo domains.")
    click.echo(f"Every demo account's password: {password}")


def _accounts(count: int) -> str:
    return f"{count:,} account{'' if count == 1 else 's'}"


@opmail_cli.command("import-accounts")
@click.argument("file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check the file and report, but write nothing.")
@with_appcontext
def import_accounts_command(file, dry_run: bool) -> None:
    """Add the accounts of CSV FILE (columns: email, password, quota_mb, display_name, status).

    Every row is checked first; with any problem, each is printed with its row number and nothing
    is written. Otherwise all accounts are added in one transaction.
    """
    # One byte past the limit is enough for the check to say the file is too large.
    check = imports.check_import(file.read(MAX_BYTES + 1))
    if not check.ok:
        for problem in check.problems:
            where = f"row {problem.row}" if problem.row else "file"
            if problem.column:
                where += f", {problem.column}"
            click.echo(f"{where}: {problem.message}", err=True)
        rows = f"{check.bad_rows:,} of {len(check.rows):,} rows have problems. " if check.rows else ""
        raise click.ClickException(f"{rows}Nothing was written.")
    if dry_run:
        click.echo(f"{_accounts(len(check.rows))} can be imported (dry run: nothing was written).")
        return
    try:
        with audit.acting_as("cli"), click.progressbar(length=len(check.rows), label="Hashing passwords") as bar:
            emails = imports.import_accounts(check, progress=bar.update)
    except InvalidInput as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Imported {_accounts(len(emails))}.")


@opmail_cli.command("unlock-admin")
@click.argument("username")
@with_appcontext
def unlock_admin_command(username: str) -> None:
    """Lift USERNAME's lock after too many wrong passwords (and forget them)."""
    if not unlock_admin(username.strip()):
        raise click.ClickException(f"There is no admin {username!r}.")
    click.echo(f"Admin {username!r} unlocked: the password may be tried again.")


@opmail_cli.command("reset-admin-2fa")
@click.argument("username")
@with_appcontext
def reset_admin_2fa(username: str) -> None:
    """Turn off USERNAME's two-factor authentication (a lost phone) and end its sessions."""
    with audit.acting_as("cli"):
        found = admin_2fa.reset(username.strip())
    if not found:
        raise click.ClickException(f"There is no admin {username!r}.")
    click.echo(
        f"Two-factor authentication is off for admin {username!r}: the password alone logs in."
        " Turn it on again under Two-factor authentication."
    )
