"""Admin → Autoresponders, and the autoresponder on the account page."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import sqlalchemy as sa

from opmail.models import MailAutoresponder
from tests.helpers import rows, snapshot

NEW = "/admin/autoresponders/new/"
REPLY = {"email": "jane@example.com", "subject": "Away", "body": "Back on Monday.", "starts_at": "2026-12-01", "ends_at": "2026-12-05", "is_active": "y"}


def replies(app) -> list[tuple]:
    return rows(app, sa.select(
        MailAutoresponder.email, MailAutoresponder.subject, MailAutoresponder.body,
        MailAutoresponder.starts_at, MailAutoresponder.ends_at, MailAutoresponder.is_active,
    ))


def test_create_shows_it_in_the_list_and_on_the_account_page(app, admin, jane):
    form = admin.get(NEW + "?email=jane@example.com")
    assert 'value="jane@example.com"' in form.text
    assert admin.post(NEW, {**REPLY, "email": " Jane@Example.com "}).status_code == 302
    assert replies(app) == [(
        "jane@example.com", "Away", "Back on Monday.", datetime(2026, 12, 1), datetime(2026, 12, 5, 23, 59, 59), True,
    )]
    listed = admin.get("/admin/autoresponders/").text
    assert "Autoresponder for jane@example.com saved." in listed and "2026-12-05" in listed
    page = admin.get(f"/admin/accounts/edit/?id={jane}").text
    assert "Away" in page[page.index("autoresponders-heading"):]
    assert "Add Autoresponder" not in page  # one per account


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ends_at": "2026-11-30"}, "ends_at", "The end date is before the start date."),
        ({"ends_at": "30/12/2026"}, "ends_at", "Not a valid date value."),
        ({"subject": "   "}, "subject", "Enter a subject."),
        ({"subject": "x" * 256}, "subject", "The subject must be one line of at most 255 characters."),
        ({"body": ""}, "body", "This field is required."),
        ({"email": "ghost@example.com"}, "email", "There is no account ghost@example.com."),
        ({"email": "not an address"}, "email", "must not contain spaces"),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_written(app, admin, jane, change, field, message):
    before = snapshot(app)
    response = admin.post(NEW, {**REPLY, **change})
    assert response.status_code == 422
    assert re.search(rf'id="{field}-errors"[^>]*><div>[^<]*{re.escape(message)}', response.text), response.text
    assert snapshot(app) == before


def test_a_second_autoresponder_for_the_same_account_is_refused(app, admin, jane):
    admin.post(NEW, REPLY)
    before = snapshot(app)
    response = admin.post(NEW, {**REPLY, "subject": "Other"})
    assert response.status_code == 422 and "already has an autoresponder: edit that one." in response.text
    assert snapshot(app) == before


def test_edit_and_delete(app, admin, jane):
    admin.post(NEW, REPLY)
    (reply_id,) = rows(app, sa.select(MailAutoresponder.id))[0]
    form = admin.get(f"/admin/autoresponders/edit/?id={reply_id}")
    assert 'value="2026-12-01"' in form.text and "Back on Monday." in form.text
    refused = admin.post(f"/admin/autoresponders/edit/?id={reply_id}", {**REPLY, "starts_at": "2027-01-01"})
    assert refused.status_code == 422 and "The end date is before the start date." in refused.text
    saved = admin.post(f"/admin/autoresponders/edit/?id={reply_id}", {"subject": "Out", "body": "Gone", "starts_at": "", "ends_at": ""})
    assert saved.status_code == 302
    assert replies(app) == [("jane@example.com", "Out", "Gone", None, None, False)]
    assert admin.client.post(f"/admin/autoresponders/delete/?id={reply_id}").status_code == 400
    assert admin.post(f"/admin/autoresponders/delete/?id={reply_id}", {}).status_code == 302
    assert replies(app) == []
    assert admin.get(f"/admin/autoresponders/edit/?id={reply_id}").status_code == 404


def test_html_in_subject_and_body_is_shown_escaped(app, admin, jane):
    admin.post(NEW, {**REPLY, "subject": '"><img src=x onerror=alert(1)>', "body": "<script>alert(2)</script>"})
    for url in ("/admin/autoresponders/", f"/admin/accounts/edit/?id={jane}"):
        page = admin.get(url).text
        assert "<img src=x" not in page and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    (reply_id,) = rows(app, sa.select(MailAutoresponder.id))[0]
    form = admin.get(f"/admin/autoresponders/edit/?id={reply_id}").text
    assert "<script>alert(2)" not in form and "&lt;script&gt;alert(2)&lt;/script&gt;" in form
