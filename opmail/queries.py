"""Read-only queries behind the admin pages: one statement per figure or list, never per row."""

from __future__ import annotations

from sqlalchemy import func, select

from .db import get_session
from .models import MailAccount, MailDomain, UserTwoFactor


def dashboard_figures() -> dict[str, int]:
    """Totals for the dashboard, in one round trip."""
    live = MailAccount.deleted_at.is_(None)
    row = get_session().execute(
        select(
            select(func.count(MailDomain.id)).scalar_subquery().label("domains"),
            select(func.count(MailAccount.id)).where(live, MailAccount.is_active).scalar_subquery().label("active"),
            select(func.count(MailAccount.id)).where(live, ~MailAccount.is_active).scalar_subquery().label("suspended"),
            select(func.count(UserTwoFactor.id))
            .join(MailAccount, MailAccount.email == UserTwoFactor.email)
            .where(live, UserTwoFactor.enabled_at.is_not(None))
            .scalar_subquery()
            .label("two_factor"),
        )
    ).one()
    return row._asdict()
