"""A merge moves every stay of one file into the other. A medical secretary of the identity-vigilance cell could
merge a file she may not read with one her unit treats and then read it (either way: the treated file's stay moves
to the other, or the other's record moves into the treated file). Such a merge is left to another member of the
cell: refused on every channel (REST API, reception admin), recorded for the DPO; merges that open nothing to
their actor are unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from access import gate
from access.policy import IDENTITY_VIGILANCE_GROUP, Action, Category, Role
from dpi.api.testing import post_json, request_id, verified_login
from patients import services as patient_services
from patients.models import IdentityMerge, Patient
from tests.helpers import audit_events
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def secretary(cast):
    user = make_user("sec.idv", Role.MEDICAL_SECRETARY, [cast.cardio])
    user.groups.add(Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)[0])
    return user


@pytest.fixture
def elsewhere(cast) -> Patient:
    """The same person by the traits, treated in another unit only: the secretary may not read this file."""
    other = make_patient(birth_name=cast.patient.birth_name, first_name="Jean", birth_date=cast.patient.birth_date,
                         identity_status="PROV")
    start = timezone.now() - timedelta(days=10)
    stay = patient_services.encounter_admit(patient=other, unit=cast.other_unit, start=start)
    patient_services.encounter_discharge(encounter=stay, end=start + timedelta(days=1))
    return other


def _reads_chart(user, patient) -> bool:
    return gate.decide(user, patient_id=patient.pk, category=Category.MEDICAL, action=Action.VIEW).allowed


def _client(user) -> Client:
    client = Client()
    verified_login(client, user)
    return client


@pytest.mark.parametrize("direction", ["into_the_treated_file", "the_treated_file_into_the_other"])
def test_the_api_refuses_a_merge_that_opens_a_file_to_its_actor(cast, secretary, elsewhere, direction):
    assert _reads_chart(secretary, cast.patient) and not _reads_chart(secretary, elsewhere)
    kept, merged = (cast.patient, elsewhere) if direction == "into_the_treated_file" else (elsewhere, cast.patient)
    rid = request_id()
    response = post_json(_client(secretary), f"/api/patients/{kept.pk}/merge/",
                         {"merged": merged.pk, "reason": "doublon"}, **{"X-Request-ID": rid})
    assert response.status_code == 403, response.content[:300]
    assert not IdentityMerge.objects.exists()
    assert not _reads_chart(secretary, elsewhere)
    (event,) = [e for e in audit_events(request_id=rid) if e.basis == "deny:self_declared"]
    assert event.patient_id == elsewhere.pk and "self_declared_relationship" in event.details["flags"]


def test_the_reception_admin_refuses_it_too(cast, secretary, elsewhere):
    response = _client(secretary).post("/admin/patients/patient/", {
        "action": "merge", "_selected_action": [cast.patient.pk, elsewhere.pk], "apply": "1", "kept": cast.patient.pk,
        "reason": "doublon"})
    assert response.status_code == 403
    page = response.content.decode()  # the merge page again, in the admin's frame, saying why (not a bare 403)
    assert "Cette fusion vous ouvrirait un dossier" in page and 'name="reason"' in page, page[:500]
    assert not IdentityMerge.objects.exists()
    assert audit_events(actor_id=secretary.pk, basis="deny:self_declared")


def test_another_member_of_the_cell_merges_them(cast, elsewhere):
    reception = cast.reception  # reads no medical data: the merge opens nothing to her
    reception.groups.add(Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)[0])
    response = post_json(_client(reception), f"/api/patients/{cast.patient.pk}/merge/",
                         {"merged": elsewhere.pk, "reason": "doublon"})
    assert response.status_code == 200, response.content[:300]
    assert IdentityMerge.objects.get().actor == reception
