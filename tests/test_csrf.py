"""Every state-changing admin endpoint refuses a request without a valid CSRF token."""

from __future__ import annotations

import pytest
from flask import url_for

from tests.helpers import add_account, add_domain, snapshot


def post_endpoints(app) -> list[str]:
    """Enumerated from the URL map, so a new endpoint without CSRF fails this test."""
    urls = set()
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "POST" in rule.methods and not rule.rule.startswith("/api/"):
                urls.add(url_for(rule.endpoint, **dict.fromkeys(rule.arguments, 1)))
    return sorted(urls)


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_post_without_valid_csrf_is_400_and_writes_nothing(app, admin, token):
    domain = add_domain(app)
    account = add_account(app, "jane@example.com")
    before = snapshot(app)
    urls = post_endpoints(app)
    assert "/admin/accounts/action/" in urls and "/admin/logout" in urls
    for endpoint in urls:
        url = endpoint.replace("id=1", f"id={account}") if "accounts" in endpoint else endpoint.replace("id=1", f"id={domain}")
        form = {"action": "delete", "rowid": str(account), "admin_password": "x", "domain": "new.org"}
        headers = {"HX-Request": "true"}
        if token:
            form["csrf_token"] = token
            headers["X-CSRFToken"] = token
        response = admin.client.post(url, data=form, headers=headers)
        assert response.status_code == 400, url
    assert snapshot(app) == before
