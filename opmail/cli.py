"""``flask opmail …``: the commands an operator runs."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from .addresses import InvalidInput
from .auth import create_first_admin, set_admin_password
from .db import create_schema


@click.group("opmail")
def opmail_cli() -> None:
    """Manage opmail: schema, admins, Dovecot config, Panel sync."""


@opmail_cli.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the opmail tables that do not exist yet (safe to run again)."""
    create_schema()
    click.echo("Schema ready.")


@opmail_cli.command("create-admin")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_admin(username: str, password_stdin: bool) -> None:
    """Create admin USERNAME, or set a new password for it."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        created = set_admin_password(username.strip(), password)
    except InvalidInput as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Admin {username!r} {'created' if created else 'password changed'}.")


@opmail_cli.command("first-admin")
@click.option("--url", default="http://127.0.0.1:5000/admin/", help="Where the admin is served.")
@with_appcontext
def first_admin(url: str) -> None:
    """Print how to log in; when there is no admin yet, create one with a one-time password."""
    password = create_first_admin()
    if password is None:
        click.echo(f"Log in at {url} with your admin account.")
        click.echo("Forgot it? flask --app app opmail create-admin NAME sets a new password.")
        return
    click.secho("No admin existed, so one was created. Log in with:", bold=True)
    click.echo(f"  URL:      {url}")
    click.echo("  Username: admin")
    click.echo(f"  Password: {password}")
    click.echo("This password is shown once. Change it with: flask --app app opmail create-admin admin")
