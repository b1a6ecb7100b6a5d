"""Prepared statements for the statements every audited read sends (issue #18).

Django sends each query as text with its values inlined (psycopg's client-side binding), so PostgreSQL parses
and plans the gate's facts query, the audit INSERT and the by-id read again on every request, and Django compiles
the ORM query again in Python. The hot statements go through ``prepared_cursor()`` instead: server-side binding
and a named prepared statement per connection (psycopg prepares it on first use), still logged, counted and
error-wrapped by Django like any other query. ``ByIdReader`` compiles a by-id ``SELECT`` once per model and
builds the instance with the fields' own converters (decryption included), as the ORM would.

Behind PgBouncer in transaction mode a named prepared statement may not exist on the next server connection:
``DPI_DB_DISABLE_SERVER_SIDE_CURSORS=1`` (the setting docs/deployment.md asks for there) turns them off too, and
these statements then go through Django's ordinary cursor.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import select
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from django.db import DatabaseError, connections
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.models import signals
from django.db.models.base import ModelState
from psycopg import generators, pq
from psycopg.adapt import PyFormat, Transformer

_EXPLICIT_ONLY = 1_000_000_000


class _PreparedCursor(ServerBindingCursor):
    def execute(self, query, params=None, *, prepare=None, binary=None):  # type: ignore[override]
        return super().execute(query, params, prepare=True, binary=binary)

    def _convert_query(self, query, params=None):
        pgq = super()._convert_query(query, params)
        # psycopg keeps the query only when it sends its text; Django logs (and tests count) what is kept here.
        self._query = pgq
        return pgq


def prepared_cursor(alias: str = "default"):
    """A Django cursor (logged, errors wrapped) whose statements are prepared on this connection."""
    conn = connections[alias]
    if conn.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        return conn.cursor()  # behind a transaction pooler: nothing kept on the server connection
    conn.ensure_connection()
    if conn.connection.prepare_threshold is None:
        # Django turns psycopg's prepared statements off (prepare_threshold=None, for connection poolers), and
        # then psycopg ignores prepare=True too: allow them, for the statements sent here only (others would
        # need a billion executions).
        conn.connection.prepare_threshold = _EXPLICIT_ONLY
    with conn.wrap_database_errors:
        raw = _PreparedCursor(conn.connection)
    return conn._prepare_cursor(raw)  # Django's own wrapping: query logging and error translation


class ByIdReader:
    """``Model.objects.filter(pk=...).first()`` without compiling the query on every call."""

    def __init__(self, model: Any):
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self._sql: str | None = None
        self._converters: list[tuple[int, Any]] | None = None

    def _compile(self, alias: str) -> None:
        conn = connections[alias]
        query = self.model._default_manager.using(alias).filter(pk=0).query
        compiler = query.get_compiler(using=alias)
        sql, _ = compiler.as_sql()
        # One table: its columns need no qualifying (shorter text, so that the statements it goes into stay
        # within psycopg's cache of converted queries, 4 kB).
        sql = sql.replace(f'{conn.ops.quote_name(self.model._meta.db_table)}.', "")
        # The one parameter is the id: server-side binding wants $1-style placeholders, psycopg maps %s to them.
        self._sql = sql
        self._columns = [f.attname for f in self.fields]
        self._converters = [
            (i, [*conn.ops.get_db_converters(f.get_col(query.get_meta().db_table)),
                 *f.get_db_converters(conn)])
            for i, f in enumerate(self.fields)
        ]
        self._converters = [(i, c) for i, c in self._converters if c]

    def get(self, pk: int, alias: str = "default") -> Any | None:
        if self._sql is None:
            self._compile(alias)
        with prepared_cursor(alias) as cur:
            cur.execute(self._sql, [pk])
            row = cur.fetchone()
        return None if row is None else self._instance(row, alias)

    def select_sql(self, param: str, alias: str = "default") -> str:
        """The by-id ``SELECT`` with its id as the named parameter ``param``, for a caller's larger statement
        (read its columns back with ``instance``)."""
        if self._sql is None:
            self._compile(alias)
        assert self._sql is not None and self._sql.count("%s") == 1 and "%%" not in self._sql
        return self._sql.replace("%s", f"%({param})s")

    def instance(self, row: Any, alias: str = "default") -> Any:
        """The model instance of a row of ``select_sql``'s columns."""
        return self._instance(row, alias)

    def _instance(self, row: Any, alias: str) -> Any:
        conn = connections[alias]
        values = list(row)
        col = self.fields
        for i, converters in self._converters:
            for convert in converters:
                values[i] = convert(values[i], col[i].get_col(self.model._meta.db_table), conn)
        model = self.model
        if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
            return model.from_db(alias, self._columns, values)
        # What ``from_db`` builds, without ``Model.__init__``'s per-field ``setattr`` (a third of the row's CPU,
        # issue #18): every column is a concrete field, none deferred, and with no init signal to send
        # ``__init__`` would only store each value under its attname.
        obj = model.__new__(model)
        obj._state = ModelState()
        obj._state.adding = False
        obj._state.db = alias
        obj.__dict__.update(zip(self._columns, values, strict=True))
        return obj


