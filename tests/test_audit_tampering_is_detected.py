"""An event altered, removed or slipped in by a superuser with the triggers disabled is found by verify_audit,
which names it, exits non-zero and records the failed run for the DPO dashboard."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit import selectors
from audit.models import AccessEvent
from audit.services import checkpoint_sign
from audit.verification import chain_verify
from tests.test_audit_support import chain_now, record, signed, sql, triggers_off

pytestmark = pytest.mark.django_db


def _verify() -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_an_intact_trail_verifies():
    signed(5)
    out, error = _verify()
    assert error is None, out
    assert "audit trail intact" in out
    run = selectors.last_verification()
    assert run.ok and run.events_checked >= 5 and run.first_broken_id is None


def test_an_event_altered_with_triggers_disabled_is_named():
    events = record(4, patient_id=4242)
    signed(3)
    target = events[1]
    with triggers_off():
        sql("UPDATE audit_accessevent SET actor_username = 'someone.else' WHERE id = %s", [target.pk])
    assert AccessEvent.objects.get(pk=target.pk).actor_username == "someone.else"

    out, error = _verify()
    assert error is not None
    assert f"first broken event: id={target.pk}" in out
    assert f"event {target.pk}" in str(error) and "altered" in out
    run = selectors.last_verification()
    assert not run.ok and run.first_broken_id == target.pk


def test_an_event_altered_via_disable_trigger_is_named():
    target = signed(3)[2]
    sql("ALTER TABLE audit_accessevent DISABLE TRIGGER USER")
    sql("UPDATE audit_accessevent SET details = '{\"note\": \"nothing to see\"}' WHERE id = %s", [target.pk])
    sql("ALTER TABLE audit_accessevent ENABLE TRIGGER USER")
    run = chain_verify()
    assert not run.ok and run.first_broken_id == target.pk


def test_a_deleted_event_is_named():
    target = signed(3)[1]
    with triggers_off():
        sql("DELETE FROM audit_accessevent WHERE id = %s", [target.pk])
    run = chain_verify()
    assert not run.ok and run.first_broken_id == target.pk
    assert "missing" in run.message


def test_an_event_inserted_outside_the_chain_is_named():
    signed(2)
    with triggers_off():
        sql("INSERT INTO audit_accessevent (action, outcome, actor_username) VALUES ('view', 'allowed', 'ghost') "
            "RETURNING id")
    ghost = AccessEvent.objects.get(actor_username="ghost")
    run = chain_verify()
    assert not run.ok and run.first_broken_id == ghost.pk
    assert "not in the chain" in run.message


def test_a_rewritten_chain_contradicts_the_signed_checkpoint():
    """Altering an event *and* recomputing every later link (no secret needed) still differs from what was
    signed: the checkpoint is what makes the chain tamper-evident against the database's owner."""
    events = record(3)
    chain_now()
    checkpoint_sign()
    target = events[0]
    seq = sql("SELECT seq FROM audit_chainlink WHERE event_id = %s", [target.pk])[0][0]
    with triggers_off():
        sql("UPDATE audit_accessevent SET reason = 'rewritten' WHERE id = %s", [target.pk])
        sql(f"""
            DO $$ DECLARE r record; h bytea; BEGIN
              SELECT prev_hash INTO h FROM audit_chainlink WHERE seq = {int(seq)};
              FOR r IN SELECT l.seq, e FROM audit_chainlink l JOIN audit_accessevent e ON e.id = l.event_id
                       WHERE l.seq >= {int(seq)} ORDER BY l.seq LOOP
                UPDATE audit_chainlink SET prev_hash = h, hash = sha256(h || audit_event_canonical(r.e))
                 WHERE seq = r.seq RETURNING hash INTO h;
              END LOOP; END $$""")  # noqa: S608
    run = chain_verify()
    assert not run.ok
    assert "rewritten after checkpoint" in run.message


def test_a_cut_tail_contradicts_the_signed_checkpoint():
    record(3)
    chain_now()
    cp = checkpoint_sign()
    with triggers_off():
        sql("DELETE FROM audit_chainlink WHERE seq = %s", [cp.seq])
    run = chain_verify()
    assert not run.ok and "were cut off" in run.message


def test_a_forged_checkpoint_is_rejected():
    record(2)
    chain_now()
    cp = checkpoint_sign()
    with triggers_off():
        sql("UPDATE audit_auditcheckpoint SET signature = %s WHERE id = %s", [bytes(64), cp.pk])
    run = chain_verify()
    assert not run.ok and "invalid signature" in run.message
