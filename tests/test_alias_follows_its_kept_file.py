"""A file merged into another (an alias: the same person, its IPP resolving to the kept file) carries the kept
file's confidentiality whenever it changes, not only at the merge: a file made restricted after its merge takes its
aliases with it, so whoever may not know the person may not find them under the old file's id, IPP or name either.
Lowered by the DPO, the aliases follow; an unmerge gives the old file back its own setting."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from access import services as access_services
from access.policy import Role
from dpi.api.testing import verified_login
from patients import services as patient_services
from patients.models import CareUnit, Patient
from tests.helpers import audit_events
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db

NAME, MISSING = "ZQALIASNOM", 900_000_000


def _session(user) -> Client:
    client = Client()
    verified_login(client, user)
    return client


@pytest.fixture
def files():
    """Two files of one person, both normal, the second merged into the first by the ADT feed; then a chain: a
    third file merged into the second before the second was merged (an alias of an alias)."""
    older = make_patient(birth_name=NAME, first_name="Irene", sex="F", identity_status="PROV")
    kept = make_patient(birth_name=NAME, first_name="Irene", sex="F", birth_date=older.birth_date,
                        identity_status="PROV")
    oldest = make_patient(birth_name=NAME, first_name="Irene", sex="F", birth_date=older.birth_date,
                          identity_status="PROV")
    unit = CareUnit.objects.create(code="zqst", name="Séjours")
    for patient in (older, oldest):  # a past stay each: a merge moves rows
        patient_services.encounter_discharge(encounter=patient_services.encounter_admit(
            patient=patient, unit=unit, start=timezone.now() - timedelta(days=90)),
            end=timezone.now() - timedelta(days=89))
    patient_services.patient_merge(actor=None, system_task="hl7:A40:zq1", kept=older, merged=oldest, reason="doublon")
    patient_services.patient_merge(actor=None, system_task="hl7:A40:zq2", kept=kept, merged=older, reason="doublon")
    outsider = make_user("zq.alias.phys", Role.PHYSICIAN, [CareUnit.objects.create(code="zqal", name="Ailleurs")])
    return {"kept": kept, "aliases": [older, oldest], "outsider": outsider}


def _answers(client: Client, path: str) -> tuple[int, str]:
    response = client.get(path, HTTP_ACCEPT="application/json")
    return response.status_code, response.content.decode()


def test_a_file_restricted_after_its_merge_hides_its_aliases(files):
    client = _session(files["outsider"])
    for alias in files["aliases"]:
        assert _answers(client, f"/api/patients/{alias.pk}/")[0] == 200  # a normal file: any clinician knows it
    patient_services.patient_update(patient=files["kept"], confidentiality="restricted", restriction_reason="vip")
    for alias in files["aliases"]:
        alias.refresh_from_db()
        assert (alias.confidentiality, alias.restriction_reason) == ("restricted", "vip")
        for path in ("/api/patients/{}/", "/fhir/Patient/{}"):
            hidden, missing = _answers(client, path.format(alias.pk)), _answers(client, path.format(MISSING))
            assert hidden[0] == missing[0] == 404, (path, hidden)
            assert NAME not in hidden[1]
        for search in (f"/api/patients/?family={NAME}", f"/fhir/Patient?family={NAME}",
                       f"/api/patients/?ipp={alias.ipp}", f"/fhir/Patient?identifier={alias.ipp}"):
            status, body = _answers(client, search)
            found = json.loads(body) if status == 200 else {}
            rows = found.get("entry") or found.get("results") or []  # the bundle's links repeat the query
            assert status in (200, 400) and not rows, (search, status, body[:300])
    followed = audit_events(basis="identity:alias_confidentiality")
    assert {e.patient_id for e in followed} == {a.pk for a in files["aliases"]}
    assert all(e.details["confidentiality"] == ["normal", "restricted"] for e in followed)


def test_aliases_follow_the_dpo_lowering_and_an_unmerge_restores_their_own(files):
    kept, (older, oldest) = files["kept"], files["aliases"]
    patient_services.patient_update(patient=kept, confidentiality="restricted", restriction_reason="vip")
    dpo = make_user("zq.alias.dpo", Role.DPO)
    access_services.patient_confidentiality_lower(actor=dpo, patient=Patient.objects.get(pk=kept.pk),
                                                  reason="fin de séjour")
    assert set(Patient.objects.filter(pk__in=[older.pk, oldest.pk]).values_list("confidentiality", flat=True)) \
        == {"normal"}
    patient_services.patient_update(patient=kept, confidentiality="restricted", restriction_reason="staff")
    patient_services.patient_unmerge(actor=None, system_task="hl7:A37:zq", merge=patient_services.merge_of(older),
                                     reason="erreur")
    older.refresh_from_db()
    oldest.refresh_from_db()
    assert (older.confidentiality, older.restriction_reason) == ("normal", "")  # its own setting again
    assert oldest.confidentiality == "normal"  # the alias of the unmerged file follows it
    kept.refresh_from_db()
    assert kept.confidentiality == "restricted"


def test_a_merge_into_a_restricted_file_takes_the_merged_file_s_own_aliases(files):
    vip = make_patient(birth_name=NAME, first_name="Irene", sex="F", birth_date=files["kept"].birth_date,
                       identity_status="PROV", confidentiality="restricted", restriction_reason="vip")
    patient_services.patient_merge(actor=None, system_task="hl7:A40:zq3", kept=vip, merged=files["kept"],
                                   reason="doublon")
    levels = Patient.objects.filter(pk__in=[files["kept"].pk, *[a.pk for a in files["aliases"]]]) \
        .values_list("confidentiality", flat=True)
    assert set(levels) == {"restricted"}
    body = json.dumps([e.details for e in audit_events(basis="identity:alias_confidentiality")])
    assert NAME not in body
