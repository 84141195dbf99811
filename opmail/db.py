"""Access to the database opmail is bound to, whichever Flask-SQLAlchemy object owns it."""

from __future__ import annotations

import functools
import random
import select
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from flask import current_app
from sqlalchemy import Connection, Engine, Executable, event
from sqlalchemy.engine import Compiled
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session
from sqlalchemy.pool.base import ResetStyle

from . import migrations
from .models import BIND_KEY

# MariaDB's deadlock error. On Galera it is also the certification failure (another node committed
# a conflicting change first) and the brute-force abort of a local transaction by a replicated one.
# Either way the server rolled the whole transaction back, so running it again cannot apply it twice.
DEADLOCK = 1213
# Attempts in all for a transaction that keeps losing (then the documented 503), and the longest
# pause before the next one; each pause is random (full jitter) so that two losers do not collide
# again in step: 5, 10, 20, 40, 80 ms at most, about 0.08 s in all on average.
RETRY_ATTEMPTS = 6
RETRY_PAUSE_MAX = 0.1
# A connection that died before COMMIT was sent (server restarted, node killed) is retried once on
# a fresh connection: once, so that a hung server still answers a 503 within two timeouts
# (DATABASE_TIMEOUT). A lock wait timeout (1205) is not retried at all: it already waited its
# whole bound, and waiting again would hold the caller past its own timeout.
DISCONNECT_RETRIES = 1

_retrying: ContextVar[bool] = ContextVar("opmail_retrying", default=False)
_commit_sent: ContextVar[bool] = ContextVar("opmail_commit_sent", default=False)

P = ParamSpec("P")
R = TypeVar("R")


def get_session() -> Session:
    """The request's session (opmail's own ``db`` standalone, the host's when embedded)."""
    return current_app.extensions["opmail"].db.session


def get_engine() -> Engine:
    return current_app.extensions["opmail"].db.engines[BIND_KEY]


def retried(rule: Callable[P, R]) -> Callable[P, R]:
    """Run ``rule`` (one transaction) again after a deadlock or certification failure, up to
    ``RETRY_ATTEMPTS`` in all, and once after a connection that died before its COMMIT.

    The whole rule runs again after the rollback, its reads included, so it decides afresh on what
    the winner wrote. A connection lost during COMMIT is never retried: the change may be in. What
    still fails reaches the faces as the database error they answer with a 503. A rule called by
    another retried rule is part of that one's transaction: only the outer one retries.
    """

    @functools.wraps(rule)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if _retrying.get():
            return rule(*args, **kwargs)
        inside = _retrying.set(True)
        try:
            deadlocks = disconnects = 0
            while True:
                _commit_sent.set(False)
                try:
                    return rule(*args, **kwargs)
                except DBAPIError as error:
                    if is_deadlock(error) and deadlocks + 1 < RETRY_ATTEMPTS:
                        deadlocks += 1
                    elif error.connection_invalidated and not _commit_sent.get() and disconnects < DISCONNECT_RETRIES:
                        disconnects += 1
                    else:
                        raise
                    get_session().rollback()  # the request's session, should the rule have used it
                    pause = min(RETRY_PAUSE_MAX, 0.005 * 2 ** (deadlocks + disconnects - 1))
                    time.sleep(random.uniform(0, pause))  # noqa: S311 (jitter, not a secret)
        finally:
            _retrying.reset(inside)

    return run


def is_deadlock(error: DBAPIError) -> bool:
    """Whether MariaDB rolled the transaction back as a deadlock (or Galera's conflict)."""
    args = getattr(error.orig, "args", ())
    return bool(args) and args[0] == DEADLOCK


def _commit_sending(_connection) -> None:
    _commit_sent.set(True)


def watch_commits(engine: Engine) -> None:
    """Note when a COMMIT is sent: ``retried`` must not run a change again that may be in."""
    if not event.contains(engine, "commit", _commit_sending):
        event.listen(engine, "commit", _commit_sending)


