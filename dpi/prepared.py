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

from typing import Any

from django.db import connections
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.models import signals
from django.db.models.base import ModelState

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
