"""opmail on a real 3-node MariaDB Galera cluster (tests/galera.py; docs/scale-out.md).

Two opmail instances, one on node 1 and one on node 2, as two gunicorn hosts behind a load balancer
would be. Conflicting writes on two nodes meet at COMMIT, where one fails Galera's certification
(MariaDB error 1213) and opmail runs it again (opmail.db.retried): every answer is a 200, or the
documented 503 while a node is down, and what was answered 200 is on every surviving node.

Under CI=true missing packages fail these tests; they never skip (tests.conftest.require).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from opmail.db import create_schema, get_engine
from opmail.passwords import verify_password
from tests.conftest import add_admin, log_in, make_app
from tests.galera import GaleraCluster, galera  # noqa: F401 (the module's cluster fixture)
from tests.helpers import SYNC_SECRET, add_account, add_domain, sync_call

pytestmark = pytest.mark.galera

AWAY = {"error": "The mail database is not answering. Try again in a moment."}
ACTION = "/admin/accounts/action/"
LOAD_SECONDS = 30


@pytest.fixture(scope="module")
def instances(galera: GaleraCluster, tmp_path_factory) -> Iterator[tuple]:  # noqa: F811
    """opmail on node 1 and on node 2 (the schema made through node 1), example.com added."""
    apps = []
    for number in (1, 2):
        apps.append(
            make_app(
                galera.node(number).url, tmp_path_factory.mktemp(f"opmail{number}"),
                MAIL_SYNC_SECRET=SYNC_SECRET, DATABASE_TIMEOUT=10, DATABASE_CONNECT_TIMEOUT=2,
            )
        )
    with apps[0].app_context():
        create_schema()
    add_domain(apps[0])
    yield tuple(apps)
    for app in apps:
        with app.app_context():
            get_engine().dispose()


def all_at_once(calls: list[Callable[[], object]]) -> list:
    """Run every call in a thread of its own, released together at a barrier; their results."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], object]):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def webhook(app, body: dict):
    """One call from a client of its own (test clients are not shared between threads)."""
    return lambda: sync_call(app.test_client(), body)


def on_every_node(galera: GaleraCluster, sql: str, *args) -> list[tuple]:  # noqa: F811
    """What ``sql`` reads on each running node, which must be the same everywhere."""
    found = [node.rows(sql, *args) for node in galera.survivors()]
    assert all(rows == found[0] for rows in found), found
    return found[0]


def test_twenty_parallel_creates_on_two_nodes_leave_one_account(galera, instances):  # noqa: F811
    body = {"action": "create", "email": "race@example.com", "password": "from the panel"}
    answers = all_at_once([webhook(instances[n % 2], body) for n in range(20)])

    assert [(a.status_code, a.json) for a in answers] == [(200, {"status": "ok"})] * 20
    assert on_every_node(
        galera, "SELECT email, deleted_at IS NULL FROM mail_accounts WHERE email = %s", "race@example.com"
    ) == [("race@example.com", 1)]
    assert on_every_node(
        galera, "SELECT kind FROM mail_addresses WHERE address = %s", "race@example.com"
    ) == [("account",)]
    assert on_every_node(galera, "SELECT domain FROM mail_domains") == [("example.com",)]
    # Every call was applied once: one created it, the other 19 found it and updated it.
    assert sorted(on_every_node(
        galera, "SELECT outcome FROM sync_events WHERE email = %s", "race@example.com"
    )) == [("created",)] + [("updated",)] * 19


def test_create_racing_delete_on_two_nodes_ends_in_one_order(galera, instances):  # noqa: F811
    one, two = instances
    for round_ in range(6):
        email = f"order{round_}@example.com"
        created, deleted = all_at_once([
            webhook(one, {"action": "create", "email": email, "password": "from the panel"}),
            webhook(two, {"action": "delete", "email": email}),
        ])
        assert (created.status_code, deleted.status_code) == (200, 200)
        outcomes = dict(on_every_node(galera, "SELECT action, outcome FROM sync_events WHERE email = %s", email))
        live = on_every_node(galera, "SELECT deleted_at IS NULL FROM mail_accounts WHERE email = %s", email)
        if outcomes["delete"] == "deleted":  # create, then delete: the account is there, deleted
            assert live == [(0,)]
        else:  # delete (of nothing), then create: the account is live
            assert outcomes["delete"] == "noop" and live == [(1,)]
        assert outcomes["create"] == "created"


