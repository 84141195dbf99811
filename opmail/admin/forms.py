"""The admin's forms. Fields parse text; the rules in ``opmail.rules`` decide what is valid."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Optional

from ..addresses import InvalidInput


class AdminForm(FlaskForm):
    """Base of every admin form (also Flask-Admin's ``form_base_class``): Flask-WTF's CSRF."""

    def add_error(self, error: InvalidInput) -> None:
        """Show a rule's refusal under the field it names (or the form's first field)."""
        field = self._fields.get(error.field or "") or next(
            f for f in self if f.name != "csrf_token"
        )
        field.errors = [*field.errors, error.message]


class AccountCreateForm(AdminForm):
    email = StringField("Email address", validators=[InputRequired()], render_kw={"autocomplete": "off"})
    password = PasswordField("Password", validators=[InputRequired()], render_kw={"autocomplete": "new-password"})
    quota_mb = StringField("Quota (MB)", default="", render_kw={"inputmode": "numeric"})


class AccountImportForm(AdminForm):
    file = FileField(
        "CSV file", validators=[FileRequired("Choose a CSV file to upload.")], render_kw={"accept": ".csv,text/csv"}
    )


class AccountImportConfirmForm(AdminForm):
    # Names the uploaded file kept on the server (admin/uploads.py), never the file itself.
    token = HiddenField()


class AccountVersionForm(AdminForm):
    """A form that changes an account: it carries the account's version it was rendered from."""

    version = HiddenField()


class AccountDetailsForm(AccountVersionForm):
    display_name = StringField("Display name")
    quota_mb = StringField("Quota (MB)", render_kw={"inputmode": "numeric"})
    status = SelectField(
        "Status", choices=[SelectChoice("active", "Active"), SelectChoice("suspended", "Suspended")]
    )


class PasswordResetForm(AccountVersionForm):
    new_password = PasswordField("New Password", render_kw={"autocomplete": "new-password"})
    confirm_password = PasswordField("Confirm Password", render_kw={"autocomplete": "new-password"})


class ForwardingForm(AdminForm):
    destinations = TextAreaField("Forward to", render_kw={"rows": 2, "placeholder": "jane@elsewhere.example"})
    keep_copy = BooleanField("Keep a copy in this mailbox")


class TwoFactorDisableForm(AdminForm):
    confirm = BooleanField(
        "Yes, turn off two-factor authentication for this account",
        validators=[InputRequired("Tick the box to confirm.")],
    )


class AdminPasswordForm(AdminForm):
    admin_password = PasswordField(
        "Your admin password", validators=[InputRequired("Enter your admin password.")], render_kw={"autocomplete": "current-password"}
    )


def code_field(label: str = "Code from your authenticator app", **kwargs) -> StringField:
    """The 6-digit TOTP field; the rule checks the format (its message names what is allowed)."""
    return StringField(
        label,
        # No maxlength: it would cut a pasted "123 456" to "123 45" without a word.
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
        **kwargs,
    )


class TwoFactorCodeForm(AdminForm):
    code = code_field()


def _own_password(field_id: str) -> PasswordField:
    """The admin's own password, under an id of its own: the 2FA page has two such forms."""
    return PasswordField(
        "Your admin password",
        validators=[InputRequired("Enter your admin password.")],
        id=field_id,
        render_kw={"autocomplete": "current-password"},
    )


class TwoFactorOffForm(AdminForm):
    admin_password = _own_password("off-admin_password")


class RecoveryCodesForm(AdminForm):
    admin_password = _own_password("codes-admin_password")


class DomainForm(AdminForm):
    domain = StringField("Domain", validators=[InputRequired()], render_kw={"placeholder": "example.com"})


def _limit_field(label: str) -> StringField:
    return StringField(label, render_kw={"inputmode": "numeric", "autocomplete": "off"})


class DomainLimitsForm(AdminForm):
    """The domain's page: its limits and default quota (empty = no limit / the server default)."""

    max_accounts = _limit_field("Maximum mailboxes")
    max_aliases = _limit_field("Maximum aliases")
    total_quota_mb = _limit_field("Total quota of the domain (MB)")
    default_quota_mb = _limit_field("Default quota for new mailboxes (MB)")


class AliasDestinationsForm(AdminForm):
    destinations = TextAreaField("Destinations", validators=[InputRequired()], render_kw={"rows": 3})


class AliasForm(AliasDestinationsForm):
    alias_email = StringField(
        "Alias address", validators=[InputRequired()], render_kw={"placeholder": "sales@example.com"}
    )


class AutoresponderForm(AdminForm):
    subject = StringField("Subject", validators=[InputRequired()])
    body = TextAreaField("Reply text", validators=[InputRequired()], render_kw={"rows": 6})
    starts_at = DateField("Starts on", validators=[Optional()])
    ends_at = DateField("Ends on", validators=[Optional()])
    is_active = BooleanField("Active", default=True)


class AutoresponderCreateForm(AutoresponderForm):
    email = StringField("Account", validators=[InputRequired()], render_kw={"placeholder": "jane@example.com"})


class GroupForm(AdminForm):
    name = StringField("Name", validators=[InputRequired()])
    email = StringField("Group address", render_kw={"placeholder": "team@example.com", "autocomplete": "off"})
    description = TextAreaField("Description", render_kw={"rows": 2})


class DomainAdminForm(AdminForm):
    """Admin → Admins: a domain admin's domains and 2FA rule (name and password only when added)."""

    username = StringField("Name", render_kw={"autocomplete": "off"})
    password = PasswordField("Password", render_kw={"autocomplete": "new-password"})
    domains = StringField(
        "Domains", validators=[InputRequired()], render_kw={"placeholder": "alpha.example, beta.example"}
    )
    require_2fa = BooleanField("Require 2FA")
