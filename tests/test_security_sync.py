"""Webhook hardening: the secret's minimum length and the signed mode (README, "Signed calls")."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from opmail import ConfigError
from tests.conftest import make_app
from tests.helpers import snapshot

URL = "/api/sync/account"
SECRET = "0123456789abcdef0123456789abcdef"
BODY = json.dumps({"action": "create", "email": "jane@example.com", "password": "a panel password"})
OTHER_BODY = json.dumps({"action": "delete", "email": "jane@example.com"})


def sign(timestamp: str, body: str = BODY, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def now(offset: int = 0) -> str:
    return str(int(time.time()) + offset)


def signed(offset=0, *, timestamp=None, body=BODY, secret=SECRET, signature=None, upper=False):
    """The signature headers for ``body`` signed ``offset`` seconds from now (or as overridden)."""
    timestamp = now(offset) if timestamp is None else timestamp
    signature = sign(timestamp, body, secret) if signature is None else signature
    return {"X-Sync-Timestamp": timestamp, "X-Sync-Signature": signature.upper() if upper else signature}


PLAIN = {"X-Sync-Secret": SECRET}
WRONG_PLAIN = {"X-Sync-Secret": SECRET[:-1] + "0"}

# name: (headers, status with signatures optional, status with MAIL_SYNC_REQUIRE_SIGNATURE=true)
CASES = {
    "plain secret only": (lambda: PLAIN, 200, 403),
    "no credentials": (dict, 403, 403),
    "signature only": (signed, 200, 200),
    "signature and plain secret": (lambda: {**signed(), **PLAIN}, 200, 200),
    "signature in upper-case hex": (lambda: signed(upper=True), 200, 200),
    "right signature, wrong plain secret": (lambda: {**signed(), **WRONG_PLAIN}, 403, 403),
    "wrong signature, right plain secret": (lambda: {**signed(signature="0" * 64), **PLAIN}, 403, 403),
    "signature of another body": (lambda: {**signed(body=OTHER_BODY), **PLAIN}, 403, 403),
    "signature with another secret": (lambda: {**signed(secret="x" * 32), **PLAIN}, 403, 403),
    "timestamp without signature": (lambda: {"X-Sync-Timestamp": now(), **PLAIN}, 403, 403),
    "signature without timestamp": (lambda: {"X-Sync-Signature": sign(now()), **PLAIN}, 403, 403),
    # 300 s is the window; 5 s of margin, as a loaded machine can take seconds between these two.
    "signed 295 s ago": (lambda: signed(-295), 200, 200),
    "signed 305 s ago": (lambda: signed(-305), 403, 403),
    "signed 305 s ahead": (lambda: signed(305), 403, 403),
    "timestamp with a plus sign": (lambda: signed(timestamp="+" + now()), 403, 403),
    "timestamp in milliseconds": (lambda: signed(timestamp=now() + "000"), 403, 403),
    "timestamp of 5000 digits": (lambda: signed(timestamp="9" * 5000), 403, 403),
    "non-ASCII digits in the timestamp": (lambda: signed(timestamp="١٧٠٠٠٠٠٠٠٠"), 403, 403),
    "non-ASCII signature": (lambda: signed(signature="é" * 64), 403, 403),
}


@pytest.fixture
def app_overrides(request):
    return {"MAIL_SYNC_SECRET": SECRET, "MAIL_SYNC_REQUIRE_SIGNATURE": request.param}


@pytest.mark.parametrize("app_overrides", ["false", "true"], ids=["optional", "required"], indirect=True)
@pytest.mark.parametrize("case", CASES)
def test_webhook_credentials(app, client, app_overrides, case):
    headers, optional_status, required_status = CASES[case]
    required = app_overrides["MAIL_SYNC_REQUIRE_SIGNATURE"] == "true"
    expected = required_status if required else optional_status
    before = snapshot(app)
    response = client.post(URL, data=BODY, headers=headers(), content_type="application/json")
    assert response.status_code == expected, response.text
    if expected == 403:
        assert response.json == {"error": "Unauthorized."}
        assert snapshot(app) == before
    else:
        assert response.json == {"status": "ok"}
        assert snapshot(app) != before


@pytest.mark.parametrize("secret", ["x", "a" * 31])
def test_short_secret_refuses_to_start_with_one_line(tmp_path, secret):
    with pytest.raises(ConfigError) as refused:
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, MAIL_SYNC_SECRET=secret)
    assert str(refused.value) == (
        f"MAIL_SYNC_SECRET must be at least 32 characters (got {len(secret)}):"
        " make one with `flask opmail sync-secret`."
    )


@pytest.mark.parametrize("secret", ["", "s" * 32])
def test_empty_or_long_enough_secret_starts(tmp_path, secret):
    assert make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, MAIL_SYNC_SECRET=secret)


@pytest.mark.parametrize("value", ["maybe", "2", "y es"])
def test_unclear_require_signature_refuses_to_start(tmp_path, value):
    with pytest.raises(ConfigError, match="MAIL_SYNC_REQUIRE_SIGNATURE must be true or false"):
        make_app(
            f"sqlite:///{tmp_path}/x.db", tmp_path,
            MAIL_SYNC_SECRET=SECRET, MAIL_SYNC_REQUIRE_SIGNATURE=value,
        )
