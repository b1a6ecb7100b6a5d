"""Merge (identity vigilance, HL7 A40): every row of the merged file moves to the kept one, nothing is lost or
duplicated, care grants and audit events follow, the merged IPP stays as an alias, and the merge is undone."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from access import gate
from access.models import CareGrant, CareTeamMembership, PatientObjection
from access.policy import Action, Category
from audit.models import AccessEvent
from audit.selectors import patient_access_report
from audit.services import checkpoint_sign
from audit.verification import chain_verify
from dpi import services as dpi_services
from dpi.models import Amendment, ClinicalNote, Observation
from patients import services
from patients.models import Appointment, Encounter, IdentityMerge, Patient
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere


def _rows(patient_id):
    return {
        "encounters": Encounter.objects.filter(patient_id=patient_id).count(),
        "appointments": Appointment.objects.filter(patient_id=patient_id).count(),
        "notes": ClinicalNote.objects.filter(patient_id=patient_id).count(),
        "observations": Observation.objects.filter(patient_id=patient_id).count(),
        "amendments": Amendment.objects.filter(patient_id=patient_id).count(),
        "memberships": CareTeamMembership.objects.filter(patient_id=patient_id).count(),
        "objections": PatientObjection.objects.filter(patient_id=patient_id).count(),
    }


@pytest.fixture
def two_files(cast):
    """The same person registered twice: the second file holds a past stay, notes, results and an appointment."""
    kept = cast.patient
    dup = make_patient(birth_name=kept.birth_name, first_name=kept.first_name, birth_date=kept.birth_date,
                       identity_status="PROV")
    start = timezone.now() - timedelta(days=30)
    enc = services.encounter_admit(patient=dup, unit=cast.other_unit, start=start)
    services.encounter_discharge(encounter=enc, end=start + timedelta(days=2))
    services.appointment_book(patient=dup, unit=cast.other_unit, practitioner=cast.other_physician,
                              start=timezone.now() + timedelta(days=3), end=timezone.now() + timedelta(days=3, hours=1))
    note = dpi_services.note_create(patient=dup, author=cast.other_physician, encounter=enc, body="Pneumopathie")
    dpi_services.item_amend(item=note, author=cast.other_physician, reason="précision", body="Pneumopathie droite")
    dpi_services.observation_record(patient=dup, author=cast.other_physician, label="CRP", effective_at=start,
                                    value=12, unit="mg/L")
    CareTeamMembership.objects.create(patient=dup, user=cast.nurse, end=timezone.now() + timedelta(days=5),
                                      reason="avis")
    PatientObjection.objects.create(patient=dup, professional=cast.dim, reason="voisin")
    return kept, dup


def test_a_probable_duplicate_was_flagged_at_creation(two_files):
    kept, dup = two_files
    assert [(p.pk, why) for p, why in services.probable_duplicates(dup)] == [(kept.pk, "strict_traits")]
    assert dup.duplicate_suspicions.filter(candidate_id=kept.pk).exists()


def test_merge_moves_every_row_and_keeps_the_alias(cast, two_files):
    kept, dup = two_files
    before_kept, before_dup = _rows(kept.pk), _rows(dup.pk)
    events_before = AccessEvent.objects.filter(patient_id=dup.pk).count()
    merge = services.patient_merge(actor=cast.reception, kept=kept, merged=dup, reason="doublon à l'accueil")
    after_kept, after_dup = _rows(kept.pk), _rows(dup.pk)
    assert after_kept == {k: before_kept[k] + before_dup[k] for k in before_kept}  # nothing lost, nothing twice
    assert set(after_dup.values()) == {0}
    dup.refresh_from_db()
    assert dup.is_merged and services.patient_by_ipp(dup.ipp) == kept
    assert services.merged_into(dup) == kept
    # The merged file's own trail is untouched; both files got the merge event.
    assert AccessEvent.objects.filter(patient_id=dup.pk).count() == events_before + 1
    assert AccessEvent.objects.filter(patient_id=kept.pk, basis="identity:merge_kept",
                                      resource_id=str(merge.pk)).count() == 1
    # Care grants follow the moved stay, appointment and membership.
    assert CareGrant.objects.filter(content_object=kept, user=cast.other_physician).exists()
    assert CareGrant.objects.filter(content_object=kept, user=cast.nurse).exists()
    assert not CareGrant.objects.filter(content_object=dup).exists()
    # A merged file takes no new data.
    with pytest.raises(ValidationError):
        dpi_services.note_create(patient=dup, author=cast.physician, body="x")


def test_unmerge_puts_everything_back(cast, two_files):
    kept, dup = two_files
    before_kept, before_dup = _rows(kept.pk), _rows(dup.pk)
    merge = services.patient_merge(actor=cast.reception, kept=kept, merged=dup, reason="doublon")
    services.patient_unmerge(actor=cast.reception, merge=merge, reason="erreur : deux personnes")
    assert (_rows(kept.pk), _rows(dup.pk)) == (before_kept, before_dup)
    dup.refresh_from_db()
    assert not dup.is_merged and services.patient_by_ipp(dup.ipp) == dup
    assert CareGrant.objects.filter(content_object=dup, user=cast.other_physician).exists()
    assert not CareGrant.objects.filter(content_object=kept, user=cast.other_physician).exists()
    with pytest.raises(ValidationError):
        services.patient_unmerge(actor=cast.reception, merge=merge, reason="encore")


def test_unmerge_is_refused_after_the_period(cast, two_files, settings):
    kept, dup = two_files
    merge = services.patient_merge(actor=cast.reception, kept=kept, merged=dup, reason="doublon")
    IdentityMerge.objects.filter(pk=merge.pk).update(
        merged_at=timezone.now() - timedelta(days=settings.DPI_IDENTITY_UNMERGE_DAYS + 1))
    with pytest.raises(ValidationError):
        services.patient_unmerge(actor=cast.reception, merge=merge, reason="trop tard")


def test_a_system_merge_names_its_task(cast, two_files):
    kept, dup = two_files
    with pytest.raises(ValueError):
        services.patient_merge(actor=None, kept=kept, merged=dup, reason="A40")
    merge = services.patient_merge(actor=None, kept=kept, merged=dup, reason="A40", system_task="hl7:A40:MSG1")
    assert merge.system_task == "hl7:A40:MSG1"
    assert AccessEvent.objects.get(patient_id=kept.pk, basis="identity:merge_kept").details["system_task"] == \
        "hl7:A40:MSG1"


@pytest.mark.parametrize("change", ["birth_date", "ins"])
def test_two_different_people_are_not_merged(cast, change):
    other = make_patient(birth_date=cast.patient.birth_date - timedelta(days=400 if change == "birth_date" else 0))
    with pytest.raises(ValidationError):
        services.patient_merge(actor=cast.reception, kept=cast.patient, merged=other, reason="doublon")
    assert not Patient.objects.get(pk=other.pk).is_merged


def test_a_collision_is_split(cast, two_files):
    kept, dup = two_files
    merge = services.patient_merge(actor=cast.reception, kept=kept, merged=dup, reason="doublon")
    moved_stay = merge.moved["patients.encounter.patient"][0]
    other = services.patient_split(
        actor=cast.reception, patient=kept, encounters=[moved_stay], reason="deux personnes dans un dossier",
        identity={"birth_name": "AUTRE", "first_name": "Paul", "sex": "M", "birth_date": kept.birth_date})
    assert list(Encounter.objects.filter(patient=other).values_list("pk", flat=True)) == [moved_stay]
    note = ClinicalNote.objects.get(encounter_id=moved_stay)
    assert note.patient_id == other.pk
    assert Amendment.objects.get(resource_type="clinicalnote", resource_id=note.pk).patient_id == other.pk
    assert Encounter.objects.filter(patient=kept).count() == 1  # the kept person's own stay stays


# --- access rights and access traces follow the merge, and come back with the unmerge --------------------------
def _sees(user, patient) -> bool:
    return gate.decide(user, patient_id=patient.pk, category=Category.MEDICAL, action=Action.VIEW).allowed


def _trace(user, patient, marker: str, category=Category.MEDICAL) -> int:
    """An access recorded under this file's id (allowed: a refusal is written on another connection)."""
    assert gate.authorize(user, patient_id=patient.pk, category=category, action=Action.VIEW,
                          resource_type="clinicalnote", resource_id=marker).allowed
    return AccessEvent.objects.get(resource_id=marker).pk


