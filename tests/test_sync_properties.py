"""Property-based: arbitrary JSON and arbitrary bytes at the webhook, with the right secret.

Whatever arrives, the answer is JSON and never a 5xx, and the database is unchanged unless the answer
is 200 (docs/sync-webhook.md: "Nothing is written unless the answer is 200"). Deterministic and
bounded for CI: ``derandomize`` and a fixed number of examples, no example database on disk.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmail.db import get_engine
from opmail.models import Base
from tests.helpers import SYNC_SECRET, add_account, add_domain, snapshot, sync_call
from tests.test_sync import PANEL_HASH, SHA512_HASH

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

# Every character, with extra weight on the troublesome classes: lone surrogates (json.dumps writes
# them as "\ud800" escapes), controls, format characters (zero-width, bidi) and spaces.
any_char = st.characters(exclude_categories=()) | st.characters(categories=["Cs", "Cc", "Cf", "Zs"])
any_text = st.text(any_char, max_size=40)
# One odd character in an otherwise good value: each check must hold on its own, not only behind
# another one that an arbitrary string trips first.
one_odd_char = st.builds("{}{}{}".format, st.sampled_from(["", "ja"]), any_char, st.sampled_from(["", "ne"]))
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-2, max_value=10_000_001)
    | st.floats()  # NaN and Infinity too: Python's json reads them
    | any_text
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4), max_leaves=12
)
# Bodies shaped like the contract, each key present or not, with good, near-miss or arbitrary values.
addresses = st.sampled_from(
    ["jane@example.com", "new@example.org", "Jane@Example.COM", " jane@example.com", "jane@bücher.de",
     "jane@xn--bcher-kva.de", "jane+tag@example.com", "jane@localhost", "@example.com", "jane@@example.com"]
) | st.builds("{}@{}".format, any_text | one_odd_char, st.sampled_from(["example.com", "other.org"]) | any_text)
passwords = st.sampled_from(
    [PANEL_HASH, "{BLF-CRYPT}" + PANEL_HASH, SHA512_HASH, "plain pass", "$2y$12$short", "{PLAIN}x",
     "$1$salt$hash", "", "   ", "é" * 37, "pass\nword"]
) | any_text | one_odd_char
contract_bodies = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["create", "delete", "password", "CREATE", "Delete", "update"]) | json_values,
        "email": addresses | json_values,
        "password": passwords | json_values,
        "quota_mb": st.integers(min_value=-1, max_value=10_000_001) | json_values,
        "domain": st.sampled_from(["example.com", "EXAMPLE.com", "other.org", "bücher.de"]) | json_values,
        "display_name": json_values,
    },
)
# Near-valid calls, so that acceptance (and its writes) is exercised as much as refusal.
near_valid_bodies = st.fixed_dictionaries(
    {"action": st.sampled_from(["create", "delete", "password"]), "email": addresses, "password": passwords},
    optional={
        "quota_mb": st.none() | st.integers(min_value=-1, max_value=10_000_001),
        "domain": st.sampled_from(["example.com", "other.org"]),
        "display_name": json_values,
    },
)
bodies = near_valid_bodies | contract_bodies | json_values


def valid_calls() -> st.SearchStrategy[bytes]:
    return st.builds(lambda body: json.dumps(body).encode(), near_valid_bodies | contract_bodies)


raw_bodies = (
    st.binary(max_size=200)
    # Valid calls cut short, in other encodings, or with bytes around them.
    | st.builds(lambda data, cut: data[:cut], valid_calls(), st.integers(min_value=0, max_value=120))
    | st.builds(lambda data: data.decode().encode("utf-16"), valid_calls())
    | st.builds(lambda data, junk: data + junk, valid_calls(), st.binary(min_size=1, max_size=8))
)


class Webhook:
    """The app's webhook with the seeded state: one domain and one live account."""

    def __init__(self, app) -> None:
        self.app = app
        self.client = app.test_client()
        self.reset()

    def reset(self) -> None:
        with self.app.app_context(), get_engine().begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        add_domain(self.app, "example.com")
        add_account(self.app, "jane@example.com")
        self.seeded = snapshot(self.app)
        self.dirty = False

    def send(self, data: bytes) -> int:
        """POST ``data`` with the right secret and check the property; returns the status."""
        if self.dirty:  # the previous call was accepted and wrote: start again from the seed
            self.reset()
        response = sync_call(self.client, data)
        assert response.status_code < 500, response.text
        assert response.is_json and isinstance(response.get_json(), dict), response.text
        if response.status_code == 200:
            assert response.json == {"status": "ok"}
            self.dirty = True
        else:
            assert snapshot(self.app) == self.seeded
        return response.status_code


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


# The app (SQLite or MariaDB) is built once per test function; the @given function inside the test
# takes no fixtures, and the state is reset whenever an example wrote.


def test_any_json_value_is_answered_in_json_and_writes_nothing_unless_200(app):
    webhook, seen = Webhook(app), set()

    @PROPERTY
    @given(body=bodies)
    def send(body):
        seen.add(webhook.send(json.dumps(body).encode()))

    send()
    # The property means something only if the bodies reach acceptance as well as refusal.
    assert {200, 422} <= seen


def test_any_bytes_are_answered_in_json_and_write_nothing_unless_200(app):
    webhook = Webhook(app)

    @PROPERTY
    @given(data=raw_bodies)
    def send(data):
        webhook.send(data)

    send()
