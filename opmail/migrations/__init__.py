"""opmail's versioned schema: Alembic revisions under ``versions/``, run by ``flask opmail init-db``.

opmail keeps its own version table, so a host site's Alembic (and its ``alembic_version``) never
meets opmail's revisions. How to add one: docs/migrations.md.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from ..models import Base

VERSION_TABLE = "opmail_alembic_version"
SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(connection: Connection) -> Config:
    """Alembic's settings for running opmail's revisions on ``connection`` (see env.py)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    config.attributes["changes"] = []
    return config


class UnknownRevision(RuntimeError):
    """The database is at a revision this opmail does not have: a newer opmail upgraded it."""


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions, read once per process."""
    return ScriptDirectory(str(SCRIPT_LOCATION))


def upgrade(connection: Connection) -> list[str]:
    """Bring opmail's tables on ``connection`` to the newest revision; return each change, in order.

    Without any opmail table the models make the tables whole at once (what the revisions would
    make, only faster), and the database is marked as being at the newest revision. With opmail
    tables but no version table, a release from before versioning made them: every revision runs,
    and the early ones (written for exactly that) add only what that release lacked.
    """
    tables = set(inspect(connection).get_table_names())
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    if VERSION_TABLE not in tables and not tables & set(Base.metadata.tables):
        Base.metadata.create_all(connection)
        context.stamp(script_directory(), "head")
        return [f"Created table {table.name}" for table in Base.metadata.sorted_tables]
    current = set(context.get_current_heads())
    if current == set(script_directory().get_heads()):
        return []
    known = {script.revision for script in script_directory().walk_revisions()}
    if current - known:
        raise UnknownRevision(
            f"The database is at revision {', '.join(sorted(current - known))}, which this opmail "
            "does not have: a newer opmail upgraded it. Install that release or a later one."
        )
    config = alembic_config(connection)
    command.upgrade(config, "head")
    return config.attributes["changes"]
