"""Structured entry in the chart: allergies, problems, vital signs, prescriptions, administrations, documents.

Each service refuses bad input naming the field and writing nothing; amendments keep history; the web pages
pass the gate (nurse administers, pharmacist validates, reception and secretaries never chart) and record it.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from access.policy import Role
from dpi import services
from dpi.models import Allergy, Document, MedicationAdministration, Observation, Prescription, Problem
from tests.helpers import audit_events
from tests.personas import make_user
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


# --- services: bad input names the field and writes nothing ------------------------------------------------
@pytest.mark.parametrize(("values", "field"), [
    ({"systolic": "400"}, "systolic"),
    ({"pulse": "abc"}, "pulse"),
    ({"temperature": "25"}, "temperature"),
    ({"spo2": "101"}, "spo2"),
    ({"systolic": "80", "diastolic": "120"}, "diastolic"),
    ({"pain": "11"}, "pain"),
    ({"weight": "NaN"}, "weight"),
    ({"bogus": "1"}, "bogus"),
])
def test_implausible_vitals_are_refused_with_their_field_and_nothing_is_saved(cast, values, field):
    with pytest.raises(ValidationError) as exc:
        services.vitals_record(patient=cast.patient, author=cast.nurse, effective_at=timezone.now(),
                               values={"pulse": "72", **values})
    assert field in exc.value.message_dict
    assert not Observation.objects.filter(patient=cast.patient).exists()


def test_vitals_are_loinc_coded_with_units(cast):
    saved = services.vitals_record(patient=cast.patient, author=cast.nurse, effective_at=timezone.now(),
                                   values={"systolic": "128", "diastolic": "79", "temperature": "38,4", "spo2": "97"})
    by_code = {o.loinc: o for o in saved}
    assert by_code["8480-6"].unit == "mm[Hg]" and by_code["8310-5"].value == Decimal("38.4")
    assert by_code["8310-5"].abnormal == "H" and by_code["59408-5"].obs_category == "vital-signs"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"icd10": "hello"}, "icd10"),
    ({"icd10": "Z99.99"}, "label"),  # not in the bundled list and no label given
    ({"icd10": "I10", "onset": timezone.localdate() + timedelta(days=3)}, "onset"),
])
def test_problems_need_a_cim10_code(cast, kwargs, field):
    with pytest.raises(ValidationError) as exc:
        services.problem_record(patient=cast.patient, author=cast.physician, **kwargs)
    assert field in exc.value.message_dict
    assert not Problem.objects.exists()


def test_a_problem_takes_its_label_from_the_bundled_list_and_amends_with_history(cast):
    pb = services.problem_record(patient=cast.patient, author=cast.physician, icd10="e11.9")
    assert pb.icd10 == "E11.9" and "Diabète" in pb.label
    services.item_amend(item=pb, author=cast.physician, reason="résolu", status="resolved")
    history = services.item_history(Problem.objects.get(pk=pb.pk))
    assert history[0]["previous"] == {"status": "active"} and history[0]["reason"] == "résolu"


def test_allergies_no_known_allergy_and_not_recorded_differ(cast):
    from dpi.web.chart_selectors import banner

    assert banner(cast.patient.pk).allergy_state == "not_recorded"
    services.allergy_none_known(patient=cast.patient, author=cast.nurse)
    assert banner(cast.patient.pk).allergy_state == "none_known"
    services.allergy_record(patient=cast.patient, author=cast.nurse, substance="Pénicilline", severity="high")
    state = banner(cast.patient.pk)
    assert state.allergy_state == "recorded" and [a.substance for a in state.allergies] == ["Pénicilline"]
    with pytest.raises(ValidationError) as exc:
        services.allergy_none_known(patient=cast.patient, author=cast.nurse)
    assert "substance" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.allergy_record(patient=cast.patient, author=cast.nurse, substance=" ")
    assert "substance" in exc.value.message_dict


def _rx(cast, **kw):
    data = {"medication": "Amoxicilline 1 g", "dose": "1 g", "route": "oral", "frequency": "3 fois par jour",
            "start": timezone.localdate(), "duration_days": 7}
    data.update(kw)
    return services.prescription_create(patient=cast.patient, author=cast.physician, **data)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"dose": ""}, "dose"), ({"frequency": " "}, "frequency"), ({"duration_days": 0}, "duration_days"),
    ({"route": "teleport"}, "route"),
])
def test_a_prescription_needs_dose_route_frequency(cast, kwargs, field):
    with pytest.raises(ValidationError) as exc:
        _rx(cast, **kwargs)
    assert field in exc.value.message_dict
    assert not Prescription.objects.exists()


def test_administration_rules(cast):
    rx = _rx(cast)
    assert rx.end == timezone.localdate() + timedelta(days=6)
    with pytest.raises(ValidationError) as exc:
        services.administration_record(prescription=rx, author=cast.nurse, given=False,
                                       administered_at=timezone.now())
    assert "reason_not_given" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.administration_record(prescription=rx, author=cast.nurse, given=True,
                                       administered_at=timezone.now() + timedelta(hours=2))
    assert "administered_at" in exc.value.message_dict
    done = services.administration_record(prescription=rx, author=cast.nurse, given=True,
                                          administered_at=timezone.now())
    assert done.dose_given == "1 g" and done.status == "completed"
    services.prescription_stop(prescription=rx, author=cast.physician, reason="allergie cutanée")
    rx.refresh_from_db()
    assert rx.status == "stopped" and rx.version == 2
    with pytest.raises(ValidationError) as exc:
        services.administration_record(prescription=rx, author=cast.nurse, given=True,
                                       administered_at=timezone.now())
    assert "prescription" in exc.value.message_dict
    assert MedicationAdministration.objects.count() == 1


# --- web: the gate decides who charts what -------------------------------------------------------------------
def test_a_nurse_records_vitals_and_an_administration_and_the_banner_shows_a_new_allergy(cast):
    rx = _rx(cast)
    nurse = verified_client(cast.nurse)
    pid = cast.patient.pk
    now = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    r = nurse.post(f"/patients/{pid}/vitals/new/", {"effective_at": now, "pulse": "88", "spo2": "95"})
    assert r.status_code == 302, r.content[:500]
    r = nurse.post(f"/patients/{pid}/prescriptions/{rx.pk}/administrations/new/",
                   {"given": "yes", "administered_at": now})
    assert r.status_code == 302
    r = nurse.post(f"/patients/{pid}/allergies/new/", {"substance": "Iode", "severity": "high",
                                                       "verification": "confirmed"})
    assert r.status_code == 302
    page = nurse.get(f"/patients/{pid}/").content.decode()
    banner = page[page.index("data-banner"):page.index("data-banner") + 2000]
    assert "Iode" in banner
    assert "88 /min" in page
    assert audit_events(patient_id=pid, action="administer", outcome="allowed", actor_id=cast.nurse.pk)
    # A nurse does not prescribe: refused and recorded, nothing written.
    r = nurse.post(f"/patients/{pid}/prescriptions/new/", {"medication": "X", "dose": "1", "route": "oral",
                                                           "frequency": "1/j", "start": timezone.localdate()})
    assert r.status_code == 403
    assert Prescription.objects.count() == 1
    assert audit_events(patient_id=pid, action="prescribe", outcome="denied", actor_id=cast.nurse.pk)


def test_an_implausible_value_comes_back_with_its_field_and_is_recorded(cast):
    pid = cast.patient.pk
    r = verified_client(cast.nurse).post(f"/patients/{pid}/vitals/new/", {
        "effective_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "temperature": "52"})
    assert r.status_code == 400
    assert "Implausible" in r.content.decode() or "invraisemblable" in r.content.decode().lower()
    assert not Observation.objects.exists()
    assert audit_events(patient_id=pid, resource_type="observation", details__input_refused=["temperature"])


def test_a_physician_prescribes_and_prints_the_ordonnance(cast):
    pid = cast.patient.pk
    doctor = verified_client(cast.physician)
    r = doctor.post(f"/patients/{pid}/prescriptions/new/", {
        "medication": "Paracétamol 1 g", "dose": "1 g", "route": "oral", "frequency": "toutes les 6 h",
        "start": timezone.localdate().isoformat(), "duration_days": "5"})
    assert r.status_code == 302, r.content[:800]
    rx = Prescription.objects.get()
    pdf = doctor.get(f"/patients/{pid}/prescriptions/{rx.pk}/ordonnance.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert audit_events(patient_id=pid, action="print", resource_type="prescription", actor_id=cast.physician.pk)


def test_a_pharmacist_validates_and_nobody_else(cast):
    rx = _rx(cast)
    pid = cast.patient.pk
    assert verified_client(cast.nurse).post(f"/patients/{pid}/prescriptions/{rx.pk}/validate/").status_code == 403
    pharmacist = make_user("pharma.cie", Role.PHARMACIST, [cast.cardio])
    assert verified_client(pharmacist).post(f"/patients/{pid}/prescriptions/{rx.pk}/validate/").status_code == 302
    rx.refresh_from_db()
    assert rx.validated_by == pharmacist


def test_reception_and_secretaries_never_chart(cast):
    pid = cast.patient.pk
    secretary = make_user("secr.cardio", Role.MEDICAL_SECRETARY, [cast.cardio])
    for user in (cast.reception, secretary):
        client = verified_client(user)
        for url, data in ((f"/patients/{pid}/allergies/new/", {"substance": "Latex"}),
                          (f"/patients/{pid}/problems/new/", {"icd10": "I10"}),
                          (f"/patients/{pid}/vitals/new/", {"pulse": "70"})):
            assert client.post(url, data).status_code == 403, (user.username, url)
    assert not Allergy.objects.exists() and not Problem.objects.exists() and not Observation.objects.exists()


@pytest.mark.parametrize(("content", "ok"), [
    (b"%PDF-1.4\n%fake pdf\n", True),
    (b"\x89PNG\r\n\x1a\n0000", True),
    (b"<html><script>alert(1)</script></html>", False),
    (b"%PDF-1.4 /JavaScript (app.alert(1))", False),
    (b"", False),
])
def test_document_upload_sniffs_the_content(cast, content, ok):
    from django.core.files.uploadedfile import SimpleUploadedFile

    pid = cast.patient.pk
    upload = SimpleUploadedFile("scan.pdf", content, content_type="application/pdf")
    r = verified_client(cast.physician).post(f"/patients/{pid}/documents/new/", {
        "title": "Courrier", "type_code": "11490-0", "document_date": timezone.localdate().isoformat(),
        "file": upload})
    assert (r.status_code == 302) is ok, r.status_code
    assert Document.objects.exists() is ok
    if ok:
        doc = Document.objects.get()
        assert doc.sha256 and doc.media_type in {"application/pdf", "image/png"}


def test_all_results_are_reachable_by_page_and_trend(cast):
    now = timezone.now()
    Observation.objects.bulk_create([
        Observation(patient=cast.patient, author=cast.physician, label="Potassium", loinc="2823-3",
                    value=Decimal("3.900") + Decimal(i % 5) / 10, unit="mmol/L", reference_low=Decimal("3.5"),
                    reference_high=Decimal("5.0"), effective_at=now - timedelta(hours=i))
        for i in range(130)])
    client = verified_client(cast.physician)
    pid = cast.patient.pk
    page3 = client.get(f"/patients/{pid}/results/?page=3").content.decode()
    assert "3,9 mmol/L" in page3 and "3,900" not in page3
    assert page3.count('class="num"') == 30  # 130 results: pages of 50, 50, 30
    trend = client.get(f"/patients/{pid}/results/trend/?code=2823-3")
    assert trend.status_code == 200 and "<polyline" in trend.content.decode()
    assert client.get(f"/patients/{pid}/results/trend/?code=9999-9").status_code == 404
    assert verified_client(cast.other_physician).get(f"/patients/{pid}/results/").status_code in {403, 404}


def test_the_census_lists_the_units_current_inpatients(cast):
    from patients.models import Encounter

    Encounter.objects.filter(pk=cast.encounter.pk).update(bed="12B")
    page = verified_client(cast.nurse).get("/unit/").content.decode()
    assert cast.patient.display_name in page and "12B" in page
    other = verified_client(cast.other_physician).get("/unit/").content.decode()
    assert cast.patient.display_name not in other
    assert audit_events(actor_id=cast.nurse.pk, action="search", resource_type="patient")


def test_a_nurse_is_offered_the_nursing_note_by_default(cast):
    page = verified_client(cast.nurse).get(f"/patients/{cast.patient.pk}/").content.decode()
    form = page[page.index('id="new-note"'):]
    assert 'value="nursing"' in form and 'value="discharge"' not in form


def test_uncoded_results_have_their_trend_too(cast):
    now = timezone.now()
    for i, value in enumerate(("1.5", "2.5")):
        services.observation_record(patient=cast.patient, author=cast.physician, label="Dosage maison",
                                    value=Decimal(value), unit="g/L", effective_at=now - timedelta(hours=i))
    client = verified_client(cast.physician)
    page = client.get(f"/patients/{cast.patient.pk}/results/").content.decode()
    assert "Dosage maison" in page and "(2)" in page
    trend = client.get(f"/patients/{cast.patient.pk}/results/trend/", {"code": "label:Dosage maison"})
    assert trend.status_code == 200 and "2,5 g/L" in trend.content.decode()


def test_a_prescription_asked_under_another_patient_is_a_recorded_not_found(cast):
    rx = _rx(cast)
    other = make_user("x.other", Role.PHYSICIAN, [cast.cardio])
    from tests.personas import make_patient

    stranger = make_patient(birth_name="AUTRE", first_name="PAUL")
    from patients import services as ps

    ps.encounter_admit(patient=stranger, unit=cast.cardio)
    client = verified_client(other)
    assert client.get(f"/patients/{stranger.pk}/prescriptions/{rx.pk}/ordonnance.pdf").status_code == 404
    [event] = audit_events(actor_id=other.pk, resource_type="prescription", outcome="denied")
    assert event.basis == "deny:not_found" and event.patient_id == cast.patient.pk
