"""An event inserted today but dated in the past (a superuser, or anyone who may INSERT, writing an alibi or a
false accusation into the trail: ``occurred_at`` is whatever the INSERT says) is chained at the head like any
other event, so nothing in the chain contradicts it. But it is chained after checkpoints signed long after its
date, which no genuine event can be (the signer chains every queued event first): ``verify_audit`` names it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.verification import chain_verify
from tests.test_audit_support import chain_now, fresh_trail, signed, sql, triggers_off

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("days_back, triggers", [(3, True), (400, True), (9000, False)],
                         ids=["days", "a-year", "before-2000-triggers-off"])
def test_a_backdated_event_is_named(days_back, triggers):
    fresh_trail()
    signed(3, patient_id=51)
    signed(2, patient_id=52)
    at = timezone.now() - timedelta(days=days_back)
    insert = ("INSERT INTO audit_accessevent (occurred_at, actor_username, patient_id, action, outcome) "
              "VALUES (%s, 'dr.alibi', 51, 'view', 'allowed') RETURNING id")
    if triggers:
        sql(f"SELECT audit_ensure_partitions('{at:%Y-%m-01}'::date, 1)")  # noqa: S608
        new_id = sql(insert, [at])[0][0]
        chain_now()
    else:
        with triggers_off():
            new_id = sql(insert, [at])[0][0]
            sql("SELECT audit_chain_seal()")
        sql("INSERT INTO audit_chainpending (event_id, event_occurred_at, canonical) SELECT id, occurred_at, "
            "audit_event_canonical(e) FROM audit_accessevent e WHERE id = %s", [new_id])
        sql("SELECT audit_chain_seal()")
    run = chain_verify(alert=False)
    assert not run.ok
    assert [p["event_id"] for p in run.problems if p["kind"] == "event_backdated"] == [new_id], run.problems


def test_events_of_the_day_are_not_suspect():
    fresh_trail()
    signed(3, patient_id=53)
    signed(2, patient_id=53)
    run = chain_verify(alert=False)
    assert run.ok, run.message
