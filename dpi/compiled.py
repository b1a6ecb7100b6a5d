"""ORM queries compiled once per worker, for the reads every chart page repeats (issue #18).

Compiling a queryset to SQL (joins of ``select_related``, the column list, ordering) cost more CPU than running
it: about 0.7 ms of the 1.4 ms each of the chart's seven sections took. ``CompiledQuery`` compiles the
queryset that ``build(value)`` returns once, with a marker value in place of the parameter (a patient id), and
then only sends that SQL with the real value, as a statement prepared on the connection
(``dpi.prepared.prepared_cursor``, so PostgreSQL does not plan it again either), and builds the instances the
way Django's own ``ModelIterable`` does: the same column converters (decryption included), the same
``from_db`` (deferred fields stay deferred), the same populators for ``select_related``. What a caller gets is
what ``list(build(value))`` would give, one statement, without the compilation.

Only querysets of model instances whose parameters are fixed but for the one value: no ``prefetch_related``
(it would be silently skipped), no annotations or ``extra``, no related-manager querysets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import ModelIterable, get_related_populators

from dpi.prepared import prepared_cursor

# A value no row has, looked for among the compiled parameters and replaced by the real one at each call.
MARKER = -7_265_341_823_001


class _Compiled:
    def __init__(self, queryset: QuerySet, alias: str):
        if queryset._iterable_class is not ModelIterable or queryset._prefetch_related_lookups:
            raise ValueError("CompiledQuery runs plain model querysets only (no values(), no prefetch_related)")
        if queryset._known_related_objects or queryset.query.annotation_select or queryset.query.extra_select:
            raise ValueError("CompiledQuery does not handle annotations, extra() or related managers")
        self.connection = connections[alias]
        compiler = queryset.query.get_compiler(using=alias)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.slots = [i for i, p in enumerate(self.params) if type(p) is int and p == MARKER]
        if not self.slots:
            raise ValueError("the marker value is not a parameter of the compiled query")
        select, klass_info = compiler.select, compiler.klass_info
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in select[self.start:self.end]]
        self.populators = get_related_populators(klass_info, select, alias)
        self.col_count = compiler.col_count if compiler.has_extra_select else None
        self.converters = list(compiler.get_converters([s[0] for s in select[0:compiler.col_count]]).items())


class CompiledQuery:
    """``list(build(value))``, compiled once per worker thread and database alias."""

    def __init__(self, build: Callable[[Any], QuerySet]):
        self.build = build
        self._local = threading.local()

    def _compiled(self, alias: str) -> _Compiled:
        compiled = getattr(self._local, alias, None)
        if compiled is None or compiled.connection is not connections[alias]:
            compiled = _Compiled(self.build(MARKER), alias)
            setattr(self._local, alias, compiled)
        return compiled

    def sql(self, alias: str = "default") -> str:
        return self._compiled(alias).sql

    def __call__(self, value: Any, alias: str = "default") -> list:
        c = self._compiled(alias)
        params = list(c.params)
        for i in c.slots:
            params[i] = value
        with prepared_cursor(alias) as cursor:
            cursor.execute(c.sql, params)
            rows = cursor.fetchall()
        connection, objects = c.connection, []
        for row in rows:
            row = list(row[: c.col_count] if c.col_count is not None else row)
            for pos, (convs, expression) in c.converters:
                value_ = row[pos]
                for convert in convs:
                    value_ = convert(value_, expression, connection)
                row[pos] = value_
            obj = c.model.from_db(alias, c.init_list, row[c.start:c.end])
            for populator in c.populators:
                populator.populate(row, obj)
            objects.append(obj)
        return objects
