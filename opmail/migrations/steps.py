"""The changes a revision makes, one named step at a time.

Each step looks at the database first, does only what is missing, and reports what it did, which
``flask opmail init-db`` prints. The revisions for releases before versioning rely on the looking
(those databases may have lived through any mix of earlier ``init-db`` runs); later revisions use
the steps for the printout. For any other change, call ``op`` and then ``report`` what it did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def report(change: str) -> None:
    """Add one line to what ``init-db`` prints, e.g. "Added column admins.locked_until"."""
    op.get_context().config.attributes.setdefault("changes", []).append(change)


def dialect() -> str:
    """``sqlite`` or ``mysql`` (MariaDB, whichever URL scheme): where the revisions' DDL differs."""
    name = op.get_bind().dialect.name
    return "mysql" if name == "mariadb" else name


def _inspector() -> sa.Inspector:
    # A fresh one each time: an inspector caches what it read, and each step changes the schema.
    return sa.inspect(op.get_bind())


def has_column(table: str, column: str) -> bool:
    return any(found["name"] == column for found in _inspector().get_columns(table))


def create_table(name: str, *columns: sa.SchemaItem, **kw) -> None:
    """``op.create_table`` (with the indexes among ``columns``) unless the table exists."""
    if _inspector().has_table(name):
        return
    op.create_table(name, *columns, **kw)
    report(f"Created table {name}")


def add_column(table: str, column: sa.Column) -> None:
    """``op.add_column`` unless ``table`` has it. On SQLite, which cannot add a STORED generated
    column to a table, a stored ``Computed`` column is added as a VIRTUAL one: it reads, sorts and
    is indexed the same (computed on read instead of on write)."""
    if has_column(table, column.name):
        return
    if dialect() == "sqlite" and column.computed is not None and column.computed.persisted:
        column = sa.Column(
            column.name,
            column.type,
            sa.Computed(column.computed.sqltext, persisted=False),
            nullable=column.nullable,
        )
    op.add_column(table, column)
    report(f"Added column {table}.{column.name}")


def create_index(name: str, table: str, columns: list[str], **kw) -> None:
    """``op.create_index`` unless ``table`` has an index ``name``."""
    if any(index["name"] == name for index in _inspector().get_indexes(table)):
        return
    op.create_index(name, table, columns, **kw)
    report(f"Added index {name}")


def drop_index(name: str, table: str, why: str) -> None:
    """``op.drop_index`` when ``table`` has the index; ``why`` goes into the printed line."""
    if not any(index["name"] == name for index in _inspector().get_indexes(table)):
        return
    op.drop_index(name, table_name=table)
    report(f"Dropped index {name} ({why})")


def has_trigger(name: str) -> bool:
    if dialect() == "sqlite":
        query = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :name"
    else:
        query = (
            "SELECT 1 FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE() AND trigger_name = :name"
        )
    return op.get_bind().execute(sa.text(query), {"name": name}).first() is not None


def create_trigger(name: str, sql: str) -> bool:
    """Run ``sql`` (a CREATE TRIGGER ``name`` …) unless the trigger exists; say whether it ran."""
    if has_trigger(name):
        return False
    op.execute(sql)
    report(f"Added trigger {name}")
    return True