def test_bulk_suspend_on_node_1_and_webhook_passwords_on_node_2_lose_nothing(galera, instances):  # noqa: F811
    one, two = instances
    emails = [f"user{n}@example.com" for n in range(8)]
    ids = [str(add_account(one, email)) for email in emails]
    add_admin(one)
    admin = log_in(one.test_client())
    for round_, action in enumerate(["suspend", "unsuspend", "suspend"]):
        bulk = lambda action=action: admin.post(  # noqa: E731
            ACTION, {"action": action, "rowid": ids, "url": "/admin/accounts/"}, htmx=True
        )
        changes = [
            webhook(two, {"action": "password", "email": email, "password": f"round {round_} {email}"})
            for email in emails
        ]
        suspended, *passwords = all_at_once([bulk, *changes])
        assert suspended.status_code == 200
        assert f'"8 accounts {action}ed."' in suspended.headers["HX-Trigger"]
        assert [(a.status_code, a.json) for a in passwords] == [(200, {"status": "ok"})] * 8
        stored = on_every_node(
            galera, "SELECT email, is_active, password FROM mail_accounts WHERE email LIKE 'user%%' ORDER BY email"
        )
        assert [(email, active) for email, active, _ in stored] == [(e, int(action == "unsuspend")) for e in emails]
        assert all(verify_password(f"round {round_} {email}", hashed) for email, _, hashed in stored)
    assert on_every_node(
        galera, "SELECT action, COUNT(*) FROM admin_events WHERE action LIKE 'account.%%suspend' GROUP BY action ORDER BY action"
    ) == [("account.suspend", 2), ("account.unsuspend", 1)]


def test_a_node_killed_under_load_loses_no_answered_call(galera, instances):  # noqa: F811
    """Last in the module: node 2 stays down. Its instance answers 503s, node 1's goes on."""
    one, two = instances
    answers: list[tuple[str, int, str, float]] = []  # (instance, status, email, when)
    lock = threading.Lock()
    start = time.monotonic()
    killed_at: list[float] = []

    def load(worker: int) -> None:
        client = {"one": one.test_client(), "two": two.test_client()}
        # Bounded: until 8 s after the kill (the cluster settles within ~5 s), at most 30 s.
        for n in range(100_000):
            now = time.monotonic() - start
            if now > LOAD_SECONDS or (killed_at and now > killed_at[0] + 8):
                break
            name = "one" if n % 2 else "two"
            email = f"load{worker}-{n}@example.com"
            response = sync_call(client[name], {"action": "create", "email": email, "password": "pw under load"})
            if response.status_code == 503:
                assert response.json == AWAY and response.headers["Retry-After"] == "10"
            with lock:
                answers.append((name, response.status_code, email, time.monotonic() - start))

    def kill_when_busy() -> None:
        while len(answers) < 40:
            time.sleep(0.01)
        galera.kill(galera.node(2))
        killed_at.append(time.monotonic() - start)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(load, range(6)))
    killer.join()

    assert killed_at, "the load ended before node 2 was killed"
    assert {status for _, status, _, _ in answers} <= {200, 503}
    after = [(name, status) for name, status, _, when in answers if when > killed_at[0] + 5]
    assert ("one", 200) in after  # node 1's instance serves once the cluster has settled
    assert ("two", 503) in after  # node 2's answers the documented 503, never a 500
    galera.wait_for_size(2)
    answered = {email for _, status, email, _ in answers if status == 200}
    for node in galera.survivors():
        live = {email for (email,) in node.rows("SELECT email FROM mail_accounts WHERE email LIKE 'load%%'")}
        assert answered <= live, f"node {node.number} lacks {sorted(answered - live)[:5]}"