def drop_closed_connections(engine: Engine) -> None:
    """Replace a pooled MariaDB connection the server has closed, before it is used; and skip the
    pool's ROLLBACK on return after a transaction that already ended.

    Instead of ``pool_pre_ping``, which costs a round trip per checkout: a restarted or killed
    server closes its sockets, so an idle connection it dropped is readable (end of file). Polling
    the socket costs one system call. A server that vanished without closing anything (a network
    cut) is found by the first statement instead: SQLAlchemy then discards every connection made
    before that moment, and ``retried`` runs a write again once on a fresh one.

    ``engine_options`` turns the pool's own reset off on MariaDB (``pool_reset_on_return=None``):
    it rolls back every returned connection, a second round trip after each COMMIT. The reset
    here rolls back only a connection whose last transaction did not end by COMMIT or ROLLBACK.
    """
    if engine.dialect.name != "mysql" or event.contains(engine, "checkout", _refuse_closed):
        return
    event.listen(engine, "checkout", _refuse_closed)
    if engine.pool._reset_on_return is ResetStyle.reset_none:  # as engine_options sets it
        event.listen(engine, "begin", _transaction_open)
        event.listen(engine, "commit", _transaction_ended)
        event.listen(engine, "rollback", _transaction_ended)
        event.listen(engine, "handle_error", _transaction_unknown)
        event.listen(engine.pool, "reset", _reset)


# On a pooled connection's record: its last transaction ended by COMMIT or ROLLBACK (sent, and
# no error since), so nothing is left to roll back when it goes back to the pool.
_ENDED = "opmail_transaction_ended"


def _refuse_closed(dbapi_connection, record, _proxy) -> None:
    record.info[_ENDED] = False  # a raw DB-API user sends no events: roll back after it
    sock = getattr(dbapi_connection, "_sock", False)  # PyMySQL's socket; other drivers go unchecked
    if sock is False:
        return
    if sock is None:
        raise DisconnectionError("the connection was closed")
    poll = select.poll()
    poll.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poll.poll(0):  # an idle connection has nothing to read unless the server hung up
        raise DisconnectionError("the server closed the connection")


def _mark(connection, ended: bool) -> None:
    # An invalidated connection has no record to mark (asking for it would reconnect): the pool
    # discards it anyway.
    if connection is not None and not connection.invalidated:
        connection.info[_ENDED] = ended


def _transaction_open(connection) -> None:
    _mark(connection, False)


def _transaction_ended(connection) -> None:
    _mark(connection, True)


def _transaction_unknown(context) -> None:
    if not context.is_disconnect:
        _mark(context.connection, False)


def _reset(dbapi_connection, record, state) -> None:
    if record.info.pop(_ENDED, False) or state.transaction_was_reset or state.terminate_only:
        return
    dbapi_connection.rollback()


# PyMySQL's CLIENT.MULTI_STATEMENTS: the connection runs several statements sent as one query
# (opmail.config.mysql_client_flags asks for it; a host's own engine may not).
_MULTI_STATEMENTS = 1 << 16

Step = tuple[Executable, Mapping[str, Any]]


