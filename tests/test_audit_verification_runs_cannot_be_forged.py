"""The record of a verification is evidence too. A database superuser who cannot hide a rewrite from
``verify_audit`` could otherwise edit what the DPO reads of it: turn last night's failed run into "intact",
delete it so that the previous (intact) run shows, or insert an "intact" run of their own. The dashboard, the
retention gate (which refuses to drop months while the last run failed) and the signed report would all believe
the edited row. Each run is signed with the audit-signing key, numbered and chained to the previous one, and
written to the witness file outside the database; what the DPO is shown is checked against both.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import selectors, witness
from audit.services import RetentionRefused, partitions_drop_older_than
from audit.verification import chain_verify
from dpi.compliance.live_state import check_audit
from tests.test_audit_support import fresh_trail, signed, sql, triggers_off

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken_run():
    """An intact run, then an event altered by a superuser, then the run that caught it."""
    fresh_trail()
    signed(3, patient_id=21)
    assert chain_verify(alert=False).ok
    with triggers_off():
        sql("UPDATE audit_accessevent SET actor_username = 'someone.else' WHERE id = (SELECT min(id) FROM "
            "audit_accessevent)")
    run = chain_verify(alert=False)
    assert not run.ok
    return run


def _shown_broken(expected: str) -> None:
    shown = selectors.last_verification()
    assert shown is not None and not shown.ok, shown.message if shown else None
    assert expected in shown.message, shown.message
    verification = next(c for c in check_audit(timezone.now()) if c.code == "audit:verification")
    assert verification.status == "red"
    with pytest.raises(RetentionRefused):
        partitions_drop_older_than(6)


def test_a_failed_run_edited_to_intact_is_not_believed(broken_run):
    with triggers_off():
        sql("UPDATE audit_verificationrun SET ok = true, message = 'all good', problems = '[]', "
            "first_broken_id = NULL WHERE id = %s", [broken_run.pk])
    _shown_broken("altered in the database")


def test_the_newest_failed_run_deleted_is_named_from_the_witness(broken_run):
    with triggers_off():
        sql("DELETE FROM audit_verificationrun WHERE id = %s", [broken_run.pk])
    shown = selectors.last_verification()
    assert f"#{broken_run.number}" in shown.message
    _shown_broken("missing from the database")


def test_a_forged_intact_run_is_not_believed(broken_run):
    later = timezone.now() + timedelta(minutes=1)
    sql("INSERT INTO audit_verificationrun (started_at, finished_at, ok, events_checked, checkpoints_checked, "
        "message, problems, completed, witness_checked, number, key_version, signature, prev_digest) "
        "VALUES (%s, %s, true, 3, 1, 'ok', '[]', true, 1, %s, 1, %s, %s)",
        [later, later, broken_run.number + 1, bytes(64), bytes(32)])
    _shown_broken("altered in the database")


def test_an_unsigned_legacy_looking_intact_run_is_not_believed(broken_run):
    later = timezone.now() + timedelta(minutes=1)
    sql("INSERT INTO audit_verificationrun (started_at, finished_at, ok, events_checked, checkpoints_checked, "
        "message, problems, completed, witness_checked) VALUES (%s, %s, true, 3, 1, 'ok', '[]', true, 1)",
        [later, later])
    _shown_broken("not signed")


def test_the_application_cannot_edit_or_delete_a_run(broken_run):
    from django.db import connection, transaction
    from django.db.utils import DatabaseError

    for statement in ("UPDATE audit_verificationrun SET ok = true WHERE id = %s",
                      "DELETE FROM audit_verificationrun WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(statement, [broken_run.pk])


def test_each_run_is_witnessed_and_verify_audit_names_an_edited_or_deleted_one(broken_run):
    lines = witness.read().verifications
    assert broken_run.number in lines
    assert chain_verify(alert=False).number == broken_run.number + 1
    with triggers_off():
        sql("UPDATE audit_verificationrun SET ok = true WHERE id = %s", [broken_run.pk])
        sql("DELETE FROM audit_verificationrun WHERE number = %s", [broken_run.number - 1])
    run = chain_verify(alert=False)
    kinds = {p["kind"]: p["reason"] for p in run.problems}
    assert f"verification #{broken_run.number}" in kinds["verification_altered"]
    assert f"verification #{broken_run.number - 1}" in kinds["verification_deleted"]


def test_a_genuine_intact_run_is_shown_as_it_is():
    fresh_trail()
    signed(2, patient_id=22)
    run = chain_verify(alert=False)
    shown = selectors.last_verification()
    assert run.ok and shown.pk == run.pk and shown.ok


def test_a_forged_row_stays_flagged_when_the_runs_problems_are_emptied():
    """The patient's access report marks the rows the last run named: emptying that list (the run still says
    "broken") would show a forged row as genuine."""
    from audit.models import AccessEvent

    fresh_trail()
    signed(2, patient_id=23)
    genuine_id, genuine_at = sql("SELECT id, occurred_at FROM audit_accessevent ORDER BY id LIMIT 1")[0]
    forged_at = genuine_at - timedelta(minutes=3)
    with triggers_off():
        sql("INSERT INTO audit_accessevent (id, occurred_at, actor_username, patient_id, action, outcome) "
            "OVERRIDING SYSTEM VALUE VALUES (%s, %s, 'dr.forged', 23, 'view', 'allowed')", [genuine_id, forged_at])
    run = chain_verify(alert=False)
    events = list(AccessEvent.objects.filter(patient_id=23))
    assert (genuine_id, forged_at) in selectors.integrity_flags(events)
    with triggers_off():
        sql("UPDATE audit_verificationrun SET problems = '[]' WHERE id = %s", [run.pk])
    assert (genuine_id, forged_at) in selectors.integrity_flags(events)
    assert "altered in the database" in selectors.last_verification().message