def _report(patient) -> set[str]:
    return {e.resource_id for e in patient_access_report(patient_id=patient.pk)}


def test_each_care_team_reaches_the_kept_file_and_goes_back_after_an_unmerge(cast, two_files):
    from patients.models import Patient as P

    kept, dup = two_files
    P.objects.filter(pk=dup.pk).update(confidentiality="restricted", restriction_reason="vip")
    dup.refresh_from_db()
    before = {(u, p): _sees(u, p) for u in (cast.physician, cast.other_physician, cast.outsider, cast.nurse)
              for p in (kept, dup)}
    assert before[cast.physician, kept] and not before[cast.physician, dup]
    assert before[cast.other_physician, dup] and not before[cast.other_physician, kept]
    merge = services.patient_merge(actor=cast.reception, kept=kept, merged=dup, reason="doublon")
    # Both care teams reach the kept file; nobody else does.
    assert _sees(cast.physician, kept) and _sees(cast.other_physician, kept) and _sees(cast.nurse, kept)
    assert not _sees(cast.outsider, kept)
    # The stricter confidentiality followed the data: the VIP's record did not become findable by everyone.
    kept.refresh_from_db()
    assert (kept.confidentiality, kept.restriction_reason) == ("restricted", "vip")
    assert "restricted_patient" in gate.decide(cast.physician, patient_id=kept.pk, category=Category.MEDICAL,
                                               action=Action.VIEW).flags
    from dpi.api.serializers import MergeResultSerializer

    assert set(MergeResultSerializer(merge).data["moved"]) == {k for k in merge.moved if not k.startswith("_")}
    services.patient_unmerge(actor=cast.reception, merge=merge, reason="deux personnes")
    after = {(u, p): _sees(u, p) for u in (cast.physician, cast.other_physician, cast.outsider, cast.nurse)
             for p in (kept, dup)}
    assert after == before
    kept.refresh_from_db()
    assert (kept.confidentiality, kept.restriction_reason) == ("normal", "")


