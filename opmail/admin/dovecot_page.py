"""Admin → Dovecot: the config that points Dovecot and Postfix at this database, ready to copy."""

from __future__ import annotations

from flask_admin import BaseView, expose

from .. import dovecot
from .base import ProtectedView


class DovecotView(ProtectedView, BaseView):
    server_admin_only = True
    """What ``flask opmail mail-config`` prints, except the database password."""

    @expose("/")
    def index(self):
        files, error = {}, None
        try:
            # A page leaks more easily than a terminal (screenshots, shared screens): no password.
            files = dovecot.config_files(dovecot.app_settings(hide_password=True))
        except dovecot.DovecotConfigError as problem:
            error = str(problem)
        return self.render(
            "opmail/admin/dovecot.html",
            files=files,
            error=error,
            conf_dir=dovecot.CONF_DIR,
            hidden_password=dovecot.HIDDEN_PASSWORD,
            password_hidden=any(dovecot.HIDDEN_PASSWORD in text for text in files.values()),
        )
