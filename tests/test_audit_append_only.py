"""The access trace is append-only in PostgreSQL itself: the application's connection cannot rewrite it."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AccessEvent, AuditCheckpoint
from audit.services import checkpoint_sign
from tests.test_audit_support import chain_now, record, sql

pytestmark = pytest.mark.django_db


def _refused(query: str, params=None) -> str:
    with pytest.raises(DatabaseError) as exc, transaction.atomic():
        sql(query, params)
    return str(exc.value)


def test_update_and_delete_through_the_orm_fail():
    event = record()[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AccessEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AccessEvent.objects.filter(pk=event.pk).delete()
    assert AccessEvent.objects.get(pk=event.pk).reason == ""


def test_update_delete_truncate_in_sql_fail_on_the_table_and_on_each_partition():
    event = record()[0]
    chain_now()  # as at commit (TRUNCATE also refuses a table with pending trigger events)
    assert "append-only" in _refused("UPDATE audit_accessevent SET actor_username = 'x' WHERE id = %s", [event.pk])
    assert "append-only" in _refused("DELETE FROM audit_accessevent WHERE id = %s", [event.pk])
    assert "append-only" in _refused("TRUNCATE audit_accessevent")
    partitions = [r[0] for r in sql("SELECT inhrelid::regclass::text FROM pg_inherits "
                                    "WHERE inhparent = 'audit_accessevent'::regclass")]
    assert "audit_accessevent_default" in partitions and len(partitions) >= 4
    for part in partitions:
        assert "append-only" in _refused(f"TRUNCATE {part}")
    home = sql("SELECT tableoid::regclass::text FROM audit_accessevent WHERE id = %s", [event.pk])[0][0]
    assert "append-only" in _refused(f"DELETE FROM {home} WHERE id = %s", [event.pk])  # noqa: S608
    assert "append-only" in _refused(f"UPDATE {home} SET reason = 'x' WHERE id = %s", [event.pk])  # noqa: S608


def test_chain_links_and_checkpoints_cannot_be_rewritten():
    record(2)
    chain_now()
    cp = checkpoint_sign()
    assert cp is not None
    assert "append-only" in _refused("UPDATE audit_chainlink SET hash = prev_hash")
    assert "append-only" in _refused("DELETE FROM audit_chainlink")
    assert "append-only" in _refused("TRUNCATE audit_chainlink")
    assert "append-only" in _refused("UPDATE audit_auditcheckpoint SET seq = 0")
    assert "append-only" in _refused("DELETE FROM audit_auditcheckpoint")
    assert "append-only" in _refused("TRUNCATE audit_auditcheckpoint")
    assert "append-only" in _refused("TRUNCATE audit_chainquarantine")
    assert "without gap" in _refused("INSERT INTO audit_auditcheckpoint (number, format, seq, head_hash, "
                                     "prev_digest, signed_at, kind, key_version, signature) SELECT number + 2, 2, "
                                     "seq, head_hash, prev_digest, now(), kind, key_version, signature "
                                     "FROM audit_auditcheckpoint ORDER BY number DESC LIMIT 1")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditCheckpoint.objects.filter(pk=cp.pk).delete()


def test_the_application_role_may_only_insert_and_select():
    assert sql("SELECT 1 FROM pg_roles WHERE rolname = 'dpi_app_audit'"), "migration 0004 creates the role"
    with transaction.atomic():
        sql("SET LOCAL ROLE dpi_app_audit")
        sql("INSERT INTO audit_accessevent (action, outcome) VALUES ('login', 'allowed')")
        assert sql("SELECT count(*) FROM audit_accessevent")[0][0] >= 1
        assert "permission denied" in _refused("UPDATE audit_accessevent SET reason = 'x'")
        assert "permission denied" in _refused("DELETE FROM audit_accessevent")
        assert "permission denied" in _refused("INSERT INTO audit_chainlink VALUES (999999999, 1, now(), "
                                               "'\\x00'::bytea, '\\x00'::bytea)")
        assert "permission denied" in _refused("SELECT audit_chain_drain(0, '\\x00'::bytea, 1)")
        sql("SELECT audit_chain_seal()")  # granted: chaining queued events is harmless
    assert connection.cursor()  # back to the test's own role