def read_row(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first row of ``statement`` by column name: one round trip, on the driver where
    ``write_and_commit`` batches, so that SQLAlchemy has begun no transaction of its own."""
    if not _batches(connection):
        row = connection.execute(statement, params).first()
        return None if row is None else row._mapping
    return _on_driver(connection, [(statement, params)], commit=False)[1]


def write_and_commit(connection: Connection, steps: Sequence[Step]) -> list[int]:
    """Run the statements in order, then COMMIT; each one's row count.

    On a MariaDB connection with multi-statements, and no transaction SQLAlchemy has begun, the
    statements and the COMMIT go as one query: one round trip instead of one each, most of what a
    webhook call costs (bench/README.md). The server stops at the first statement that fails, so
    the COMMIT never runs after a failure. Elsewhere (SQLite, a host's engine without the flag)
    they run one by one.
    """
    if not _batches(connection) or connection.in_transaction():
        counts = [connection.execute(statement, params).rowcount for statement, params in steps]
        connection.commit()
        return counts
    counts = _on_driver(connection, steps, commit=True)[0]
    connection.connection.info[_ENDED] = True  # committed: nothing to roll back on return
    return counts[: len(steps)]


def _batches(connection: Connection) -> bool:
    return bool(getattr(connection.connection.dbapi_connection, "client_flag", 0) & _MULTI_STATEMENTS)


# Compiled once per statement and set of parameters: compiling costs more than running one. The
# statements are the webhook's, built once at import, so this holds a handful.
_compiled: dict[tuple, Compiled] = {}


def _for_driver(dialect, statement: Executable, params: Mapping[str, Any]) -> tuple[str, Any]:
    """The statement's SQL in the driver's parameter style, and its values."""
    key = (statement, tuple(params), dialect)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(params))
        # SQLAlchemy fills a column's Python default in at execution; nothing does here.
        unfilled = [name for name, bind in compiled.binds.items() if name not in params and bind.value is None]
        if unfilled:
            raise ValueError(f"No value for {', '.join(unfilled)}: give every column a value.")
        _compiled[key] = compiled
    values = compiled.construct_params(params)
    if compiled.positional:
        return compiled.string, [values[name] for name in compiled.positiontup]
    return compiled.string, values


def _on_driver(
    connection: Connection, steps: Sequence[Step], *, commit: bool
) -> tuple[list[int], dict[str, Any] | None]:
    """Send the statements (and COMMIT) as one query on the DB-API connection and read every
    answer: each statement's row count, and the first row of the first one by column name.

    The values are escaped by PyMySQL, as for any statement it sends. SQLAlchemy's cursor events
    see each statement as if it were sent alone (statement counters, and the tests that make one
    fail). A driver error is raised as SQLAlchemy's, which ``retried`` and the 503 handlers read,
    and a lost connection is invalidated.
    """
    dialect = connection.dialect
    dbapi_connection = connection.connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    parts = [_for_driver(dialect, statement, params) for statement, params in steps]
    if commit:
        parts.append(("COMMIT", None))
    # Dispatching to no listener costs as much as escaping the values: only when there are some.
    announce = bool(connection.dispatch.before_cursor_execute or connection.dispatch.after_cursor_execute)
    try:
        texts = []
        for sql, values in parts:
            if sql == "COMMIT":
                _commit_sent.set(True)  # from here on the change may be in: never run it again
            if announce:
                connection.dispatch.before_cursor_execute(connection, cursor, sql, values, None, False)
            texts.append(sql if values is None else cursor.mogrify(sql, values))
        cursor.execute(";\n".join(texts))
        counts = [cursor.rowcount]
        first = cursor.fetchone() if cursor.description else None
        if first is not None:
            first = dict(zip((column[0] for column in cursor.description), first, strict=True))
        # The later statements' answers, and the error of one that failed, come as the cursor
        # moves to them.
        while cursor.nextset():
            counts.append(cursor.rowcount)
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:
            connection.invalidate(error)
        # The statements without their values: a password hash never reaches the log.
        templates = ";\n".join(sql for sql, _values in parts)
        raise DBAPIError.instance(
            templates, None, error, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from error
    for sql, values in parts if announce else ():
        connection.dispatch.after_cursor_execute(connection, cursor, sql, values, None, False)
    return counts, first


def create_schema() -> list[str]:
    """Create the opmail tables, or bring an older opmail's to the newest revision.

    Safe to run again: a database already up to date is left alone. Returns what it changed, in
    the order it changed it (opmail.migrations).
    """
    with get_engine().begin() as connection:
        return migrations.upgrade(connection)


def enforce_sqlite_foreign_keys(engine: Engine) -> None:
    """SQLite ignores foreign keys unless each connection asks for them."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
