"""Admin home: the figures an admin checks first."""

from __future__ import annotations

from flask_admin import AdminIndexView, expose

from ..queries import dashboard_figures, recent_admin_events, recent_syncs
from ..scope import current_scope
from .base import ProtectedView


class DashboardView(ProtectedView, AdminIndexView):
    @expose("/")
    def index(self):
        return self.render(
            "opmail/admin/dashboard.html",
            figures=dashboard_figures(),
            # The Panel's calls are the server's business (the Sync Log is a server admin's page).
            recent_syncs=None if current_scope().limited else recent_syncs(),
            admin_events=recent_admin_events(),
        )
