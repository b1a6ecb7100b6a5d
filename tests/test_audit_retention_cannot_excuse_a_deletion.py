"""Once retention has run, the verifier excuses what retention removes. It used to excuse by date: a link whose
event is gone was not reported when the link said the event was older than the retention cutoff, and a row
outside the chain was not reported when it was dated before the cutoff. The link's date is not covered by any
hash, and a forged row's date is whatever the forger writes: a superuser could delete any event (and re-date its
link), or insert an old-looking row, unseen. What retention removed is now the signed range of its checkpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audit.verification import chain_verify
from tests.test_audit_support import sql, triggers_off
from tests.test_audit_tamper_suite import Trail

pytestmark = pytest.mark.django_db


@pytest.fixture
def after_retention():
    """The tamper suite's trail with last month's links 1-4 removed by a signed retention checkpoint (as the
    retention worker does: checkpoint, partition dropped, links purged)."""
    from audit.services import checkpoint_sign

    trail = Trail()
    cutoff = trail.old_month + timedelta(days=32)  # after last month's events, before this month's
    cutoff = cutoff.replace(day=1)
    anchor = sql("SELECT hash FROM audit_chainlink WHERE seq = 4")[0][0]
    checkpoint_sign(kind="retention", seq=4, head_hash=bytes(anchor), retention_cutoff=cutoff, removed=(1, 4))
    with triggers_off():
        sql(f"ALTER TABLE audit_accessevent DETACH PARTITION {trail.partition}")
        sql(f"DROP TABLE {trail.partition}")
    sql("SELECT audit_purge_links_before(5)")
    run = chain_verify(alert=False)
    assert run.ok, run.message
    return trail


def test_a_deleted_event_whose_link_was_re_dated_is_named(after_retention):
    event_id, _ = after_retention.event_at(12)
    with triggers_off():
        sql("DELETE FROM audit_accessevent WHERE id = %s", [event_id])
        sql("UPDATE audit_chainlink SET event_occurred_at = '2001-01-01' WHERE seq = 12")
    run = chain_verify(alert=False)
    assert not run.ok
    assert any(p["kind"] == "event_deleted" and p["event_id"] == event_id for p in run.problems), run.problems


def test_an_old_looking_row_outside_the_chain_is_named(after_retention):
    with triggers_off():
        new_id = sql("INSERT INTO audit_accessevent (occurred_at, actor_username, patient_id, action, outcome) "
                     "VALUES ('2001-01-01', 'dr.alibi', 14, 'view', 'allowed') RETURNING id")[0][0]
    run = chain_verify(alert=False)
    assert not run.ok
    assert any(p["kind"] == "event_inserted" and p["event_id"] == new_id for p in run.problems), run.problems
