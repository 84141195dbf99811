import sys

import pytest

from opmail import ConfigError
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
