"""Uploaded import files kept between the preview and the confirm step, in the instance folder.

The confirm form carries only a random token: the file itself never goes back through the browser,
so the admin imports exactly what the preview checked (and it is checked again before writing).
Files older than KEEP_SECONDS are removed at the next upload or preview, and a file is removed as
soon as it is imported.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from flask import current_app

KEEP_SECONDS = 3600
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")


def _folder() -> Path:
    """The uploads folder, emptied of expired files (they hold passwords: keep them briefly)."""
    folder = Path(current_app.instance_path) / "opmail-uploads"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cutoff = time.time() - KEEP_SECONDS
    for old in folder.glob("*.csv"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:
            pass  # another worker removed it first
    return folder


def _path(token: str) -> Path | None:
    return _folder() / f"{token}.csv" if _TOKEN_RE.fullmatch(token or "") else None


def keep(data: bytes) -> str:
    """Store ``data`` and return the token that finds it again."""
    token = secrets.token_urlsafe(24)
    path = _folder() / f"{token}.csv"
    path.touch(mode=0o600)  # the file holds passwords: readable by opmail only, from the start
    path.write_bytes(data)
    return token


def load(token: str) -> bytes | None:
    """The file kept under ``token``, or None when the token is malformed, unknown or expired."""
    path = _path(token)
    try:
        return path.read_bytes() if path is not None else None
    except FileNotFoundError:
        return None


def discard(token: str) -> None:
    path = _path(token)
    if path is not None:
        path.unlink(missing_ok=True)
