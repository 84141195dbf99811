"""Admin → Sync Log: every Panel webhook call opmail accepted, newest first, read-only."""

from __future__ import annotations

from flask import current_app
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import FilterEqual

from ..addresses import display_address
from ..models import SyncEvent
from ..rules.sync import SYNC_ACTIONS, SYNC_OUTCOMES
from .base import ClampedPages, ProtectedView
from .forms import AdminForm


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class SyncLogView(ProtectedView, ClampedPages, ModelView):
    """Troubleshooting the Panel agent: what it asked for, and what opmail did about it."""

    server_admin_only = True

    form_base_class = AdminForm  # Flask-WTF's CSRF, like every opmail admin form
    can_create = False
    can_edit = False
    can_delete = False
    column_list = ("received_at", "action", "email", "outcome", "remote_addr")
    column_labels = {"received_at": "Received (UTC)", "email": "Address", "remote_addr": "From"}
    column_filters = (
        FilterEqual(SyncEvent.action, "Action", options=_choices(SYNC_ACTIONS)),
        FilterEqual(SyncEvent.outcome, "Outcome", options=_choices(SYNC_OUTCOMES)),
        "email",
    )
    # Readable, stable filter URLs (?flt0_outcome_equals=noop) instead of positional numbers.
    named_filter_urls = True
    # MariaDB keeps whole seconds: calls within one second keep their order by id.
    column_default_sort = [("received_at", True), ("id", True)]
    column_formatters = {"email": lambda _view, _context, event, _name: display_address(event.email)}
    page_size = 50
    list_template = "opmail/admin/sync_log/list.html"

    def render(self, template: str, **kwargs):
        # Without a secret (standalone mode) the webhook answers 404: the page says so, and how to
        # turn it on, instead of an empty table that looks like a Panel that never called.
        kwargs.setdefault("opmail_webhook_on", bool(current_app.config.get("MAIL_SYNC_SECRET")))
        return super().render(template, **kwargs)

    def get_empty_list_message(self) -> str:
        if current_app.config.get("MAIL_SYNC_SECRET"):
            return "No calls from the Panel agent yet."
        return "No calls: the Panel webhook is off (see above)."
