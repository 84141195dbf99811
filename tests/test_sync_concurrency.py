"""The webhook over real HTTP (a threaded server): transport details and concurrent calls.

Concurrent upserts are tested on MariaDB only: SQLite lets one writer at a time, so there is no race.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from opmail.db import get_session
from opmail.models import MailAccount, MailDomain, SyncEvent
from tests.conftest import ADMIN_PASSWORD
from tests.test_sync import CREATE, DELETE, PANEL_STORED, SECRET, URL, app_overrides  # noqa: F401

PARALLEL = 20


def call(server, body: dict | bytes, headers: dict | None = None) -> tuple[int, dict]:
    """POST to the live server like the agent; returns (status, JSON body)."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(
            "POST",
            URL,
            body=body if not isinstance(body, dict) else json.dumps(body).encode(),
            headers={"X-Sync-Secret": SECRET, "Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def in_parallel(server, bodies: list[dict]) -> list[tuple[int, dict]]:
    """Send every body at once: each thread waits at a barrier until all are ready."""
    barrier = threading.Barrier(len(bodies))

    def send(body: dict) -> tuple[int, dict]:
        barrier.wait()
        return call(server, body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def outcomes(app, email: str) -> dict[str, str]:
    """The logged outcome of each action on ``email`` (one call per action)."""
    with app.app_context():
        return dict(get_session().execute(
            select(SyncEvent.action, SyncEvent.outcome).where(SyncEvent.email == email)
        ).all())


@pytest.fixture
def mariadb(app, live_server):
    """``app`` on MariaDB, its live server warmed up so that parallel calls really overlap."""
    # Cold, the calls queue behind new database connections and hardly overlap at all.
    in_parallel(live_server, [{**DELETE, "email": "nobody@example.org"}] * PARALLEL)
    with app.app_context():
        get_session().execute(SyncEvent.__table__.delete())
        get_session().commit()
    return app


# --- Transport, on both databases ----------------------------------------------------------------

def test_a_real_request_is_accepted(app, live_server):
    assert call(live_server, CREATE) == (200, {"status": "ok"})


def test_non_ascii_secret_bytes_are_403_not_500(app, live_server):
    parts = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("POST", URL)
        connection.putheader("X-Sync-Secret", "é".encode() * 16)
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (403, {"error": "Unauthorized."})
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("size", "status"), [(1024, 200), (70 * 1024, 413)], ids=["small", "over 64 KiB"]
)
def test_chunked_body_without_content_length(app, live_server, size, status):
    data = json.dumps(CREATE).encode()
    data += b" " * (size - len(data))
    # An iterable body makes http.client send Transfer-Encoding: chunked, with no Content-Length.
    answer = call(live_server, iter([data[: size // 2], data[size // 2 :]]))
    assert answer[0] == status


# --- Races, on MariaDB ---------------------------------------------------------------------------

@pytest.mark.mariadb_only
def test_parallel_creates_of_one_new_address_leave_one_account(mariadb, live_server):
    answers = in_parallel(live_server, [CREATE] * PARALLEL)
    assert answers == [(200, {"status": "ok"})] * PARALLEL
    with mariadb.app_context():
        db = get_session()
        assert db.scalar(select(func.count(MailDomain.id))) == 1
        account = db.scalars(select(MailAccount)).one()
        logged = db.scalars(select(SyncEvent.outcome)).all()
    assert (account.email, account.password, account.deleted_at) == (CREATE["email"], PANEL_STORED, None)
    assert sorted(logged) == ["created"] + ["updated"] * (PARALLEL - 1)


@pytest.mark.mariadb_only
def test_parallel_creates_in_one_new_domain_leave_one_domain(mariadb, live_server):
    bodies = [{**CREATE, "email": f"user{n}@example.com"} for n in range(PARALLEL)]
    answers = in_parallel(live_server, bodies)
    assert answers == [(200, {"status": "ok"})] * PARALLEL
    with mariadb.app_context():
        db = get_session()
        assert db.scalars(select(MailDomain.domain)).all() == ["example.com"]
        assert db.scalar(select(func.count(MailAccount.id))) == PARALLEL
        assert set(db.scalars(select(SyncEvent.outcome))) == {"created"}


# What each order of (create, delete) leaves, from each starting state.
SERIAL_ORDERS = {
    "absent": [
        ({"create": "created", "delete": "deleted"}, "deleted"),  # create, then delete
        ({"delete": "noop", "create": "created"}, "live"),  # delete, then create
    ],
    "live": [
        ({"create": "updated", "delete": "deleted"}, "deleted"),
        ({"delete": "deleted", "create": "revived"}, "live"),
    ],
}


@pytest.mark.mariadb_only
@pytest.mark.parametrize("start", SERIAL_ORDERS)
def test_create_racing_delete_ends_as_one_of_the_two_orders(mariadb, live_server, start):
    emails = [f"race{n}@example.com" for n in range(PARALLEL // 2)]
    if start == "live":
        for email in emails:
            assert call(live_server, {**CREATE, "email": email})[0] == 200
        with mariadb.app_context():
            get_session().execute(SyncEvent.__table__.delete())
            get_session().commit()
    bodies = [body for email in emails for body in ({**CREATE, "email": email}, {**DELETE, "email": email})]
    assert in_parallel(live_server, bodies) == [(200, {"status": "ok"})] * len(bodies)

    for email in emails:
        with mariadb.app_context():
            account = get_session().scalars(select(MailAccount).where(MailAccount.email == email)).one()
        final = "deleted" if account.deleted_at is not None else "live"
        assert (outcomes(mariadb, email), final) in SERIAL_ORDERS[start], email
        assert (account.password, account.is_active) == (PANEL_STORED, True)


# The Panel adds accounts to a domain while an admin deletes it: a burst of creates from a few agent
# connections and the admin's delete start together, round after round.
ROUNDS = 8
AGENTS = 4
BURST = 3
_DELETED_COUNT = re.compile(r"<li>(\d+) accounts?")


@pytest.mark.mariadb_only
@pytest.mark.parametrize(
    "app_overrides", [{"MAIL_SYNC_SECRET": SECRET, "OPMAIL_PASSWORD_RATE_LIMIT": "1000 per minute"}]
)
def test_domain_deletes_racing_panel_creates_end_in_clear_answers(mariadb, live_server, admin):
    created, deleted, refused = [], 0, 0
    for round_number in range(ROUNDS):
        seed = f"seed{round_number}@race.example"
        assert call(live_server, {**CREATE, "email": seed, "domain": "race.example"})[0] == 200
        created.append(seed)
        domain = admin.get("/admin/domains/").text.split('data-domain="race.example"')[1]
        domain_id = re.search(r"/admin/domains/delete/\?id=(\d+)", domain).group(1)
        url = f"/admin/domains/delete/?id={domain_id}"
        form = {"admin_password": ADMIN_PASSWORD}
        if round_number % 2:  # what a browser sends; without it, the delete takes whatever is there
            form["newest_account"] = re.search(r'name="newest_account" value="(\d+)"', admin.get(url).text).group(1)
        bodies = [
            {**CREATE, "email": f"r{round_number}-a{agent}-{n}@race.example", "domain": "race.example"}
            for agent in range(AGENTS)
            for n in range(BURST)
        ]
        barrier = threading.Barrier(AGENTS + 1)

        def agent(own: list[dict], barrier: threading.Barrier = barrier) -> list[tuple[int, dict]]:
            barrier.wait()
            return [call(live_server, body) for body in own]

        with ThreadPoolExecutor(AGENTS) as pool:
            burst = [pool.submit(agent, bodies[n * BURST : (n + 1) * BURST]) for n in range(AGENTS)]
            barrier.wait()
            answer = admin.post(url, form, follow_redirects=True)
            answers = [result for future in burst for result in future.result()]
        assert answers == [(200, {"status": "ok"})] * len(bodies), round_number
        created += [body["email"] for body in bodies]
        if answer.status_code == 200:
            assert "Domain race.example deleted." in answer.text
            deleted += int(_DELETED_COUNT.search(answer.text).group(1))
        else:
            assert answer.status_code == 409 and "newest_account" in form, (answer.status_code, answer.text)
            assert "meanwhile: nothing was deleted. Look again" in answer.text
            refused += 1
    with mariadb.app_context():
        remaining = get_session().scalars(select(MailAccount.email)).all()
        logged = get_session().scalars(select(SyncEvent.outcome)).all()
    # Every account the Panel was told exists either went with a delete the admin saw succeed, or
    # is still there: none lost, none twice.
    assert set(remaining) <= set(created)
    assert deleted + len(remaining) == len(created), (deleted, len(remaining), refused)
    assert sorted(logged) == ["created"] * len(created)
