"""Stays and appointments follow the identity: no stay before birth or after death, one stay in progress per
patient (a transfer closes the previous), no appointment in the past unless it is a regularisation; the same
rules through the service, the JSON ADT endpoint and the reception admin."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from dpi.api.testing import bearer, make_api_client, post_json
from patients import services
from patients.models import Appointment, Encounter
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere


def _at(day: date, hour: int = 10):
    return timezone.make_aware(timezone.datetime(day.year, day.month, day.day, hour))


@pytest.mark.parametrize(("case", "offset_days", "refused"), [
    ("day_of_birth", 0, False),
    ("day_before_birth", -1, True),
    ("year_before_birth", -365, True),
])
def test_no_stay_before_birth(cast, case, offset_days, refused):
    baby = make_patient(birth_date=timezone.localdate() - timedelta(days=10), identity_status="PROV")
    start = _at(baby.birth_date + timedelta(days=offset_days))
    if refused:
        with pytest.raises(ValidationError) as exc:
            services.encounter_admit(patient=baby, unit=cast.cardio, start=start)
        assert "start" in exc.value.message_dict
    else:
        assert services.encounter_admit(patient=baby, unit=cast.cardio, start=start).start == start


def test_no_stay_after_death(cast):
    dead = make_patient(identity_status="PROV", date_of_death=timezone.localdate() - timedelta(days=5))
    with pytest.raises(ValidationError) as exc:
        services.encounter_admit(patient=dead, unit=cast.cardio)
    assert "start" in exc.value.message_dict
    services.encounter_admit(patient=dead, unit=cast.cardio, start=_at(dead.date_of_death, 1))


def test_one_stay_in_progress_and_a_transfer_closes_it(cast):
    with pytest.raises(ValidationError) as exc:
        services.encounter_admit(patient=cast.patient, unit=cast.other_unit)
    assert "patient" in exc.value.message_dict
    new = services.encounter_transfer(encounter=cast.encounter, unit=cast.other_unit)
    assert list(Encounter.objects.filter(patient=cast.patient, end__isnull=True)) == [new]


def test_the_adt_endpoint_refuses_a_second_open_stay_and_a_stay_before_birth(cast, client):
    _, token = make_api_client()
    response = post_json(client, "/api/encounters/", {"patient": cast.patient.pk, "unit": cast.other_unit.code},
                         **bearer(token))
    assert response.status_code == 400 and "patient" in response.json()
    other = make_patient(identity_status="PROV")
    before = (_at(other.birth_date) - timedelta(days=2)).isoformat()
    response = post_json(client, "/api/encounters/", {"patient": other.pk, "unit": cast.cardio.code,
                                                      "start": before}, **bearer(token))
    assert response.status_code == 400 and "start" in response.json()
    assert Encounter.objects.filter(patient=cast.patient).count() == 1


def test_the_admin_form_says_why_an_admission_is_refused(cast):
    start = timezone.localtime().replace(second=0, microsecond=0)
    response = verified_client(cast.reception).post("/admin/patients/encounter/add/", {
        "patient": cast.patient.pk, "unit": cast.other_unit.pk, "kind": "stay",
        "start_0": start.strftime("%Y-%m-%d"), "start_1": start.strftime("%H:%M")})
    assert response.status_code == 200
    assert "séjour en cours" in response.content.decode()
    assert Encounter.objects.filter(patient=cast.patient).count() == 1


@pytest.mark.parametrize(("days", "regularisation", "refused"), [
    (2, False, False),
    (-2, False, True),
    (-2, True, False),
])
def test_appointments_not_in_the_past_unless_regularisation(cast, days, regularisation, refused):
    start = timezone.now() + timedelta(days=days)
    book = dict(patient=cast.patient, unit=cast.cardio, practitioner=cast.physician, start=start,
                end=start + timedelta(minutes=30), regularisation=regularisation)
    if refused:
        with pytest.raises(ValidationError) as exc:
            services.appointment_book(**book)
        assert "start" in exc.value.message_dict
        assert not Appointment.objects.exists()
    else:
        services.appointment_book(**book)


def test_the_admin_books_a_past_appointment_only_as_regularisation(cast):
    client = verified_client(cast.reception)
    start = timezone.localtime() - timedelta(days=3)
    form = {"patient": cast.patient.pk, "unit": cast.cardio.pk, "practitioner": cast.physician.pk,
            "start_0": start.strftime("%Y-%m-%d"), "start_1": "09:00", "end_0": start.strftime("%Y-%m-%d"),
            "end_1": "09:30", "reason": "Contrôle"}
    refused = client.post("/admin/patients/appointment/add/", form)
    assert refused.status_code == 200 and "régularisation" in refused.content.decode()
    assert not Appointment.objects.exists()
    accepted = client.post("/admin/patients/appointment/add/", {**form, "regularisation": "on"})
    assert accepted.status_code == 302, accepted.content.decode()[:2000]
    assert Appointment.objects.count() == 1
