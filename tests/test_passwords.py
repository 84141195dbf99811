import re
from pathlib import Path

import bcrypt as pyca_bcrypt
import pytest

from opmail.addresses import InvalidInput
from opmail.passwords import hash_password, is_dovecot_hash, to_dovecot_hash, verify_password


@pytest.mark.parametrize(
    ("scheme", "prefix"),
    [("BLF-CRYPT", "{BLF-CRYPT}$2y$04$"), ("SHA512-CRYPT", "{SHA512-CRYPT}$6$rounds=5000$")],
)
def test_hash_round_trips_with_dovecot_prefix(scheme, prefix):
    stored = hash_password("s3cret pass", scheme, bcrypt_rounds=4)
    assert stored.startswith(prefix)
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pasS", stored)


def test_default_bcrypt_cost_is_12():
    assert hash_password("x", "BLF-CRYPT").startswith("{BLF-CRYPT}$2y$12$")


@pytest.mark.parametrize("ident", [b"2a", b"2b"])
def test_hash_from_another_bcrypt_implementation_verifies(ident):
    # pyca/bcrypt writes $2b$ (or $2a$); Dovecot and PHP write $2y$: all the same algorithm.
    made_elsewhere = pyca_bcrypt.hashpw(b"from the panel", pyca_bcrypt.gensalt(rounds=12, prefix=ident)).decode()
    as_2y = "$2y$" + made_elsewhere[4:]
    for stored in (made_elsewhere, "{BLF-CRYPT}" + made_elsewhere, "{BLF-CRYPT}" + as_2y):
        assert verify_password("from the panel", stored)
        assert not verify_password("from the Panel", stored)


def test_unprefixed_sha512_verifies():
    stored = hash_password("pw", "SHA512-CRYPT")
    assert verify_password("pw", stored.removeprefix("{SHA512-CRYPT}"))


@pytest.mark.parametrize("scheme", ["BLF-CRYPT", "SHA512-CRYPT"])
@pytest.mark.parametrize("bad", ["", "   ", "tab\there", "nul\x00"])
def test_empty_blank_or_control_password_is_refused(scheme, bad):
    with pytest.raises(InvalidInput, match="password"):
        hash_password(bad, scheme)


def test_over_72_bytes_is_refused_for_bcrypt_only():
    seventy_three = "é" * 36 + "x"  # 73 bytes, 37 characters
    with pytest.raises(InvalidInput, match="72 bytes"):
        hash_password(seventy_three, "BLF-CRYPT", bcrypt_rounds=4)
    assert hash_password("é" * 36, "BLF-CRYPT", bcrypt_rounds=4)  # exactly 72 bytes
    assert verify_password(seventy_three, hash_password(seventy_three, "SHA512-CRYPT"))


def test_verify_never_raises_on_garbage():
    assert not verify_password("x" * 100, hash_password("x", "BLF-CRYPT", bcrypt_rounds=4))
    assert not verify_password("x", "{PLAIN}x")
    assert not verify_password("x", "")


GOOD_BCRYPT = "$2y$12$" + "a" * 53
GOOD_SHA = "$6$rounds=5000$saltsalt$" + "b" * 86


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (GOOD_BCRYPT, "{BLF-CRYPT}" + GOOD_BCRYPT),
        ("{BLF-CRYPT}" + GOOD_BCRYPT, "{BLF-CRYPT}" + GOOD_BCRYPT),
        ("$2b$10$" + "a" * 53, "{BLF-CRYPT}$2b$10$" + "a" * 53),
        (GOOD_SHA, "{SHA512-CRYPT}" + GOOD_SHA),
        ("$6$saltsalt$" + "b" * 86, "{SHA512-CRYPT}$6$saltsalt$" + "b" * 86),
        ("{SHA512-CRYPT}" + GOOD_SHA, "{SHA512-CRYPT}" + GOOD_SHA),
    ],
)
def test_well_formed_hashes_are_recognised(value, stored):
    assert is_dovecot_hash(value)
    assert to_dovecot_hash(value) == stored


@pytest.mark.parametrize(
    "value",
    [
        "$2y$12$tooshort",
        "$2y$03$" + "a" * 53,  # cost too low
        "$2y$16$" + "a" * 53,  # cost too high
        "$6$rounds=999$salt$" + "b" * 86,
        "{PLAIN}secret",
        "{MD5-CRYPT}$1$salt$abcdefghijklmnopqrstuv",
        "{SHA512-CRYPT}" + GOOD_BCRYPT,  # prefix disagrees with the hash
        "plain password",
    ],
)
def test_malformed_or_unsupported_hashes_are_not_accepted(value):
    assert not is_dovecot_hash(value)


def test_the_readme_hashes_are_of_the_password_it_names():
    """An admin pastes the README's examples: the hashes there must log in with the password it
    names, or the first try of the webhook or the import looks broken."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    hashes = re.findall(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", readme)
    assert len(hashes) == 2 and readme.count('"rasmuslerdorf"') == 2
    for stored in hashes:
        assert to_dovecot_hash(stored) is not None and verify_password("rasmuslerdorf", stored), stored
