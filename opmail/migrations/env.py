"""Alembic's environment for opmail's revisions.

``flask opmail init-db`` (``opmail.migrations.upgrade``) hands over its connection. The ``alembic``
command, only for writing a revision (docs/migrations.md), takes a scratch database: ``-x url=…``.
"""

from alembic import context
from sqlalchemy import Connection, create_engine

from opmail.migrations import VERSION_TABLE
from opmail.models import Base


def only_opmail_tables(name: str | None, type_: str, _parent_names: dict) -> bool:
    """Compare opmail's own tables only: a host site may keep its tables in the same database."""
    return type_ != "table" or name in Base.metadata.tables


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=only_opmail_tables,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit(
            "opmail's revisions run through `flask opmail init-db`. To write one, see "
            "docs/migrations.md (`make migration m=\"…\"`)."
        )
    engine = create_engine(url)
    with engine.begin() as connection:
        run(connection)
    engine.dispose()
    print(*context.config.attributes.get("changes", []), sep="\n")