# --- a transaction sent ahead of its answers (libpq pipeline mode) ---------------------------------------------
_PLACEHOLDER = re.compile(r"%(?:(%)|\((\w+)\)s|(.))", re.DOTALL)


@functools.cache
def _numbered(sql: str) -> tuple[bytes, tuple[str, ...], bytes]:
    """``sql`` with psycopg's named placeholders (``%(name)s``, ``%%`` for a percent sign) as the protocol's
    ``$n``, the parameters' names in that order, and the name the statement is prepared under on a connection."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        percent, name, other = match.groups()
        if percent:
            return "%"
        if other is not None or name is None:
            raise ValueError(f"only named placeholders are supported here: {match.group(0)!r}")
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _PLACEHOLDER.sub(number, sql)
    return text.encode(), tuple(names), b"dpi_p_" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest().encode()


class _Session:
    """What a pipelined transaction keeps per server connection: its dumpers and loaders, and the statements
    already prepared there."""

    def __init__(self, raw: Any) -> None:
        self.transformer = Transformer(raw)
        # (statement, its parameters' types) -> the name it is prepared under. The types are part of the key, as
        # in psycopg's own cache: an int is sent as int2, int4 or int8 by its value, and a statement prepared for
        # int2 cannot take an int4 (patient ids grow past 32,767).
        self.prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.numbers = itertools.count()


_sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()


def _alive(raw: Any) -> bool:
    """False when the server has dropped a kept connection (restart, failover, an idle timeout): it wrote its
    last message and closed the socket, which is then readable while nothing was asked. Costs no round trip."""
    pgconn = raw.pgconn
    if raw.closed or raw.broken or pgconn.status != pq.ConnStatus.OK:
        return False
    try:
        if not select.select([pgconn.socket], [], [], 0)[0]:
            return True
        pgconn.consume_input()  # a notice, or the end of the connection
    except (OSError, psycopg.Error):
        return False
    return pgconn.status == pq.ConnStatus.OK and not pgconn.is_busy()


class PipelinedTransaction:
    """One transaction on a connection in libpq's pipeline mode: its statements and its COMMIT go out without
    waiting for each other's answers; ``fetch_one`` waits only for its statement's row, ``commit`` sends the
    COMMIT without waiting, ``confirm`` waits for it and raises unless it committed.

    The transaction is the extended query protocol's implicit one: no BEGIN, no COMMIT statement. The
    statements sent before a Sync run in one transaction, which PostgreSQL commits when it reaches the Sync
    (reporting a failed COMMIT before the Sync's answer) or rolls back at the first error; so ``commit`` is the
    Sync alone. That spares the server two statements and the client two answers per transaction.

    The statements are prepared once per connection (named parameters, psycopg's adapters: the values and rows
    are those a cursor gives), logged like Django's queries, errors raised as Django's. psycopg's own
    ``Connection.pipeline()`` would do the preparing, but it sends a Sync and waits for every answer when it
    ends, which is the wait this class exists to move; so the pipeline is driven here, on psycopg's public
    libpq wrapper and adapters. A connection the server dropped since its last use is replaced before anything
    is sent; one left in a transaction by someone else is rolled back first, never written into. Whatever goes
    wrong once a statement is sent, the connection is closed (Django opens a new one on the next use) rather
    than left in an unknown state.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._conn = connections[alias]  # this thread's Django connection (a transaction lives in one thread)
        self._raw: Any = None
        self._session: _Session | None = None
        self._awaited: list[tuple[bytes, Any]] = []  # answers not read yet: (command, key of a PREPARE)
        self._committing = False
        self._lost = False  # a transaction was abandoned: ``confirm`` raises
        self._lost_connection = False  # ... because the server had dropped the connection

    def _begin(self) -> Any:
        conn = self._conn
        conn.ensure_connection()
        if not _alive(conn.connection):
            conn.close()
            conn.ensure_connection()
        raw = conn.connection
        with conn.wrap_database_errors:
            if raw.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                raw.execute("ROLLBACK")  # left open by something else
            raw.pgconn.enter_pipeline_mode()
        self._raw = raw
        self._session = _sessions.get(raw)
        if self._session is None:
            self._session = _sessions[raw] = _Session(raw)
        # No BEGIN: the statements up to the Sync are one implicit transaction (the extended query protocol's),
        # which PostgreSQL commits when it reaches the Sync, or rolls back on the first error.
        return raw

    def fetch_one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run ``sql`` (named placeholders) in the transaction and return its first row."""
        first = self._raw is None
        try:
            return self._fetch_one(sql, params)
        except DatabaseError:
            if not (first and self._lost_connection):
                raise
            # The server dropped the kept connection before this transaction's first statement reached it
            # (nothing of it can have been committed, and nothing else was in it): again, on a new one.
            self._lost = False
            return self._fetch_one(sql, params)

    @contextmanager
    def _or_abandon(self) -> Iterator[Any]:
        """Errors raised as Django's; on any failure the connection is dropped (``_abandon``)."""
        conn = self._conn
        try:
            with conn.wrap_database_errors:
                yield conn
        except BaseException:
            self._abandon()
            raise

    def _fetch_one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._or_abandon() as conn:
            started = time.monotonic() if conn.queries_logged else 0.0
            raw = self._raw or self._begin()
            session = self._session
            text, names, base = _numbered(sql)
            tx = session.transformer
            values = tx.dump_sequence([params[n] for n in names], [PyFormat.AUTO] * len(names))
            pgconn = raw.pgconn
            if conn.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):  # a transaction pooler: nothing kept
                pgconn.send_query_params(text, values, param_types=tx.types, param_formats=tx.formats)
            else:
                key = (base, tuple(tx.types))
                name = session.prepared.get(key)
                if name is None:
                    name = session.prepared[key] = b"%s_%d" % (base, next(session.numbers))
                    pgconn.send_prepare(name, text, param_types=key[1])
                    self._awaited.append((b"PREPARE", key))
                pgconn.send_query_prepared(name, values, param_formats=tx.formats)
            self._awaited.append((b"", None))
            pgconn.send_flush_request()  # the answer now, not at the COMMIT's Sync
            raw.wait(generators.send(pgconn))
            result = self._read_answers()
        if conn.queries_logged:
            conn.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
        tx.set_pgresult(result)
        return tx.load_row(0, tuple) if result.ntuples else None

    def _read_answers(self) -> Any:
        """Read every awaited answer; returns the last one, raises the first error."""
        raw, error, last = self._raw, None, None
        while self._awaited:
            command, key = self._awaited.pop(0)
            results = raw.wait(generators.fetch_many(raw.pgconn))
            for result in results:
                last = result
                if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
                    if key is not None:
                        self._session.prepared.pop(key, None)
                    if error is None:
                        error = self._error(command, result)
        if error is not None:
            raise error
        return last

    def _error(self, command: bytes, result: Any) -> Exception:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            return psycopg.errors.error_from_result(result, encoding=self._raw.info.encoding)
        what = (command or b"statement").decode()
        status = (result.command_status or b"").decode() or pq.ExecStatus(result.status).name
        return psycopg.OperationalError(f"the pipelined {what} failed: {status}")

    def commit(self) -> None:
        """Send the COMMIT (the Sync that ends the implicit transaction) without waiting for it."""
        if self._raw is None or self._committing:
            return
        with self._or_abandon():
            self._raw.pgconn.pipeline_sync()
            self._raw.wait(generators.send(self._raw.pgconn))
        self._committing = True

    def confirm(self) -> None:
        """Wait for the COMMIT sent by ``commit``; raises ``DatabaseError`` unless the transaction committed
        (also when it was abandoned on an error its caller chose to ignore)."""
        if self._lost:
            self._lost = False
            raise DatabaseError("the pipelined transaction failed before its COMMIT: nothing of it was committed")
        if self._raw is None:
            return
        if not self._committing:
            self.commit()
        raw = self._raw
        try:
            with self._or_abandon():
                self._read_answers()
                # The Sync's answer; before it, the COMMIT's error if the transaction did not commit (a deferred
                # check, the disk), then the end of that result.
                sync = raw.wait(generators.fetch(raw.pgconn))
                if sync is not None and sync.status == pq.ExecStatus.FATAL_ERROR:
                    raise self._error(b"COMMIT", sync)
                if sync is None or sync.status != pq.ExecStatus.PIPELINE_SYNC:
                    raise psycopg.OperationalError("the pipelined transaction's Sync was not answered")
                raw.pgconn.exit_pipeline_mode()
        except BaseException:
            self._lost = False  # told now
            raise
        self._raw, self._session, self._committing = None, None, False

    def _abandon(self) -> None:
        """Drop the connection: whatever was sent and not read is lost with it, nothing of it committed unless
        its COMMIT was answered (which ``confirm`` reads before anything else)."""
        raw = self._raw if self._raw is not None else self._conn.connection
        self._lost_connection = raw is None or raw.closed or raw.broken or raw.pgconn.status != pq.ConnStatus.OK
        self._raw, self._session, self._awaited, self._committing, self._lost = None, None, [], False, True
        self._conn.close()
