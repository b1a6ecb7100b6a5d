"""``dpi.prepared.PipelinedTransaction``, what the chart page's access trace runs on (issue #18): the values and
rows are those a Django cursor gives, a statement prepared for small integers still takes large ones, and what
the transaction wrote is committed only when its COMMIT is confirmed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, connections
from django.test.utils import CaptureQueriesContext

from dpi.prepared import PipelinedTransaction

pytestmark = pytest.mark.django_db(transaction=True)

_ECHO = "SELECT %(n)s::bigint + 0 AS n, %(t)s::timestamptz AS t, %(d)s::numeric AS d, %(s)s::text AS s, '100%%' AS p"


def _committed(tx: PipelinedTransaction) -> None:
    tx.commit()
    tx.confirm()


def _count(cur, sql: str) -> int:
    cur.execute(sql)
    return cur.fetchone()[0]


def _cursor_row(params):
    with connection.cursor() as cur:
        cur.execute(_ECHO, params)
        return cur.fetchone()


@pytest.mark.parametrize("n", [7, 40_000, 3_000_000_000, -5, None])
def test_the_same_statement_takes_every_integer_size_and_gives_what_a_cursor_gives(n):
    tx = PipelinedTransaction("audit")
    when = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
    rows = []
    # The statement is prepared on the first call (a small integer), then sent again with this one.
    for value in (1, n):
        params = {"n": value, "t": when, "d": Decimal("12.50"), "s": "é'\"%"}
        rows.append((tx.fetch_one(_ECHO, params), _cursor_row(params)))
    _committed(tx)
    for got, expected in rows:
        assert got == tuple(expected)
    assert rows[1][0][0] == n and rows[1][0][4] == "100%"


def test_nothing_is_committed_before_the_commit_and_everything_after(settings):
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS test_pipelined (v bigint)")
    try:
        tx = PipelinedTransaction("audit")
        assert tx.fetch_one("INSERT INTO test_pipelined (v) VALUES (%(v)s) RETURNING v", {"v": 40_000}) == (40_000,)
        with connection.cursor() as cur:
            assert _count(cur, "SELECT count(*) FROM test_pipelined") == 0  # another connection sees nothing yet
        _committed(tx)
        with connection.cursor() as cur:
            assert _count(cur, "SELECT count(*) FROM test_pipelined") == 1
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TABLE test_pipelined")


def test_statements_are_logged_like_django_queries():
    tx = PipelinedTransaction("audit")
    with CaptureQueriesContext(connections["audit"]) as ctx:
        tx.fetch_one("SELECT %(x)s::int", {"x": 1})
    _committed(tx)
    assert [q["sql"] for q in ctx.captured_queries] == ["SELECT %(x)s::int"]


def test_behind_a_transaction_pooler_nothing_is_prepared(settings):
    audit = connections["audit"]
    audit.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    try:
        tx = PipelinedTransaction("audit")
        assert tx.fetch_one("SELECT %(x)s::int + 1", {"x": 1}) == (2,)
        _committed(tx)
        with audit.cursor() as cur:
            assert _count(cur, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'dpi_p_%'") == 0
    finally:
        audit.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = False


def test_only_named_placeholders_are_taken():
    with pytest.raises(ValueError, match="named placeholders"):
        PipelinedTransaction("audit").fetch_one("SELECT %s", {"x": 1})


def test_an_error_is_raised_as_djangos_and_the_next_transaction_works():
    tx = PipelinedTransaction("audit")
    with pytest.raises(DatabaseError):
        tx.fetch_one("SELECT 1 / %(z)s::int", {"z": 0})
    with pytest.raises(DatabaseError):
        tx.confirm()  # the failed transaction is reported once
    assert tx.fetch_one("SELECT %(x)s::int", {"x": 3}) == (3,)
    _committed(tx)
