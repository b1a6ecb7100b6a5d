from datetime import timedelta

import pytest
from django.utils import timezone

from access import gate
from access.models import EmergencyAccess
from patients import services as ps
from patients.models import Patient
from tests.helpers import audit_events
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


def test_restricted_patients_are_masked_outside_the_care_team(cast):
    vip = make_patient(birth_name="CELEBRE", confidentiality="restricted", restriction_reason="vip")
    ps.encounter_admit(patient=vip, unit=cast.cardio)
    visible_to_team = gate.visible_patients(cast.physician, Patient.objects.filter(birth_name="CELEBRE"), query="cel")
    assert list(visible_to_team) == [vip]
    for outsider in (cast.other_physician, cast.reception):
        assert list(gate.visible_patients(outsider, Patient.objects.filter(birth_name="CELEBRE"))) == []
    # ...normal patients stay findable by anyone whose role may search identities
    assert cast.patient in gate.visible_patients(cast.other_physician, Patient.objects.all())


def test_break_glass_makes_a_restricted_patient_findable(cast):
    vip = make_patient(confidentiality="restricted", restriction_reason="staff")
    now = timezone.now()
    EmergencyAccess.objects.create(
        user=cast.other_physician,
        patient=vip,
        reason_category="emergency",
        reason_text="urgence",
        started_at=now,
        expires_at=now + timedelta(hours=1),
    )
    assert vip in gate.visible_patients(cast.other_physician, Patient.objects.all())


def test_searches_are_recorded_and_refused_for_roles_without_search(cast):
    gate.visible_patients(cast.physician, Patient.objects.all(), query="dupont")
    assert list(gate.visible_patients(cast.dpo, Patient.objects.all())) == []
    assert list(gate.visible_patients(cast.outsider, Patient.objects.all())) == []
    searches = audit_events(action="search", actor_id__isnull=False)  # not the duplicate checks at creation
    assert [(e.actor_id, e.outcome) for e in searches] == [
        (cast.physician.pk, "allowed"),
        (cast.dpo.pk, "denied"),
        (cast.outsider.pk, "denied"),
    ]
    assert searches[0].details == {"query_length": 6}  # the query text itself is not kept
