"""Event ids are always assigned by the database (issue #14, migration 0005): the column is GENERATED ALWAYS, an
explicit id needs OVERRIDING SYSTEM VALUE, and even then the application's role cannot claim an id the sequence has
not handed out yet (a forger could otherwise make a future genuine event collide with it)."""

import pytest
from django.db import DatabaseError, connection, transaction

from tests.test_audit_support import record, sql

pytestmark = pytest.mark.django_db

INSERT = "INSERT INTO audit_accessevent (id, action, outcome) {override} VALUES (%s, 'login', 'allowed')"


def _refused(query: str, params, *, role: str | None = "dpi_app_audit") -> str:
    with pytest.raises(DatabaseError) as exc, transaction.atomic(), connection.cursor() as cur:
        if role:
            cur.execute(f"SET LOCAL ROLE {role}")
        cur.execute(query, params)
    return str(exc.value)


def test_the_id_column_is_generated_always():
    assert sql("SELECT attidentity FROM pg_attribute WHERE attrelid = 'audit_accessevent'::regclass "
               "AND attname = 'id'") == [("a",)]
    last = record(1)[0].id
    assert "cannot insert a non-DEFAULT value" in _refused(INSERT.format(override=""), [last + 1])


def test_the_application_role_cannot_claim_a_future_id():
    last = record(1)[0].id
    message = _refused(INSERT.format(override="OVERRIDING SYSTEM VALUE"), [last + 1000])
    assert "audit event ids are assigned by the database" in message


def test_a_session_that_never_drew_an_id_cannot_supply_one():
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        other.autocommit = True
        other.execute("SET ROLE dpi_app_audit")
        with pytest.raises(Exception) as exc:  # noqa: B017,PT011 - psycopg's own error class, outside Django
            other.execute(INSERT.format(override="OVERRIDING SYSTEM VALUE"), [10**15])
        assert "currval" in str(exc.value) or "assigned by the database" in str(exc.value)
    finally:
        other.close()
