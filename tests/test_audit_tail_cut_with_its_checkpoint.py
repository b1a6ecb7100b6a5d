"""The classic hole, held to account: a superuser removes the newest events together with the newest checkpoint
(and resets the id sequence so that ids continue without a gap), then lets beat sign again over the shortened
trail. The witness file outside the database still holds the checkpoint that covered the removed events."""

from __future__ import annotations

import pytest

from audit.services import checkpoint_sign
from audit.verification import chain_verify
from tests.test_audit_support import chain_now, fresh_trail, record, signed, sql, triggers_off

pytestmark = pytest.mark.django_db


@pytest.fixture
def cut():
    fresh_trail()
    signed(4, patient_id=41)
    signed(4, patient_id=42)
    signed(4, patient_id=43)  # checkpoint #3 covers links 9 to 12
    assert chain_verify(alert=False).ok
    with triggers_off():
        sql("DELETE FROM audit_accessevent WHERE id IN (SELECT event_id FROM audit_chainlink WHERE seq > 8)")
        sql("DELETE FROM audit_chainlink WHERE seq > 8")
        sql("DELETE FROM audit_auditcheckpoint WHERE number = 3")
        sql("SELECT setval('audit_accessevent_id_seq', (SELECT max(id) FROM audit_accessevent))")


def test_the_cut_is_named_from_the_witness(cut):
    run = chain_verify(alert=False)
    reasons = " | ".join(p["reason"] for p in run.problems)
    assert not run.ok
    assert "checkpoint #3 (periodic, link 12" in reasons and "in the witness but missing from the database" in reasons
    assert "links 9 to 12 were cut off" in reasons


def test_the_cut_stays_visible_after_beat_signs_again(cut):
    record(2, patient_id=44)
    chain_now()
    checkpoint_sign()  # a new #3 over links 1 to 10
    run = chain_verify(alert=False)
    reasons = " | ".join(p["reason"] for p in run.problems)
    assert not run.ok
    assert "two different signed checkpoints #3" in reasons
    assert "checkpoint #3 in the database differs from its witness (checkpoint #3 (periodic, link 12" in reasons
