"""Admin → Audit Log: every change an admin made (opmail.audit), newest first, read-only."""

from __future__ import annotations

import json

from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterEqual, FilterLike
from markupsafe import Markup
from sqlalchemy import literal

from ..audit import ACTIONS
from ..models import AdminEvent
from ..queries import admin_events_in_scope
from ..rules.core import get_id
from .base import ClampedPages, ProtectedView
from .format import display_target, quota_label
from .forms import AdminForm

# A bulk action can touch thousands of accounts: the list shows this many, the details page all.
SHOWN_TARGETS = 5
FIELD_LABELS = {"display_name": "Display name", "quota_mb": "Quota", "status": "Status", "deleted_at": "Deleted", "name": "Name"}


class FilterTargetIs(BaseSQLAFilter):
    """Events whose targets include exactly this one (one target per line in the column)."""

    def apply(self, query, value, alias=None):
        escaped = value.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        lines = literal("\n") + self.get_column(alias) + literal("\n")
        return query.filter(lines.like(f"%\n{escaped}\n%", escape="\\"))

    def operation(self) -> str:
        return "is"


def _value(field: str, value: object) -> str:
    if value is None:
        return "—"
    return quota_label(value) if field == "quota_mb" else str(value)


def _change(fields: dict[str, list[object]]) -> str:
    """``Quota: 100 MB → 10 MB; Status: active → suspended``."""
    return "; ".join(
        f"{FIELD_LABELS.get(field, field)}: {_value(field, old)} → {_value(field, new)}"
        for field, (old, new) in sorted(fields.items())
    )


def _targets(view, event: AdminEvent, limit: int | None) -> Markup:
    """One line per target, with its old → new when the event stored one (escaped: docs/bad-input.md)."""
    targets = event.targets.split("\n")
    changes = json.loads(event.changes) if event.changes else {}
    lines = [
        Markup("<li>{}{}</li>").format(
            display_target(target),
            Markup(' <span class="text-muted">{}</span>').format(_change(changes[target]))
            if target in changes
            else "",
        )
        for target in targets[:limit]
    ]
    if limit is not None and len(targets) > limit:
        lines.append(
            Markup('<li><a href="{}">and {:,} more</a></li>').format(
                view.get_url(".details_view", id=event.id), len(targets) - limit
            )
        )
    return Markup('<ul class="list-unstyled mb-0">{}</ul>').format(Markup("").join(lines))


class AuditLogView(ProtectedView, ClampedPages, ModelView):
    """Who changed what in the mail admin, and when. Passwords and hashes are never recorded."""

    form_base_class = AdminForm  # Flask-WTF's CSRF, like every opmail admin form
    can_create = False
    can_edit = False
    can_delete = False
    # Not even routes that refuse: a log offers no way to add, change or remove an event (404).
    create_view = edit_view = delete_view = ajax_update = None
    # The details page lists every target of a big bulk action.
    can_view_details = True
    column_list = ("occurred_at", "actor", "action", "targets")
    column_details_list = column_list
    column_labels = {"occurred_at": "When (UTC)", "actor": "Admin", "targets": "Targets (old → new)"}
    column_sortable_list = ("occurred_at", "actor", "action")
    column_filters = (
        FilterEqual(AdminEvent.actor, "Admin"),
        FilterEqual(AdminEvent.action, "Action", options=[(action, action) for action in ACTIONS]),
        FilterTargetIs(AdminEvent.targets, "Target"),
        FilterLike(AdminEvent.targets, "Target"),
    )
    # Readable, stable filter URLs (?flt0_target_is=jane@example.com): the dashboard links to them.
    named_filter_urls = True
    # MariaDB keeps whole seconds: changes within one second keep their order by id.
    column_default_sort = [("occurred_at", True), ("id", True)]
    column_formatters = {
        "occurred_at": lambda _view, _context, event, _name: event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
        "targets": lambda view, _context, event, _name: _targets(view, event, SHOWN_TARGETS),
    }
    column_formatters_detail = {
        **column_formatters,
        "targets": lambda view, _context, event, _name: _targets(view, event, None),
    }
    page_size = 50

    # Scoped in SQL: a domain admin's list, count and details page hold its domains' entries only.
    def get_query(self):
        return super().get_query().filter(admin_events_in_scope())

    def get_count_query(self):
        return super().get_count_query().filter(admin_events_in_scope())

    def get_one(self, id):
        return self.get_query().filter(AdminEvent.id == get_id(id)).one_or_none()
