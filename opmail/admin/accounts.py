"""Admin → Accounts: the list (search, filters, sort, pages, bulk actions, CSV export and import) and
the account page."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from flask import Response, abort, flash, redirect, request, stream_with_context
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from werkzeug.datastructures import MultiDict

from ..account_csv import EXPORT_COLUMNS, MAX_BYTES, write_csv
from ..addresses import InvalidInput
from ..auth import confirm_password
from ..htmx import is_htmx, toast
from ..models import MailAccount, utcnow
from ..queries import (
    PER_PAGE,
    STATUSES,
    TWO_FACTOR_CHOICES,
    AccountFilters,
    Page,
    account_export,
    account_groups,
    account_page,
    autoresponder_page,
    domain_is_active,
    group_choices,
    has_two_factor,
)
from ..rules import accounts, forwards, groups, imports
from ..rules.core import BulkResult, MissingDomain, get_id, parse_quota
from . import uploads
from .base import (
    ENTER_ADMIN_PASSWORD,
    WRONG_PASSWORD_NOTHING_DELETED,
    DomainFilter,
    ProtectedView,
)
from .forms import (
    AccountCreateForm,
    AccountDetailsForm,
    AccountImportConfirmForm,
    AccountImportForm,
    AdminForm,
    ForwardingForm,
    PasswordResetForm,
    TwoFactorDisableForm,
)

# Plain passwords are hashed within the request (bcrypt cost 12 ≈ 0.25 s each): bigger files go
# through ``flask opmail import-accounts``, which takes account_csv.MAX_ROWS.
IMPORT_MAX_ROWS = 1_000
SELECT_FIRST = "Select at least one account first."


def _plural(count: int, noun: str = "account") -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def bulk_message(result: BulkResult, verb: str) -> str:
    """``12 accounts suspended`` plus what was skipped and why."""
    message = f"{_plural(len(result.changed))} {verb}."
    if result.skipped:
        message += f" {_plural(len(result.skipped), 'selected row')} skipped: no longer there."
    return message


class AccountsView(DomainFilter, ProtectedView, ModelView):
    """A Flask-Admin model view whose list, create and edit pages are opmail's own templates."""

    form_base_class = AdminForm
    can_delete = False  # every delete goes through the password-confirmed endpoints below
    can_view_details = False

    # --- list ------------------------------------------------------------------------------------

    def render_list(
        self, filters: AccountFilters, status: int = 200, selected: frozenset[str] = frozenset(), bulk: dict | None = None
    ):
        """The whole page, or only the table fragment for htmx (same partial either way); rows whose
        ids are in ``selected`` stay ticked and ``bulk`` refills the Bulk Actions bar (a refused bulk
        action keeps what the admin chose, to correct only what was wrong)."""
        context = {
            "selected": selected,
            "bulk": bulk or {},
            "filters": filters,
            "page": account_page(filters),
            "statuses": STATUSES,
            "two_factor_choices": TWO_FACTOR_CHOICES,
            "groups": group_choices(),
            "list_url": lambda **changes: self.get_url(".index_view", **filters.to_args(**changes)),
        }
        return self.render_list_page("opmail/admin/accounts", context, status, domains=self.domain_filter_choices)

    @expose("/")
    def index_view(self):
        return self.render_list(AccountFilters.from_args(request.args))

    # --- bulk actions (Flask-Admin's action form: `action`, `rowid`, `url`) -------------------------

    def is_action_allowed(self, name: str) -> bool:
        # Flask-Admin ties an action called "delete" to can_delete; ours re-checks the password.
        return name in self._actions_data

    def _bulk_done(self, message: str, category: str = "success"):
        """Announce the result and show the list again, in place for htmx; after a refusal (422)
        with the same rows still ticked, so the admin only corrects what was wrong."""
        return_url = request.form.get("url", "")
        filters = AccountFilters.from_args(MultiDict(parse_qsl(urlsplit(return_url).query)))
        if is_htmx():
            if category == "error":
                selected = frozenset(request.form.getlist("rowid"))
                # The password is never sent back.
                bulk = {name: request.form.get(name, "") for name in ("action", "quota_mb", "group_id")}
                return toast(self.render_list(filters, 422, selected, bulk), message, category)
            return toast(self.render_list(filters), message, category)
        flash(message, "error" if category == "error" else category)
        return redirect(self.get_url(".index_view", **filters.to_args()))

    def _bulk(self, ids, rule, verb: str, *args):
        if not ids:
            return self._bulk_done(SELECT_FIRST, "error")
        try:
            result = rule(ids, *args)
        except InvalidInput as error:
            return self._bulk_done(error.message, "error")
        return self._bulk_done(bulk_message(result, verb))

    @action("quota", "Edit Quota")
    def action_quota(self, ids):
        typed = request.form.get("quota_mb", "").strip()
        if not ids:
            return self._bulk_done(SELECT_FIRST, "error")
        if not typed:
            # Edit Quota is the dropdown's first choice: a blank must not mean "make it unlimited".
            return self._bulk_done("Enter the new quota in MB (0 = unlimited).", "error")
        try:
            quota_mb = parse_quota(typed)
        except InvalidInput as error:
            return self._bulk_done(error.message, "error")
        return self._bulk(ids, accounts.set_accounts_quota, "set to the new quota", quota_mb)

    @action("suspend", "Suspend")
    def action_suspend(self, ids):
        return self._bulk(ids, accounts.set_accounts_active, "suspended", False)

    @action("unsuspend", "Unsuspend")
    def action_unsuspend(self, ids):
        return self._bulk(ids, accounts.set_accounts_active, "unsuspended", True)

    @action("restore", "Restore")
    def action_restore(self, ids):
        return self._bulk(ids, accounts.restore_accounts, "restored")

    @action("group", "Add to group")
    def action_group(self, ids):
        return self._bulk(ids, groups.add_to_group, "added to the group", request.form.get("group_id"))

    @action("delete", "Delete")
    def action_delete(self, ids):
        typed = request.form.get("admin_password", "")
        if ids and not typed:
            return self._bulk_done(ENTER_ADMIN_PASSWORD, "error")
        if ids and not confirm_password(typed):
            return self._bulk_done(WRONG_PASSWORD_NOTHING_DELETED, "error")
        return self._bulk(ids, accounts.delete_accounts, "deleted (Maildirs are left on disk)")

    # --- CSV export and import ----------------------------------------------------------------------

    @expose("/export/")
    def export_view(self):
        """Every account the list's filters match, as CSV, streamed as it is read."""
        filters = AccountFilters.from_args(request.args)
        chunks = write_csv(EXPORT_COLUMNS, account_export(filters))
        response = Response(stream_with_context(chunks), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="accounts-{utcnow():%Y%m%d-%H%M}.csv"'
        return response

    def render_import(
        self,
        form: AccountImportForm,
        token: str | None = None,
        status: int = 200,
        check: imports.ImportCheck | None = None,
    ):
        """The upload form; with ``token``, the preview of that kept file (one page of rows);
        with a ``check`` that failed, its problems and all its rows (the file itself is gone)."""
        context = {"form": form, "token": None, "check": None, "max_rows": IMPORT_MAX_ROWS}
        if token:
            # Checked again: the database may have changed since the upload.
            check = imports.check_import(uploads.load(token) or b"", IMPORT_MAX_ROWS)
            if not check.ok:
                uploads.discard(token)
                token, status = None, 422
        if check is None:
            return self.render("opmail/admin/accounts/import.html", **context), status
        if token:
            pages = max(1, -(-len(check.rows) // PER_PAGE))
            page = min(max(1, get_id(request.args.get("page")) or 1), pages)
            rows = check.rows[(page - 1) * PER_PAGE : page * PER_PAGE]
            context.update(
                token=token,
                page=Page(rows=rows, total=len(check.rows), page=page, per_page=PER_PAGE),
                list_url=lambda page=1: self.get_url(".import_view", token=token, page=page),
                confirm=AccountImportConfirmForm(formdata=None, token=token),
            )
        else:
            # No file to page through any more: every row (at most IMPORT_MAX_ROWS) on one page.
            whole = Page(rows=check.rows, total=len(check.rows), page=1, per_page=max(1, len(check.rows)))
            context.update(page=whole, list_url=lambda page=1: self.get_url(".import_view"))
        context["check"] = check
        return self.render("opmail/admin/accounts/import.html", **context), status

    @expose("/import/", methods=("GET", "POST"))
    def import_view(self):
        """GET: the upload form, or (``?token=``) the preview. POST: check the upload; keep it for
        the confirm step only when it passed (it holds passwords), else list its problems."""
        token = request.args.get("token")
        if token and uploads.load(token) is None:
            flash("That upload has expired: upload the file again.", "error")
            return redirect(self.get_url(".import_view"))
        form = AccountImportForm()
        if form.validate_on_submit():
            # One byte past the limit is enough for the check to say the file is too large.
            data = form.file.data.stream.read(MAX_BYTES + 1)
            check = imports.check_import(data, IMPORT_MAX_ROWS)
            if not check.ok:
                return self.render_import(AccountImportForm(formdata=None), status=422, check=check)
            return redirect(self.get_url(".import_view", token=uploads.keep(data)))
        return self.render_import(form, token, 422 if form.errors else 200)

    @expose("/import/confirm/", methods=("POST",))
    def import_confirm_view(self):
        """Check the kept file again (the database may have changed) and import it, all or nothing."""
        form = AccountImportConfirmForm()
        data = uploads.load(form.token.data or "") if form.validate_on_submit() else None
        if data is None:
            flash("That upload has expired: upload the file again.", "error")
            return redirect(self.get_url(".import_view"))
        check = imports.check_import(data, IMPORT_MAX_ROWS)
        try:
            emails = imports.import_accounts(check)
        except InvalidInput as error:
            flash(error.message, "error")
            # The preview again, checked once more: a file that now fails is removed there.
            return self.render_import(AccountImportForm(formdata=None), form.token.data, 422)
        uploads.discard(form.token.data)
        flash(f"Imported {_plural(len(emails))}.", "success")
        return redirect(self.get_url(".index_view"))

    # --- create ------------------------------------------------------------------------------------

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        form = AccountCreateForm()
        missing_domain = None
        if form.validate_on_submit():
            try:
                account, restored = accounts.create_account(
                    form.email.data, form.password.data, _quota_or_default(form.quota_mb.data)
                )
            except MissingDomain as error:
                missing_domain = error.domain
                form.add_error(error)
            except InvalidInput as error:
                form.add_error(error)
            else:
                if restored:
                    flash(f"{account.email} had been deleted by the Panel: it is restored with the new password and quota.", "success")
                else:
                    flash(f"Account {account.email} created. Dovecot accepts it at the next login.", "success")
                return redirect(self.get_url(".edit_view", id=account.id))
        status = 422 if form.errors else 200
        return self.render("opmail/admin/accounts/create.html", form=form, missing_domain=missing_domain), status

    # --- the account page ------------------------------------------------------------------------

    def _account_or_404(self) -> MailAccount:
        account = accounts.get_account(request.args.get("id"))  # None for another domain's too
        if account is None:
            abort(404)
        return account

    def render_account(self, account: MailAccount, status: int = 200, **forms):
        # A form sent back after a refusal keeps the version it was opened on: until the admin
        # reloads, it still describes the account they saw.
        version = accounts.account_version(account)
        forms.setdefault(
            "details",
            AccountDetailsForm(
                formdata=None,
                display_name=account.display_name,
                quota_mb=str(account.quota_mb),
                status="active" if account.is_active else "suspended",
                version=version,
            ),
        )
        forms.setdefault("password", PasswordResetForm(formdata=None, version=version))
        forms.setdefault("two_factor", TwoFactorDisableForm(formdata=None))
        forwarding = forwards.forwarding_of(account)
        forms.setdefault(
            "forwarding",
            ForwardingForm(
                formdata=None, destinations="\n".join(forwarding.destinations), keep_copy=forwarding.keep_copy
            ),
        )
        return self.render(
            "opmail/admin/accounts/edit.html",
            account=account,
            two_factor_on=has_two_factor(account.email),
            autoresponders=autoresponder_page(email=account.email).rows,
            groups=account_groups(account.id),
            group_choices=group_choices(),
            maildir=accounts.maildir_path(account.email),
            domain_active=domain_is_active(account.domain_id),
            forwarding_now=forwarding,
            **forms,
        ), status

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        account = self._account_or_404()
        if request.method == "GET":
            return self.render_account(account)
        form = AccountDetailsForm()
        if form.validate_on_submit():
            try:
                accounts.update_account(
                    account.id,
                    display_name=form.display_name.data,
                    quota_mb=parse_quota(form.quota_mb.data),
                    is_active=form.status.data == "active",
                    expected_version=form.version.data,
                )
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash("Account saved.", "success")
                return redirect(self.get_url(".edit_view", id=account.id))
        return self.render_account(account, 422, details=form)

    @expose("/password/", methods=("POST",))
    def password_view(self):
        account = self._account_or_404()
        form = PasswordResetForm()
        if form.validate_on_submit():
            try:
                accounts.reset_password(
                    account.id,
                    form.new_password.data,
                    form.confirm_password.data,
                    expected_version=form.version.data,
                )
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"New password saved for {account.email}.", "success")
                return redirect(self.get_url(".edit_view", id=account.id))
        return self.render_account(account, 422, password=form)

    @expose("/forwarding/", methods=("POST",))
    def forwarding_view(self):
        account = self._account_or_404()
        form = ForwardingForm()
        if form.validate_on_submit():
            try:
                forwarding = forwards.set_forwarding(account.id, form.destinations.data, form.keep_copy.data)
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Forwarding of {account.email}: {forwarding}.", "success")
                return redirect(self.get_url(".edit_view", id=account.id))
        return self.render_account(account, 422, forwarding=form)

    @expose("/two-factor/", methods=("POST",))
    def two_factor_view(self):
        account = self._account_or_404()
        form = TwoFactorDisableForm()
        if form.validate_on_submit():
            accounts.disable_two_factor([account.id])
            flash(f"Two-factor authentication is off for {account.email}.", "success")
            return redirect(self.get_url(".edit_view", id=account.id))
        return self.render_account(account, 422, two_factor=form)

    @expose("/delete/", methods=("GET", "POST"))
    def delete_view(self):
        """GET: the password dialog (a fragment for htmx). POST: re-check the password, delete."""
        account = self._account_or_404()
        return self.password_confirmed_delete(
            "opmail/admin/accounts", lambda: accounts.delete_accounts([account.id]), account=account
        )

    @expose("/deleted/")
    def deleted_view(self):
        """Where a delete redirects: what went with the account (a reload posts nothing)."""
        return self.render_deleted("opmail/admin/accounts")


def _quota_or_default(typed: str | None) -> int | None:
    """Add Account's quota: empty gives the domain's default (None), else the number typed."""
    return None if not (typed or "").strip() else parse_quota(typed)
