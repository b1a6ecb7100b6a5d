"""Issue #13 finding 9: a patient's unit history (a stay in psychiatry) and the reason of an appointment are
health data. Roles with an administrative view only (reception) see the open and recent stays their work
needs, never the older history, and never the appointment reason; clinical roles in the care team see both.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from patients.models import CareUnit, Encounter
from patients.services import appointment_book
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db

PSY = "ZZPSYCHIATRIE fermée"
REASON = "ZZREASON sevrage alcoolique"


@pytest.fixture
def history(cast):
    psy = CareUnit.objects.create(code="psy-zz", name=PSY)
    now = timezone.now()
    old = Encounter.objects.create(patient=cast.patient, unit=psy, start=now - timedelta(days=400),
                                   end=now - timedelta(days=380))
    appointment_book(patient=cast.patient, unit=cast.cardio, practitioner=cast.physician,
                     start=now + timedelta(days=3), end=now + timedelta(days=3, hours=1), reason=REASON)
    return old


def _api(client, url):
    response = client.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return response.content.decode()


def test_reception_sees_current_stays_but_not_the_old_psychiatry_stay(cast, history):
    reception = verified_client(cast.reception)
    api = _api(reception, f"/api/encounters/?patient={cast.patient.pk}")
    fhir = _api(reception, f"/fhir/Encounter?patient={cast.patient.pk}")
    for body in (api, fhir):
        assert PSY not in body and "psy-zz" not in body
        assert cast.cardio.code in body  # the open stay, which admissions and transfers need
    assert reception.get(f"/api/encounters/{history.pk}/", HTTP_ACCEPT="application/json").status_code == 404
    admin = reception.get("/admin/patients/encounter/").content.decode()
    assert f"/admin/patients/encounter/{history.pk}/change/" not in admin  # (the unit filter lists every unit)
    assert reception.get(f"/admin/patients/encounter/{history.pk}/change/").status_code != 200


def test_the_care_team_sees_the_whole_unit_history(cast, history):
    physician = verified_client(cast.physician)
    assert PSY in _api(physician, f"/api/encounters/?patient={cast.patient.pk}")
    assert "psy-zz" in _api(physician, f"/fhir/Encounter?patient={cast.patient.pk}")


def test_reception_never_reads_the_appointment_reason(cast, history):
    reception = verified_client(cast.reception)
    listing = reception.get("/admin/patients/appointment/")
    assert listing.status_code == 200
    assert REASON not in listing.content.decode()
    appointment = cast.patient.appointments.get()
    change = reception.get(f"/admin/patients/appointment/{appointment.pk}/change/")
    assert change.status_code == 200
    assert REASON not in change.content.decode()
    # Booking still takes a reason (what the patient says at the desk).
    assert "reason" in reception.get("/admin/patients/appointment/add/").content.decode()


def test_clinicians_outside_the_care_team_never_list_the_old_psychiatry_stay(cast, history):
    """Reading medical data *somewhere* is no reason to read a stranger's unit history: another unit's physician,
    a pharmacist, another unit's secretary and a physician the patient objected to see the open stay only."""
    from access.models import PatientObjection
    from access.policy import Role
    from tests.personas import make_user

    objected = make_user("dr.objected", Role.PHYSICIAN, [cast.cardio])
    PatientObjection.objects.create(patient=cast.patient, professional=objected, reason="voisin")
    for user in (cast.other_physician, make_user("pharma.zz", Role.PHARMACIST),
                 make_user("sec.zz", Role.MEDICAL_SECRETARY, [cast.other_unit]), objected):
        client = verified_client(user)
        for url in (f"/api/encounters/?patient={cast.patient.pk}", f"/fhir/Encounter?patient={cast.patient.pk}"):
            body = _api(client, url)
            assert PSY not in body and "psy-zz" not in body, (user.username, url)
            assert cast.cardio.code in body
        assert client.get(f"/api/encounters/{history.pk}/", HTTP_ACCEPT="application/json").status_code == 404
        assert client.get(f"/fhir/Encounter/{history.pk}").status_code == 404
    secretary = verified_client(make_user("sec.zz2", Role.MEDICAL_SECRETARY, [cast.other_unit]))
    appointment = cast.patient.appointments.get()
    for url in ("/admin/patients/appointment/", f"/admin/patients/appointment/{appointment.pk}/change/"):
        response = secretary.get(url)
        assert response.status_code == 200
        assert REASON not in response.content.decode(), url
    listing = secretary.get("/admin/patients/encounter/").content.decode()
    assert f"/admin/patients/encounter/{history.pk}/change/" not in listing  # (the unit filter lists every unit)
    # the unit's own secretary, in the care team, reads the reason
    own = verified_client(make_user("sec.cardio.zz", Role.MEDICAL_SECRETARY, [cast.cardio]))
    assert REASON in own.get("/admin/patients/appointment/").content.decode()