def test_the_kept_file_report_holds_the_merged_file_traces_and_the_chain_verifies(cast, two_files):
    from dpi.compliance.export import record_collect
    from tests.test_audit_support import chain_now

    kept, dup = two_files
    _trace(cast.other_physician, dup, "before-on-dup")
    _trace(cast.physician, kept, "before-on-kept")
    fields = ("pk", "patient_id", "basis", "resource_id")
    dup_events = set(AccessEvent.objects.filter(patient_id=dup.pk).values_list(*fields))
    merge = services.patient_merge(actor=cast.reception, kept=kept, merged=dup, reason="doublon")
    _trace(cast.reception, dup, "after-on-dup", Category.ADMINISTRATIVE)  # through the old file's id
    _trace(cast.other_physician, kept, "after-on-kept")
    both = {"before-on-dup", "before-on-kept", "after-on-dup", "after-on-kept"}
    # The kept file's report (DPO download and the patient's own copy) holds both trails, before and after;
    # asked for the merged file's id, the same report.
    assert both <= _report(kept) and _report(dup) == _report(kept)
    accesses = record_collect(kept).accesses
    assert len(accesses) == len(patient_access_report(patient_id=kept.pk))
    # The merged file's trail was not rewritten: its events keep the id they were written with.
    assert dup_events <= set(AccessEvent.objects.filter(patient_id=dup.pk).values_list(*fields))
    services.patient_unmerge(actor=cast.reception, merge=merge, reason="deux personnes")
    _trace(cast.other_physician, dup, "unmerged-on-dup")
    # Two people again: each report keeps its own trail, and the other file's only while they were one.
    assert {"before-on-kept", "after-on-kept", "after-on-dup"} <= _report(kept)
    assert not {"before-on-dup", "unmerged-on-dup"} & _report(kept)
    assert {"before-on-dup", "after-on-dup", "after-on-kept", "unmerged-on-dup"} <= _report(dup)
    assert "before-on-kept" not in _report(dup)
    chain_now()
    checkpoint_sign()  # as beat does every period: the verifier holds the chain against a signed checkpoint
    run = chain_verify(seal=False, record=False, alert=False)
    assert run.ok, run.message


def test_the_dpo_downloads_the_kept_file_report_with_the_merged_file_events(cast, two_files):
    import csv
    import io
    import time

    from django.urls import reverse

    from access.authn.services import FRESH_OTP_AT
    from tests.test_audit_support import verified_client

    kept, dup = two_files
    on_dup = _trace(cast.other_physician, dup, "before-on-dup")
    services.patient_merge(actor=cast.reception, kept=kept, merged=dup, reason="doublon")
    client = verified_client(cast.dpo)
    session = client.session
    session[FRESH_OTP_AT] = time.time()
    session.save()
    response = client.get(reverse("audit:patient_access_report", kwargs={"patient_id": kept.pk, "fmt": "csv"}))
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert str(on_dup) in {r["event"] for r in rows}
    log = client.get("/dpo/access-log/", {"patient": kept.ipp})
    assert log.status_code == 200 and f'href="?patient={dup.pk}"' in log.content.decode()  # the merged file's rows
