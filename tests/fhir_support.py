"""A small fixed record for FHIR search tests: three patients, and for the first one encounters, observations,
documents, allergies, problems and prescriptions at known dates; access events on the third one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.utils import timezone

from access.policy import Role
from audit.services import event_record
from dpi import services as clinical_services
from dpi.models import Allergy, Document, MedicationAdministration, Prescription, Problem
from patients import services as patient_services
from patients.models import CareUnit, Encounter
from tests.personas import make_user


def at(text: str) -> datetime:
    """A local (Europe/Paris) date-time."""
    return timezone.make_aware(datetime.fromisoformat(text))


@dataclass
class Seed:
    a: object
    b: object
    c: object
    ids: dict[str, list[int]] = field(default_factory=dict)
    today: date = field(default_factory=timezone.localdate)


def _dated(model, pk: int, when: str) -> None:
    # Test set-up only: put rows at known dates (created_at is auto_now_add).
    model.objects.filter(pk=pk).update(created_at=at(when))


def seed() -> Seed:
    unit = CareUnit.objects.create(code="fhir-unit", name="Médecine (FHIR)")
    other = CareUnit.objects.create(code="fhir-consult", name="Consultations (FHIR)")
    author = make_user("dr.seed", Role.PHYSICIAN, [unit])
    a = patient_services.patient_create(birth_name="ALPHA", first_name="Anne", sex="F", birth_date=date(1950, 3, 15))
    b = patient_services.patient_create(
        birth_name="BETA", used_name="GAMMA", first_name="Bruno", sex="M", birth_date=date(1985, 7, 1)
    )
    c = patient_services.patient_create(
        birth_name="ALPHONSE", first_name="Claire", sex="F", birth_date=date(2000, 1, 1)
    )
    s = Seed(a, b, c)
    e1 = patient_services.encounter_admit(patient=a, unit=unit, start=at("2026-01-10T10:00"))
    patient_services.encounter_discharge(encounter=e1, end=at("2026-01-15T12:00"))
    e2 = patient_services.encounter_admit(
        patient=a, unit=other, start=at("2026-02-03T09:00"), kind=Encounter.Kind.CONSULTATION
    )
    s.ids["Encounter"] = [e1.pk, e2.pk]
    s.ids["Observation"] = [
        clinical_services.observation_record(
            patient=a,
            author=author,
            label=label,
            loinc=loinc,
            value=Decimal(value),
            effective_at=at(when),
            obs_category=category,
        ).pk
        for label, loinc, value, when, category in (
            ("Glucose", "2345-7", "5.1", "2026-01-11T08:00", "laboratory"),
            ("CRP", "1988-5", "3", "2026-01-12T08:00", "laboratory"),
            ("Fréquence cardiaque", "8867-4", "72", "2026-02-03T09:30", "vital-signs"),
        )
    ]
    s.ids["DocumentReference"] = []
    for title, type_code, when in (
        ("Lettre de liaison", "11490-0", "2026-03-01T10:00"),
        ("Biologie", "11502-2", "2026-03-05T10:00"),
        ("Courrier scanné", "", "2026-04-01T10:00"),
    ):
        doc = clinical_services.document_add(
            patient=a, author=author, title=title, content=f"%PDF-1.4 {title}".encode(), type_code=type_code
        )
        _dated(Document, doc.pk, when)
        s.ids["DocumentReference"].append(doc.pk)
    s.ids["AllergyIntolerance"] = []
    for substance, severity, when in (
        ("Pénicilline", "high", "2026-01-10T10:00"),
        ("Latex", "low", "2026-05-01T10:00"),
    ):
        row = Allergy.objects.create(patient=a, author=author, substance=substance, severity=severity)
        _dated(Allergy, row.pk, when)
        s.ids["AllergyIntolerance"].append(row.pk)
    s.ids["Condition"] = []
    for code, label, status, onset, when in (
        ("I10", "Hypertension essentielle", "active", date(2019, 6, 1), "2026-01-10T10:00"),
        ("E11", "Diabète de type 2", "resolved", date(2010, 3, 15), "2026-01-20T10:00"),
        ("J45", "Asthme", "active", None, "2026-02-01T10:00"),
    ):
        row = Problem.objects.create(patient=a, author=author, icd10=code, label=label, status=status, onset=onset)
        _dated(Problem, row.pk, when)
        s.ids["Condition"].append(row.pk)
    s.ids["MedicationRequest"] = []
    for medication, status, when in (
        ("Amlodipine 5 mg", "active", "2026-01-10T10:00"),
        ("Metformine 500 mg", "completed", "2026-01-20T10:00"),
        ("Amoxicilline 1 g", "stopped", "2026-03-01T10:00"),
    ):
        row = Prescription.objects.create(
            patient=a,
            author=author,
            medication=medication,
            instructions="1 cp/j",
            start=date(2026, 1, 1),
            status=status,
        )
        _dated(Prescription, row.pk, when)
        s.ids["MedicationRequest"].append(row.pk)
    # MedicationAdministration of the active prescription: given 2026-01-11 08:00, not given 2026-01-12 08:00.
    s.ids["MedicationAdministration"] = [
        MedicationAdministration.objects.create(
            patient=a, author=author, prescription_id=s.ids["MedicationRequest"][0], status=status,
            administered_at=at(when), dose_given="1 cp" if status == "completed" else "",
            reason_not_given="" if status == "completed" else "patient à jeun",
        ).pk
        for status, when in (("completed", "2026-01-11T08:00"), ("not-done", "2026-01-12T08:00"))
    ]
    one = User.objects.create_user("agent.one")
    two = User.objects.create_user("agent.two")
    s.ids["AuditEvent"] = [
        event_record(
            actor=one,
            action=action,
            outcome=outcome,
            patient_id=c.pk,
            category="administrative",
            resource_type="patient",
            basis=basis,
            independent=False,
        ).pk
        for action, outcome, basis in (("view", "allowed", "role"), ("create", "allowed", "role"))
    ] + [
        event_record(
            actor=two,
            action="search",
            outcome="denied",
            patient_id=c.pk,
            category="administrative",
            resource_type="patient",
            basis="deny:matrix",
            independent=False,
        ).pk
    ]
    return s
