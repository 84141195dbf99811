import os
import sys

import pytest
from pymysql.constants import CLIENT

from opmail import ConfigError
from opmail.db import create_schema, get_engine
from tests.conftest import make_app
from tests.helpers import start_up_errors


@pytest.mark.parametrize("scheme", ["MD5", "blf-crypt", "", "PLAIN"])
def test_bad_password_scheme_refuses_to_start(tmp_path, scheme):
    with pytest.raises(ConfigError, match="DOVECOT_PASSWORD_SCHEME must be one of BLF-CRYPT, SHA512-CRYPT"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, DOVECOT_PASSWORD_SCHEME=scheme)


def test_bad_scheme_in_environment_stops_flask_with_one_line(tmp_path):
    assert start_up_errors(tmp_path, DOVECOT_PASSWORD_SCHEME="MD5") == [
        "opmail: DOVECOT_PASSWORD_SCHEME must be one of BLF-CRYPT, SHA512-CRYPT (got 'MD5')."
    ]


def test_secret_key_is_generated_once_and_kept(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    first = make_app(url, tmp_path, SECRET_KEY=None)
    second = make_app(url, tmp_path, SECRET_KEY=None)
    assert len(first.secret_key) == 64
    assert first.secret_key == second.secret_key
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0


def test_default_database_is_sqlite_in_the_instance_folder(tmp_path, monkeypatch):
    from opmail import create_app

    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"SECRET_KEY": "x"}, instance_path=str(tmp_path / "inst"))
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'inst' / 'opmail.db'}"


def test_the_standalone_site_without_its_extra_says_what_to_install(tmp_path, monkeypatch):
    """A host site installs opmail without python-dotenv; create_app, which reads .env, asks for it."""
    monkeypatch.setitem(sys.modules, "dotenv", None)  # import dotenv now raises ImportError

    with pytest.raises(ConfigError) as refused:
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path)

    assert str(refused.value) == (
        "The standalone site reads .env with python-dotenv: pip install 'opmail[standalone]'."
    )


def test_session_cookie_is_httponly_and_lax(client):
    assert client.application.config["SESSION_COOKIE_HTTPONLY"] is True
    assert client.application.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_second_init_app_is_refused(app):
    from opmail import OpMail

    with pytest.raises(RuntimeError, match="already set up on this app"):
        OpMail(app, db=app.extensions["opmail"].db)


@pytest.mark.parametrize(
    ("key", "value"),
    [("DATABASE_TIMEOUT", "0"), ("DATABASE_TIMEOUT", "ten"), ("DATABASE_TIMEOUT", "1.5"),
     ("DATABASE_CONNECT_TIMEOUT", "-1"), ("DATABASE_CONNECT_TIMEOUT", "86401")],
)
def test_bad_database_timeouts_refuse_to_start(tmp_path, key, value):
    with pytest.raises(ConfigError, match=f"{key} must be a whole number of seconds from 1 to 86400"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, **{key: value})


def test_a_mariadb_engine_gets_the_timeouts(tmp_path):
    url = "mysql+pymysql://opmail:secret@127.0.0.1/mail?charset=utf8mb4"  # never connected to here
    # With the timeouts, the client flags: SQLAlchemy's FOUND_ROWS (kept, as given flags replace
    # it) and MULTI_STATEMENTS, which the webhook's one-round-trip writes need.
    flags = CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS
    default = make_app(url, tmp_path).config["SQLALCHEMY_BINDS"]["opmail"]["connect_args"]
    assert default == {"connect_timeout": 5, "read_timeout": 10, "write_timeout": 10, "client_flag": flags}
    chosen = make_app(url, tmp_path, DATABASE_TIMEOUT="30", DATABASE_CONNECT_TIMEOUT="3")
    assert chosen.config["SQLALCHEMY_BINDS"]["opmail"]["connect_args"] == {
        "connect_timeout": 3, "read_timeout": 30, "write_timeout": 30, "client_flag": flags
    }


@pytest.fixture
def no_umask():
    """Umask 0: whatever mode a file gets, opmail set it explicitly (not the umask's 0022)."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode_of(path) -> str:
    return oct(path.stat().st_mode & 0o777)


@pytest.mark.parametrize(("setting", "file_mode", "folder_mode"), [(None, "0o600", "0o700"), ("0660", "0o660", "0o770"), ("640", "0o640", "0o750")])
def test_the_sqlite_file_and_instance_folder_are_created_private(tmp_path, monkeypatch, no_umask, setting, file_mode, folder_mode):
    from opmail import create_app

    monkeypatch.delenv("DATABASE_URL", raising=False)
    instance = tmp_path / "instance"
    config = {"SECRET_KEY": "x"} | ({"OPMAIL_SQLITE_MODE": setting} if setting else {})
    app = create_app(config, instance_path=str(instance))
    with app.app_context():
        create_schema()
        get_engine().dispose()
    assert mode_of(instance / "opmail.db") == file_mode
    assert mode_of(instance) == folder_mode
    assert (instance / "opmail.db").stat().st_size > 0  # the schema went into the file it made


def test_an_existing_database_file_and_folder_keep_their_mode(tmp_path, no_umask):
    (tmp_path / "instance").mkdir(mode=0o751)
    (tmp_path / "mail.db").touch(mode=0o640)
    make_app(f"sqlite:///{tmp_path}/mail.db", tmp_path)
    assert mode_of(tmp_path / "mail.db") == "0o640" and mode_of(tmp_path / "instance") == "0o751"


@pytest.mark.parametrize("value", ["0644x", "0700", "0400", "0666", "0601", "rw-------", "01600"])
def test_a_bad_sqlite_mode_refuses_to_start(tmp_path, value):
    with pytest.raises(ConfigError, match="OPMAIL_SQLITE_MODE must be an octal file mode"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, OPMAIL_SQLITE_MODE=value)
