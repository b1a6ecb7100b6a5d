"""The proof that a record left the live database (its archive stub: archived, destroyed, anonymised) and the
director's disposal decision are checked against the trail's chained retention events: a superuser deleting the
stub (nothing would say any more where the record went), changing its state, or deleting or rewording the
decision is named by ``verify_audit``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.verification import chain_verify
from retention import services
from retention.testing import age, full_record, where_is
from tests.personas import make_patient
from tests.test_audit_support import chain_now, sql, triggers_off

pytestmark = pytest.mark.django_db


def _problems(run) -> list[str]:
    return [p["reason"] for p in run.problems if p["kind"] == "record_altered"]


@pytest.fixture
def archived(cast, settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"
    patient = make_patient(birth_name="ARCHIVA", first_name="Léon")
    full_record(patient=patient, author=cast.physician, unit=cast.cardio, other_user=cast.other_physician)
    age([patient.pk], last_activity=timezone.now() - timedelta(days=365 * 21))
    services.retention_run()
    assert where_is(patient.pk) == {"archived"}
    decision = services.disposal_decision_record(user=cast.dim, action="destroy", reference="Décision n° 2026-14")
    chain_now()
    assert not _problems(chain_verify(alert=False))
    return patient, decision


@pytest.mark.parametrize("attack, says", [
    ("DELETE FROM retention_archivekey WHERE archive_id IN (SELECT id FROM retention_archivedpatient WHERE "
     "patient_id = {p}); DELETE FROM retention_archivedpatient WHERE patient_id = {p}", "was deleted"),
    ("UPDATE retention_archivedpatient SET state = 'destroyed' WHERE patient_id = {p}", "says destroyed"),
], ids=["stub-deleted", "stub-state"])
def test_an_archive_stub_tampered_with_is_named(archived, attack, says):
    patient, _ = archived
    with triggers_off():
        for statement in attack.format(p=patient.pk).split("; "):
            sql(statement)
    problems = _problems(chain_verify(alert=False))
    assert any(f"archive stub of patient {patient.pk}" in p and says in p for p in problems), problems


@pytest.mark.parametrize("attack, says", [
    ("UPDATE retention_archivedpatient SET disposal_decision_id = NULL WHERE disposal_decision_id = {d}; "
     "DELETE FROM retention_disposaldecision WHERE id = {d}", "was deleted"),
    ("UPDATE retention_disposaldecision SET reference = 'autre' WHERE id = {d}", "reference"),
    ("UPDATE retention_disposaldecision SET action = 'anonymise' WHERE id = {d}", "action anonymise"),
], ids=["deleted", "reference", "action"])
def test_a_disposal_decision_tampered_with_is_named(archived, attack, says):
    _, decision = archived
    with triggers_off():
        for statement in attack.format(d=decision.pk).split("; "):
            sql(statement)
    problems = _problems(chain_verify(alert=False))
    assert any(f"disposal decision #{decision.pk}" in p and says in p for p in problems), problems


def test_a_destroyed_record_stays_consistent(archived, django_capture_on_commit_callbacks):
    patient, _ = archived
    with django_capture_on_commit_callbacks(execute=True):
        services.retention_run()
    chain_now()
    assert where_is(patient.pk) == set()
    assert not _problems(chain_verify(alert=False))
