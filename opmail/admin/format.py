"""Template filters for what the lists show: quota, sizes, times, addresses."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from ..addresses import display_address, display_domain

MB = 1024 * 1024


def quota_label(quota_mb: int) -> str:
    """``Unlimited`` for 0, else ``N MB`` or ``N.N GB``."""
    if not quota_mb:
        return "Unlimited"
    return f"{quota_mb} MB" if quota_mb < 1024 else f"{quota_mb / 1024:.1f} GB"


def size_label(size: int) -> str:
    """A byte count as the largest unit that keeps it readable."""
    for unit, factor in (("GB", 1024**3), ("MB", MB), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def used_percent(used_bytes: int, quota_mb: int) -> int | None:
    """Share of the quota in use, in whole percent, past 100 when over it (None when unlimited)."""
    return round(100 * used_bytes / (quota_mb * MB)) if quota_mb else None


def usage_level(percent: int | None) -> str:
    """Bootstrap colour of the usage bar: warning from 70 %, danger from 90 %."""
    if percent is None or percent < 70:
        return "success"
    return "warning" if percent < 90 else "danger"


def number(value: int) -> str:
    """A count with thousands separators (``19,000``), the one format of every page."""
    return f"{value:,}"


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def display_target(stored: str) -> str:
    """An audit log target (address, alias, domain or group name) in its readable form."""
    return display_address(stored) if "@" in stored else display_domain(stored)


def register(app: Flask) -> None:
    for function in (
        number, quota_label, size_label, used_percent, usage_level, when, display_domain, display_address, display_target
    ):
        app.add_template_filter(function, "opmail_" + function.__name__)
