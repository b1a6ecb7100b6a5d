"""A claim on medical liability suspends the retention periods (R1112-7 CSP): while a legal hold is active, an
expired archive is neither destroyed nor anonymised, whether the hold came before or after the decision."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from retention import services
from retention.models import ArchivedPatient, LegalHold
from retention.testing import age, full_record, where_is
from tests.helpers import audit_events
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"


@pytest.fixture
def expired(cast):
    patients = [make_patient(birth_name=f"LITIGE{chr(65 + i)}") for i in range(2)]
    for p in patients:
        full_record(patient=p, author=cast.physician, unit=cast.cardio)
    age([p.pk for p in patients], last_activity=timezone.now() - timedelta(days=365 * 21))
    services.retention_run()
    return patients


def test_hold_placed_before_the_decision(cast, expired, django_capture_on_commit_callbacks):
    held, free = expired
    hold = services.legal_hold_place(user=cast.dim, patient_id=held.pk, reason="Recours TA n° 2026-0042")
    decision = services.disposal_decision_record(user=cast.dim, action="destroy", reference="Décision n° 7")
    assert decision.archives_count == 1  # the held archive is not covered
    with django_capture_on_commit_callbacks(execute=True):
        run = services.retention_run()
    assert run.destroyed == 1
    assert where_is(held.pk) == {"archived"} and where_is(free.pk) == set()
    assert ArchivedPatient.objects.get(patient_id=held.pk).legal_hold

    # Lifted: a new decision covers it.
    services.legal_hold_lift(user=cast.dpo, hold_id=hold.pk)
    services.disposal_decision_record(user=cast.dim, action="anonymise", reference="Décision n° 8")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.retention_run()
    assert run.anonymised == 1 and where_is(held.pk) == set()
    steps = {e.details.get("step") for e in audit_events(patient_id=held.pk)}
    assert {"legal_hold_place", "legal_hold_lift", "disposal:anonymise"} <= steps


def test_hold_placed_after_the_decision_still_blocks(cast, expired):
    held, _free = expired
    services.disposal_decision_record(user=cast.dim, action="destroy", reference="Décision n° 9")
    services.legal_hold_place(user=cast.dpo, patient_id=held.pk, reason="Recours amiable du 3 mars")
    run = services.retention_run()
    assert run.destroyed == 1
    assert where_is(held.pk) == {"archived"}
    assert ArchivedPatient.objects.get(patient_id=held.pk).state == "archived"


def test_hold_on_a_live_patient_is_kept_through_archiving(cast):
    patient = make_patient()
    services.legal_hold_place(user=cast.dim, patient_id=patient.pk, reason="Recours TA n° 2026-0050")
    age([patient.pk], last_activity=timezone.now() - timedelta(days=365 * 21))
    services.retention_run()
    assert ArchivedPatient.objects.get(patient_id=patient.pk).legal_hold
    assert services.disposal_decision_record(user=cast.dim, action="destroy", reference="n° 10").archives_count == 0


def test_only_dim_or_dpo_place_holds(cast, expired):
    with pytest.raises(PermissionDenied):
        services.legal_hold_place(user=cast.physician, patient_id=expired[0].pk, reason="x")
    assert not LegalHold.objects.exists()
