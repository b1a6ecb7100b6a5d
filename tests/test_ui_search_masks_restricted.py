"""Patient search: only what the user may find; restricted patients are masked outside their care team,
and opening one directly looks exactly like opening a patient that does not exist."""

from __future__ import annotations

import pytest

from patients import services as patient_services
from tests.helpers import audit_events
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def vip(cast):
    return make_patient(birth_name="CELEBRE", first_name="Anne", confidentiality="restricted",
                        restriction_reason="vip")


def test_a_restricted_patient_is_masked_outside_the_care_team(cast, vip):
    html = verified_client(cast.other_physician).get("/patients/?q=celebre").content.decode()
    assert "CELEBRE" not in html
    assert 'class="empty"' in html  # a clear empty state


def test_a_restricted_patient_is_found_by_the_care_team(cast, vip):
    patient_services.encounter_admit(patient=vip, unit=cast.cardio)
    html = verified_client(cast.nurse).get("/patients/?q=celebre").content.decode()
    assert "CELEBRE" in html and f"/patients/{vip.pk}/" in html


def test_opening_a_masked_patient_directly_is_a_404_like_a_missing_one(cast, vip):
    client = verified_client(cast.other_physician)
    masked = client.get(f"/patients/{vip.pk}/")
    missing = client.get("/patients/999999/")
    assert masked.status_code == missing.status_code == 404
    assert "CELEBRE" not in masked.content.decode()


def test_search_by_ipp_ins_and_birth_date(cast):
    client = verified_client(cast.nurse)
    p = cast.patient
    for query in (p.ipp, p.ins, p.birth_date.strftime("%d/%m/%Y"), p.birth_name[:4]):
        assert f"/patients/{p.pk}/" in client.get("/patients/", {"q": query}).content.decode(), query


def test_the_default_list_is_my_care_team_and_each_search_is_recorded(cast):
    client = verified_client(cast.nurse)
    html = client.get("/patients/").content.decode()
    assert f"/patients/{cast.patient.pk}/" in html
    client.get("/patients/", {"q": "dupont"})
    searches = audit_events(actor_id=cast.nurse.pk, action="search")
    assert len(searches) == 2 and searches[-1].details == {"query_length": 6}
