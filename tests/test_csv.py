"""CSV export and import of accounts: the admin pages (test client, login, CSRF) and the CLI twin."""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from opmail.account_csv import EXPORT_COLUMNS, MAX_BYTES, read_accounts_csv, safe_cell
from opmail.admin import accounts as accounts_view
from opmail.admin import uploads
from opmail.db import get_session
from opmail.models import AdminEvent, MailAccount, MailQuotaUsage, utcnow
from opmail.passwords import hash_password, verify_password
from opmail.rules import accounts, core, imports
from tests.helpers import add_account, add_domain, rows, snapshot
from tests.test_query_counts import count_statements, fill

EXPORT = "/admin/accounts/export/"
IMPORT = "/admin/accounts/import/"
CONFIRM = "/admin/accounts/import/confirm/"
HEADER = "email,password,quota_mb,display_name,status\n"


def exported(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def upload(admin, text: str | bytes, name: str = "accounts.csv"):
    """Upload like the page's form; returns the preview page (after the redirect)."""
    data = text.encode() if isinstance(text, str) else text
    # Encoded here, in memory: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart({"csrf_token": admin.token, "file": FileStorage(io.BytesIO(data), name)})
    response = admin.client.post(IMPORT, data=body, content_type=f"multipart/form-data; boundary={boundary}")
    if response.status_code != 302:
        return response
    assert "token=" in response.location
    return admin.get(response.location)


def token_of(preview) -> str:
    match = re.search(r'name="token" type="hidden" value="([^"]+)"', preview.text)
    assert match, "no Import button on the preview"
    return match.group(1)


def problems_on(preview) -> list[tuple[str, str, str]]:
    """(row, column, message) of the preview's Problems table."""
    table = preview.text.split('id="opmail-import-problems"')[1].split("</table>")[0]
    cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    return [(row, column, html.unescape(message)) for row, column, message in cells]


def kept_uploads(app) -> list[Path]:
    """The import files waiting on the server for their confirm step."""
    folder = Path(app.instance_path) / "opmail-uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def account_rows(app) -> list[tuple]:
    return sorted(
        rows(app, sa.select(MailAccount.email, MailAccount.quota_mb, MailAccount.display_name, MailAccount.is_active))
    )


@pytest.fixture
def domains(app):
    add_domain(app, "example.com")
    add_domain(app, "other.org")


# --- export ---------------------------------------------------------------------------------------


def test_export_downloads_every_matching_account_not_only_the_page(app, admin):
    domain_id = add_domain(app)
    with app.app_context():
        db = get_session()
        db.add_all(
            MailAccount(email=f"u{i:03d}@example.com", domain_id=domain_id, password="{BLF-CRYPT}x")
            for i in range(120)
        )
        db.commit()
    response = admin.get(EXPORT)
    assert response.headers["Content-Disposition"].startswith('attachment; filename="accounts-')
    lines = exported(response)
    assert len(lines) == 120 and lines[0]["email"] == "u000@example.com" and lines[-1]["email"] == "u119@example.com"


def test_export_columns_values_and_no_password_hashes(app, admin, domains):
    add_account(app, "jane@example.com", quota_mb=2048, display_name="Jane Doe")
    bob = add_account(app, "bob@other.org")
    with app.app_context():
        db = get_session()
        db.add(MailQuotaUsage(email="jane@example.com", bytes=12345, messages=1))
        db.get(MailAccount, bob).is_active = False
        db.get(MailAccount, bob).last_synced_at = utcnow().replace(year=2026, month=1, day=2, hour=3, minute=4, second=5, microsecond=0)
        db.commit()
    response = admin.get(EXPORT)
    body = response.get_data(as_text=True)
    assert body.splitlines()[0] == ",".join(EXPORT_COLUMNS)
    assert "$2y$" not in body and "BLF-CRYPT" not in body and "password" not in body
    assert exported(response) == [
        {"email": "bob@other.org", "display_name": "", "quota_mb": "0", "status": "suspended", "used_bytes": "0", "last_sync": "2026-01-02 03:04:05"},
        {"email": "jane@example.com", "display_name": "Jane Doe", "quota_mb": "2048", "status": "active", "used_bytes": "12345", "last_sync": ""},
    ]


def test_export_applies_every_filter_of_the_list(app, admin, domains):
    alice = add_account(app, "alice@example.com")
    add_account(app, "albert@other.org")
    add_account(app, "bob@example.com")
    gone = add_account(app, "carl@example.com")
    with app.app_context():
        accounts.set_accounts_active([alice], False)
        get_session().get(MailAccount, gone).deleted_at = utcnow()
        get_session().commit()
    emails = lambda query: [line["email"] for line in exported(admin.get(EXPORT + query))]  # noqa: E731
    assert emails("") == ["albert@other.org", "alice@example.com", "bob@example.com"]
    assert emails("?q=al") == ["albert@other.org", "alice@example.com"]
    assert emails("?q=al&domain=example.com") == ["alice@example.com"]
    assert emails("?status=suspended") == ["alice@example.com"]
    assert emails("?status=deleted") == ["carl@example.com"]
    assert emails("?twofa=on") == []
    assert emails("?sort=email&dir=desc") == ["bob@example.com", "alice@example.com", "albert@other.org"]


def test_the_list_links_to_the_export_with_its_filters(admin, domains):
    page = admin.get("/admin/accounts/?q=al&status=suspended&page=2")
    assert 'href="/admin/accounts/export/?q=al&amp;status=suspended"' in page.text
    fragment = admin.get("/admin/accounts/?q=bo", htmx=True)  # a search swap brings the link along
    assert 'href="/admin/accounts/export/?q=bo"' in fragment.text


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1+2", "-3", "@SUM(A1)"])
def test_export_prefixes_formula_cells_with_a_quote(app, admin, domains, name):
    add_account(app, "f@example.com", display_name=name)
    (line,) = exported(admin.get(EXPORT))
    assert line["display_name"] == "'" + name


def test_safe_cell_leaves_ordinary_text_alone():
    assert safe_cell("Jane") == "Jane" and safe_cell(None) == "" and safe_cell(5) == "5"
    assert safe_cell("=1") == "'=1" and safe_cell("@x") == "'@x" and safe_cell("\tx") == "'\tx"


def test_export_runs_the_same_statements_for_3_and_300_accounts(app, admin):
    fill(app, 1, 3)
    with count_statements(app) as small:
        assert len(exported(admin.get(EXPORT + "?q=u"))) == 3
    fill(app, 60, 5, prefix="more")
    with count_statements(app) as large:
        assert len(exported(admin.get(EXPORT + "?q=u"))) == 303
    assert len(small) == len(large), large


def test_export_needs_a_login(client, domains):
    response = client.get(EXPORT)
    assert response.status_code == 302 and "/admin/login" in response.location


# --- import: the happy path -----------------------------------------------------------------------


def test_import_previews_then_adds_every_account_in_one_go(app, admin, domains):
    bcrypt_hash = hash_password("from-hash-1", "BLF-CRYPT", bcrypt_rounds=4)
    sha_hash = hash_password("from-hash-2", "SHA512-CRYPT")
    text = (
        HEADER
        + "Jane@Example.com,plain pass 1,1024,Jane Doe,active\n"
        + f"hashed@example.com,{bcrypt_hash},0,,\n"
        + f"sha@other.org,{sha_hash.removeprefix('{SHA512-CRYPT}')},5,\"Sha, Ltd\",Suspended\n"
    )
    preview = upload(admin, text)
    assert preview.status_code == 200
    assert "3 accounts ready to import" in preview.text and "Nothing has been written yet." in preview.text
    assert ">Import 3 accounts</button>" in preview.text
    assert "plain pass 1" not in preview.text and bcrypt_hash not in preview.text
    assert "BLF-CRYPT hash" in preview.text and "SHA512-CRYPT hash" in preview.text
    assert account_rows(app) == []  # the preview writes nothing

    done = admin.post(CONFIRM, {"token": token_of(preview)})
    assert done.status_code == 302 and done.location.endswith("/admin/accounts/")
    assert "Imported 3 accounts." in admin.get(done.location).text
    assert account_rows(app) == [
        ("hashed@example.com", 0, None, True),
        ("jane@example.com", 1024, "Jane Doe", True),
        ("sha@other.org", 5, "Sha, Ltd", False),
    ]
    stored = dict(rows(app, sa.select(MailAccount.email, MailAccount.password)))
    assert stored["hashed@example.com"] == bcrypt_hash
    assert stored["jane@example.com"].startswith("{BLF-CRYPT}$2y$04$")
    assert verify_password("plain pass 1", stored["jane@example.com"])
    assert verify_password("from-hash-1", stored["hashed@example.com"])
    assert verify_password("from-hash-2", stored["sha@other.org"]) and stored["sha@other.org"] == sha_hash
    # The kept upload is gone: the same token cannot import twice.
    again = admin.post(CONFIRM, {"token": token_of(preview)})
    assert again.status_code == 302 and "expired" in admin.get(again.location).text
    assert len(account_rows(app)) == 3


@pytest.mark.parametrize("app_overrides", [{"DOVECOT_PASSWORD_SCHEME": "SHA512-CRYPT"}])
def test_import_hashes_plain_passwords_with_the_configured_scheme(app, runner, domains, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "a@example.com,pass word 1,,,\n")
    assert runner.invoke(args=["opmail", "import-accounts", str(path)]).exit_code == 0
    (stored,) = rows(app, sa.select(MailAccount.password))[0]
    assert stored.startswith("{SHA512-CRYPT}$6$rounds=5000$") and verify_password("pass word 1", stored)


def test_import_accepts_excel_csv_with_bom_crlf_and_only_the_required_columns(app, admin, domains):
    preview = upload(admin, "\ufeffEmail,Password\r\nann@example.com,pass word 1\r\n\r\n,\r\nben@example.com,pass word 2\r\n".encode())
    assert ">Import 2 accounts</button>" in preview.text
    admin.post(CONFIRM, {"token": token_of(preview)})
    assert account_rows(app) == [("ann@example.com", 0, None, True), ("ben@example.com", 0, None, True)]


def test_import_preview_pages_its_rows_but_counts_them_all(app, admin, domains):
    text = HEADER + "".join(f"u{i:03d}@example.com,pw-{i},,,\n" for i in range(60))
    first = upload(admin, text)
    assert "60 accounts ready to import" in first.text and "page 1 of 2" in first.text
    assert first.text.count('<tr data-row="') == 50
    token = token_of(first)
    second = admin.get(f"{IMPORT}?token={token}&page=2")
    assert second.text.count('<tr data-row="') == 10 and 'data-row="61"' in second.text


def test_import_statement_count_does_not_grow_with_rows(app, admin, domains):
    counts = []
    for size, prefix in ((3, "a"), (300, "b")):
        text = HEADER + "".join(f"{prefix}{i}@example.com,{{BLF-CRYPT}}$2y$04${'a' * 53},,,\n" for i in range(size))
        with app.app_context():
            check = imports.check_import(text.encode())
            with count_statements(app) as statements:
                assert len(imports.import_accounts(check)) == size
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


def test_cli_import_adds_the_accounts_with_a_progress_bar_and_an_audit_event(app, runner, domains, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "a@example.com,pass word 1,10,A,\nb@other.org,pass word 2,,,suspended\n")
    result = runner.invoke(args=["opmail", "import-accounts", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 2 accounts." in result.output
    assert account_rows(app) == [("a@example.com", 10, "A", True), ("b@other.org", 0, None, False)]
    events = rows(app, sa.select(AdminEvent.actor, AdminEvent.action, AdminEvent.targets))
    assert events == [("cli", "account.import", "a@example.com\nb@other.org")]


def test_cli_dry_run_checks_and_writes_nothing(app, runner, domains, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "a@example.com,pass word 1,,,\n")
    before = snapshot(app)
    result = runner.invoke(args=["opmail", "import-accounts", "--dry-run", str(path)])
    assert result.exit_code == 0 and "1 account can be imported (dry run" in result.output
    assert snapshot(app) == before


# --- import: every problem, listed with its row, nothing written -----------------------------------

BAD_HASH = "$2y$12$short"
PROBLEM_CASES = [
    # (rows after the header, row, column, part of the message)
    ("jane@,pw 1,,,", "2", "email", "Enter a domain name."),
    ("not-an-address,pw 1,,,", "2", "email", "exactly one @"),
    ("jane+tag@example.com,pw 1,,,", "2", "email", "may only contain"),
    ("jane@nowhere.net,pw 1,,,", "2", "email", "nowhere.net does not exist yet"),
    ("taken@example.com,pw 1,,,", "2", "email", "taken@example.com already exists."),
    ("gone@example.com,pw 1,,,", "2", "email", "deleted by the Panel"),
    ("a@example.com,pw 1,,,\nA@EXAMPLE.COM,pw 2,,,", "3", "email", "a@example.com is also on row 2."),
    ("a@example.com,pw 1,lots,,", "2", "quota_mb", "whole number of MB"),
    ("a@example.com,pw 1,-5,,", "2", "quota_mb", "between 0 and 10,000,000"),
    ("a@example.com,pw 1,10000001,,", "2", "quota_mb", "between 0 and 10,000,000"),
    ("a@example.com,pw 1,1.5,,", "2", "quota_mb", "whole number of MB"),
    ("a@example.com,pw 1,,,disabled", "2", "status", "active or suspended"),
    ("a@example.com,,,,", "2", "password", "Enter the password"),
    ("a@example.com,   ,,,", "2", "password", "Enter a password."),
    (f"a@example.com,{BAD_HASH},,,", "2", "password", "looks like a hash"),
    ("a@example.com,{PLAIN}secret,,,", "2", "password", "looks like a hash"),
    ("a@example.com," + "x" * 73 + ",,,", "2", "password", "longer than 72 bytes"),
    ("a@example.com,pw 1,,\"" + "n" * 256 + "\",", "2", "display_name", "longer than 255"),
    ("a@example.com,pw 1,,\"two\nlines\",", "2", "display_name", "one line"),
    ("a@example.com,pw 1,,,,extra", "2", "", "Too many columns: 6 cells for 5 columns"),
    ("a@example.com,pw 1", "2", "", "Too few columns: 2 cells for 5 columns"),
    ("a@example.com,\"pw 1\"x,,,", "2", "", "cannot be read from here on"),
]


@pytest.mark.parametrize(("lines", "row", "column", "message"), PROBLEM_CASES)
def test_each_problem_is_listed_with_its_row_and_nothing_is_written(app, admin, domains, lines, row, column, message):
    add_account(app, "taken@example.com")
    gone = add_account(app, "gone@example.com")
    with app.app_context():
        get_session().get(MailAccount, gone).deleted_at = utcnow()
        get_session().commit()
    before = snapshot(app)
    preview = upload(admin, HEADER + lines + "\n")
    assert preview.status_code == 422
    assert "Nothing was written: fix the file and upload it again." in preview.text
    assert 'name="token"' not in preview.text  # no Import button
    found = problems_on(preview)
    assert any(r == row and c == column and message in m for r, c, m in found), found
    assert snapshot(app) == before
    assert kept_uploads(app) == []  # its passwords are not kept on the server


def test_every_bad_row_is_listed_at_once_beside_the_good_ones(app, admin, domains):
    text = HEADER + "good@example.com,pw 1,,,\nbad@,pw 2,,,\n\nworse@example.com,,x,,maybe\ngood2@other.org,pw 3,5,,\n"
    preview = upload(admin, text)
    assert "2 of 4 rows have problems (2 good)." in preview.text
    assert [(r, c) for r, c, _ in problems_on(preview)] == [
        ("3", "email"), ("5", "password"), ("5", "quota_mb"), ("5", "status")
    ]
    assert 'data-row="5" class="table-danger"' in preview.text and 'data-row="2" class=""' in preview.text
    assert account_rows(app) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"   \n\n", "The file is empty"),
        (HEADER.encode(), "a header but no accounts"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8"),
        (b"email,password\n\x00\x01\x02,x\n", "binary data"),
        (b"email;password\na@example.com;pw\n", "Unknown column 'email;password': separate the columns with commas."),
        (b"mail,pass\na@example.com,pw\n", "Unknown column 'mail'"),
        (b"email,password,email\na,b,c\n", "The column email appears twice."),
        (b"email,quota_mb\na@example.com,1\n", "must name the column password"),
        ("email,password,display_name\na@example.com,pw,Jos\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"a" * (MAX_BYTES + 10), "larger than 4 MiB"),
    ],
)
def test_files_that_are_no_accounts_csv_get_a_message_never_a_500(app, admin, domains, data, message):
    before = snapshot(app)
    preview = upload(admin, data)
    assert preview.status_code == 422
    assert message in html.unescape(preview.text)
    assert "Nothing was written" in preview.text and 'name="token"' not in preview.text
    assert snapshot(app) == before
    assert kept_uploads(app) == []


def test_a_file_over_the_row_limit_is_refused(app, admin, domains, monkeypatch):
    monkeypatch.setattr(accounts_view, "IMPORT_MAX_ROWS", 3)
    preview = upload(admin, HEADER + "".join(f"u{i}@example.com,pw {i},,,\n" for i in range(4)))
    assert ("5", "", "The file has more than 3 accounts: split it.") in problems_on(preview)
    assert 'name="token"' not in preview.text


def test_row_numbers_are_the_spreadsheet_rows():
    table = read_accounts_csv(b'email,password\n\na@x.org,"multi\nline"\nb@x.org,pw\n')
    assert [number for number, _ in table.records] == [3, 4]


def test_upload_without_a_file_asks_for_one(app, admin):
    response = admin.post(IMPORT, {}, content_type="multipart/form-data")
    assert response.status_code == 422 and "Choose a CSV file to upload." in response.text


def test_display_names_are_shown_escaped_in_the_preview(app, admin, domains):
    preview = upload(admin, HEADER + 'x@example.com,pw 1,,"<img src=x onerror=alert(1)>",\n')
    assert "<img src=x" not in preview.text and "&lt;img src=x onerror=alert(1)&gt;" in preview.text


# --- the confirm step trusts nothing from the client -----------------------------------------------


def test_confirm_checks_the_file_again_and_writes_nothing_when_the_database_changed(app, admin, domains):
    preview = upload(admin, HEADER + "a@example.com,pw 1,,,\nb@example.com,pw 2,,,\n")
    token = token_of(preview)
    add_account(app, "b@example.com")  # someone else adds one of them meanwhile
    before = snapshot(app)
    response = admin.post(CONFIRM, {"token": token})
    assert response.status_code == 422
    assert "The file has problems: nothing was written." in response.text
    assert ("3", "email", "The account b@example.com already exists.") in problems_on(response)
    assert snapshot(app) == before
    assert kept_uploads(app) == []  # failed its check now: removed at once
    assert admin.post(CONFIRM, {"token": token}).status_code == 302  # "expired"


def test_a_preview_that_fails_its_check_again_removes_the_upload(app, admin, domains):
    token = token_of(upload(admin, HEADER + "a@example.com,pw 1,,,\n"))
    assert len(kept_uploads(app)) == 1
    add_account(app, "a@example.com")
    preview = admin.get(f"{IMPORT}?token={token}")
    assert preview.status_code == 422
    assert ("2", "email", "The account a@example.com already exists.") in problems_on(preview)
    assert kept_uploads(app) == []


def test_an_address_added_during_the_write_rolls_back_every_chunk(app, domains):
    # 600 rows = two INSERT chunks: the clash is in the second, after the first went in.
    text = HEADER + "".join(f"u{i:03d}@example.com,{{BLF-CRYPT}}$2y$04${'a' * 53},,,\n" for i in range(600))
    with app.app_context():
        check = imports.check_import(text.encode())
    add_account(app, "u599@example.com")
    before = snapshot(app)
    with app.app_context(), pytest.raises(core.InvalidInput, match="added meanwhile: nothing was written"):
        imports.import_accounts(check)
    assert snapshot(app) == before


@pytest.mark.parametrize("token", ["", "../../secret_key", "A" * 32, "not a token"])
def test_confirm_with_an_unknown_token_writes_nothing(app, admin, domains, token):
    before = snapshot(app)
    response = admin.post(CONFIRM, {"token": token})
    assert response.status_code == 302
    assert "That upload has expired: upload the file again." in admin.get(response.location).text
    assert snapshot(app) == before


def test_preview_of_an_unknown_token_sends_back_to_the_upload(admin):
    response = admin.get(IMPORT + "?token=" + "B" * 32)
    assert response.status_code == 302 and response.location.endswith(IMPORT)


def test_an_upload_older_than_an_hour_is_removed_and_cannot_be_imported(app, admin, domains, monkeypatch):
    token = token_of(upload(admin, HEADER + "a@example.com,pw 1,,,\n"))
    monkeypatch.setattr(uploads, "KEEP_SECONDS", -1)  # every kept file is now past its time
    assert admin.get(f"{IMPORT}?token={token}").status_code == 302
    assert not list((Path(app.instance_path) / "opmail-uploads").iterdir())
    response = admin.post(CONFIRM, {"token": token})
    assert response.status_code == 302 and account_rows(app) == []


def test_the_kept_upload_is_readable_by_opmail_only(app, admin, domains):
    token = token_of(upload(admin, HEADER + "a@example.com,pw 1,,,\n"))
    path = Path(app.instance_path) / "opmail-uploads" / f"{token}.csv"
    assert path.read_bytes().startswith(b"email,password") and path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("url", [IMPORT, CONFIRM])
def test_import_posts_without_csrf_are_refused(app, admin, domains, url):
    token = token_of(upload(admin, HEADER + "a@example.com,pw 1,,,\n"))
    before = snapshot(app)
    response = admin.client.post(
        url, data={"token": token, "file": (io.BytesIO(b"email,password\nb@example.com,x\n"), "x.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert snapshot(app) == before


# --- the CLI twin ---------------------------------------------------------------------------------


def test_cli_prints_every_problem_with_its_row_and_exits_1(app, runner, domains, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "ok@example.com,pw 1,,,\nbad@,pw 2,,,\nx@example.com,,,,\n")
    before = snapshot(app)
    result = runner.invoke(args=["opmail", "import-accounts", str(path)])
    assert result.exit_code == 1
    assert "row 3, email: " in result.output and "row 4, password: Enter the password" in result.output
    assert "2 of 3 rows have problems. Nothing was written." in result.output
    assert snapshot(app) == before


def test_cli_refuses_a_binary_file(app, runner, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"\xff\xd8\xff\xe0 JFIF")
    result = runner.invoke(args=["opmail", "import-accounts", str(path)])
    assert result.exit_code == 1 and "row 1: The file is not UTF-8 text" in result.output
