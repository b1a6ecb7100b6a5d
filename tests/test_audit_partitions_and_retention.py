"""Monthly partitions are created ahead; months older than the retention period are dropped whole, and the
remaining chain still verifies, anchored by the signed retention checkpoint."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, transaction

from audit.models import AccessEvent, AuditCheckpoint
from audit.services import (
    RetentionRefused,
    checkpoint_sign,
    partitions_drop_older_than,
    partitions_ensure,
    retention_cutoff,
)
from audit.verification import chain_verify
from tests.test_audit_support import chain_now, fresh_trail, record, sql, stored_run

pytestmark = pytest.mark.django_db


def _partitions() -> set[str]:
    return {r[0] for r in sql("SELECT inhrelid::regclass::text FROM pg_inherits "
                              "WHERE inhparent = 'audit_accessevent'::regclass")}


def _month(d: datetime) -> str:
    return f"audit_accessevent_{d:%Y_%m}"


def test_partitions_are_created_months_ahead_with_their_guards():
    far = retention_cutoff(-15)  # 15 months ahead
    assert partitions_ensure(months_ahead=15) >= 1
    assert _month(far) in _partitions()
    assert partitions_ensure(months_ahead=15) == 0  # idempotent
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql(f"TRUNCATE {_month(far)}")


def test_cutoff_is_the_start_of_a_month_in_utc():
    now = datetime(2026, 3, 15, 10, tzinfo=UTC)
    assert retention_cutoff(12, now) == datetime(2025, 3, 1, tzinfo=UTC)
    assert retention_cutoff(3, now) == datetime(2025, 12, 1, tzinfo=UTC)


def test_old_months_are_dropped_and_the_remaining_chain_still_verifies():
    fresh_trail()
    cutoff = retention_cutoff(12)
    old = cutoff - timedelta(days=40)
    sql("SELECT audit_ensure_partitions(%s::date, 2)", [old.date()])
    for i in range(4):
        AccessEvent(occurred_at=old + timedelta(hours=i), action="view", outcome="allowed",
                    patient_id=7).save(force_insert=True)
    chain_now()
    kept = record(3, patient_id=7)
    chain_now()
    checkpoint_sign()

    dropped = partitions_drop_older_than(12)

    assert _month(old) in dropped and _month(old) not in _partitions()
    assert sorted(AccessEvent.objects.values_list("id", flat=True)) == sorted(e.pk for e in kept)
    first_seq = sql("SELECT min(seq) FROM audit_chainlink")[0][0]
    assert first_seq == 5  # the four old links went with their month
    anchor = AuditCheckpoint.objects.get(kind="retention")
    assert anchor.seq == 4 and anchor.retention_cutoff == cutoff
    assert (anchor.removed_first_seq, anchor.removed_last_seq) == (1, 4)  # exactly the links it removed
    run = chain_verify()
    assert run.ok, run.message
    assert (run.first_seq, run.events_checked) == (5, 3)


def test_the_database_refuses_to_drop_less_than_six_months():
    with pytest.raises(DatabaseError, match="at least 6 months"), transaction.atomic():
        sql("SELECT audit_drop_partitions_before(now() - interval '3 months')")


def test_the_database_refuses_to_drop_without_a_retention_checkpoint():
    with pytest.raises(DatabaseError, match="no retention checkpoint"), transaction.atomic():
        sql("SELECT audit_drop_partitions_before(now() - interval '5 years')")


def test_links_cannot_be_purged_without_an_anchor():
    record(2)
    chain_now()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("SELECT audit_purge_links_before(1000000000)")


def test_retention_waits_while_the_trail_is_broken():
    now = datetime.now(UTC)
    stored_run(started_at=now, finished_at=now, ok=False, message="event 12 was altered")
    with pytest.raises(RetentionRefused):
        partitions_drop_older_than(12)
