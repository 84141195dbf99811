"""Per-client rate limits (Flask-Limiter) on the password forms and the webhook's refused calls.

Run with in-memory storage and against the machine's Redis (redis://127.0.0.1:6379), which is what
several gunicorn workers share.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import ADMIN_PASSWORD, AdminClient, make_app, require
from tests.helpers import add_account, add_domain, snapshot
from tests.test_admin_2fa import code, enrol, send_code, steady_clock, wrong_code  # noqa: F401

REDIS = "redis://127.0.0.1:6379"
SECRET = "0123456789abcdef0123456789abcdef"
SYNC = "/api/sync/account"
BODY = json.dumps({"action": "delete", "email": "jane@example.com"})


def redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["memory", "redis"])
def storage(request):
    if request.param == "redis":
        require(redis_answers(), f"no Redis answers at {REDIS}")
        return REDIS
    return "memory://"


@pytest.fixture
def app_overrides(storage):
    return {
        "RATELIMIT_STORAGE_URI": storage,
        # Redis outlives the test: its own key space, so no run sees another's counts.
        "RATELIMIT_KEY_PREFIX": f"opmail-test-{uuid.uuid4().hex}",
        "OPMAIL_PASSWORD_RATE_LIMIT": "3 per minute",
        "OPMAIL_SYNC_FAILURE_RATE_LIMIT": "3 per minute",
        "MAIL_SYNC_SECRET": SECRET,
    }


def client_at(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def from_address(app, address: str) -> AdminClient:
    return AdminClient(client_at(app, address))


def test_login_attempts_per_address(app, admin_user):
    guesser = from_address(app, "203.0.113.7")
    for _ in range(3):
        assert guesser.login(username="someone", password="wrong").status_code == 401
    refused = guesser.login(password=ADMIN_PASSWORD)
    assert refused.status_code == 429
    assert_retry_page(refused)
    assert guesser.client.get("/admin/login").status_code == 200  # the page itself is not limited
    # Another address is not held back, and logs in.
    assert from_address(app, "198.51.100.1").login().status_code == 302


def assert_retry_page(response):
    """opmail's small 429 page: when to try again, in the text and in Retry-After."""
    seconds = int(response.headers["Retry-After"])
    assert 50 <= seconds <= 60  # the rest of the minute's window
    assert f"Too many attempts. Try again in {seconds} seconds." in response.text
    assert response.mimetype == "text/html" and "Traceback" not in response.text


def test_password_forms_share_one_count(app, admin_user):
    add_domain(app, "example.com")
    jane = add_account(app, "jane@example.com")
    user = from_address(app, "203.0.113.8")
    assert user.login().status_code == 302  # 1
    url = f"/admin/accounts/delete/?id={jane}"
    assert user.post(url, {"admin_password": "not it"}).status_code == 422  # 2
    assert user.post(url, {"admin_password": "not it"}).status_code == 422  # 3
    before = snapshot(app)
    refused = user.post(url, {"admin_password": ADMIN_PASSWORD})
    assert refused.status_code == 429
    assert_retry_page(refused)
    assert snapshot(app) == before


def test_limited_htmx_post_gets_a_toast(app, admin_user):
    """The bulk bar posts through htmx: the refusal comes back as a toast, not a page to swap in."""
    add_domain(app, "example.com")
    jane = add_account(app, "jane@example.com")
    user = from_address(app, "203.0.113.12")
    assert user.login().status_code == 302
    form = {"action": "delete", "rowid": [jane], "url": "/admin/accounts/", "admin_password": "no"}
    for _ in range(2):
        assert user.post("/admin/accounts/action/", form, htmx=True).status_code == 422  # wrong password
    before = snapshot(app)
    refused = user.post("/admin/accounts/action/", {**form, "admin_password": ADMIN_PASSWORD}, htmx=True)
    assert refused.status_code == 429
    toast = json.loads(refused.headers["HX-Trigger"])["opmail:toast"]
    assert toast["category"] == "error"
    assert toast["message"] == f"Too many attempts. Try again in {refused.headers['Retry-After']} seconds."
    assert snapshot(app) == before


def test_the_2fa_code_step_shares_the_count(app, admin_user):
    user = from_address(app, "203.0.113.12")
    user.login()
    secret, _ = enrol(user)
    user.post("/admin/logout")
    assert user.login().location == "/admin/login/code"  # 2
    assert send_code(user, wrong_code(secret)).status_code == 401  # 3
    refused = send_code(user, code(secret))
    assert refused.status_code == 429
    assert "Too many attempts. Try again in" in refused.text


def test_bulk_actions_without_a_password_are_not_counted(app, admin_user):
    add_domain(app, "example.com")
    jane = add_account(app, "jane@example.com")
    user = from_address(app, "203.0.113.9")
    user.login()
    for action in ["suspend", "unsuspend"] * 3:
        form = {"action": action, "rowid": [jane], "url": "/admin/accounts/"}
        assert user.post("/admin/accounts/action/", form).status_code == 302


def sync_call(client, secret: str):
    return client.post(SYNC, data=BODY, headers={"X-Sync-Secret": secret}, content_type="application/json")


def test_refused_webhook_calls_are_limited_and_accepted_ones_are_not(app):
    agent = client_at(app, "127.0.0.1")
    for _ in range(5):
        assert sync_call(agent, SECRET).status_code == 200
    guesser = client_at(app, "203.0.113.10")
    for _ in range(3):
        assert sync_call(guesser, "x" * 32).status_code == 403
    # Now the next wrong secret from that address waits; the JSON contract holds.
    refused = sync_call(guesser, "y" * 32)
    assert refused.status_code == 429
    seconds = refused.headers["Retry-After"]
    assert 50 <= int(seconds) <= 60
    assert refused.json == {"error": f"Too many refused calls from your address. Try again in {seconds} s."}
    assert sync_call(agent, SECRET).status_code == 200


def test_refused_calls_never_hold_back_the_right_secret_from_the_same_address(app, app_overrides, db_url, tmp_path):
    """The agent shares its address (127.0.0.1) with whoever else runs there: 30 wrong secrets from
    it, spread over two workers, and every call of the agent is still served."""
    workers = [client_at(app, "127.0.0.1"), client_at(make_app(db_url, tmp_path, **app_overrides), "127.0.0.1")]
    for n in range(30):
        assert sync_call(workers[n % 2], "x" * 32).status_code in (403, 429)
    assert [sync_call(workers[n % 2], SECRET).status_code for n in range(10)] == [200] * 10
    assert sync_call(workers[0], "x" * 32).status_code == 429


@pytest.mark.parametrize("storage", ["redis"], indirect=True)  # memory:// is per process
def test_workers_share_the_count_through_redis(app, app_overrides, admin_user, db_url, tmp_path):
    second_worker = make_app(db_url, tmp_path, **app_overrides)
    address = "203.0.113.11"
    assert from_address(app, address).login(password="wrong").status_code == 401
    assert from_address(second_worker, address).login(password="wrong").status_code == 401
    assert from_address(app, address).login(password="wrong").status_code == 401
    assert from_address(second_worker, address).login().status_code == 429


def test_a_refused_call_is_still_a_403_when_the_count_cannot_be_stored(app, app_overrides, db_url, tmp_path):
    """Redis away: the wrong secret is refused all the same (uncounted), never a 500."""
    worker = make_app(db_url, tmp_path, **{**app_overrides, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1"})
    client = client_at(worker, "203.0.113.12")
    assert (sync_call(client, "x" * 32).status_code, sync_call(client, SECRET).status_code) == (403, 200)
