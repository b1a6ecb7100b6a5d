"""Only the identity-vigilance cell merges files: through the reception admin and the REST API, refused (and
recorded) for anyone else; the merged IPP keeps leading to the kept file."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from access.policy import IDENTITY_VIGILANCE_GROUP
from dpi.api.testing import bearer, make_api_client, post_json
from patients import services
from patients.models import Encounter, IdentityMerge, Patient
from tests.helpers import audit_events
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere


@pytest.fixture
def duplicate(cast):
    dup = make_patient(birth_name=cast.patient.birth_name, first_name="Jean", birth_date=cast.patient.birth_date,
                       identity_status="PROV")
    start = timezone.now() - timedelta(days=40)
    enc = services.encounter_admit(patient=dup, unit=cast.other_unit, start=start)
    services.encounter_discharge(encounter=enc, end=start + timedelta(days=1))
    return dup


def _vigilance(user):
    user.groups.add(Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)[0])


def _merge_form(cast, duplicate, kept):
    return {"action": "merge", "_selected_action": [cast.patient.pk, duplicate.pk], "apply": "1",
            "kept": kept.pk, "reason": "doublon créé aux urgences"}


def test_reception_without_the_group_cannot_merge_in_the_admin(cast, duplicate):
    client = verified_client(cast.reception)
    response = client.post("/admin/patients/patient/", _merge_form(cast, duplicate, cast.patient), follow=True)
    assert "Seule la cellule d’identitovigilance" in response.content.decode()
    assert not IdentityMerge.objects.exists()


def test_the_identity_vigilance_cell_merges_in_the_admin(cast, duplicate):
    _vigilance(cast.reception)
    client = verified_client(cast.reception)
    page = client.post("/admin/patients/patient/", {"action": "merge",
                                                    "_selected_action": [cast.patient.pk, duplicate.pk]})
    assert page.status_code == 200 and "Dossier à conserver" in page.content.decode()
    response = client.post("/admin/patients/patient/", _merge_form(cast, duplicate, cast.patient), follow=True)
    assert response.status_code == 200
    merge = IdentityMerge.objects.get()
    assert (merge.kept_patient_id, merge.merged_id, merge.actor) == (cast.patient.pk, duplicate.pk, cast.reception)
    assert Encounter.objects.filter(patient=cast.patient).count() == 2
    assert services.patient_by_ipp(duplicate.ipp) == cast.patient
    # The merged file no longer appears in the patient pickers.
    picker = client.get("/admin/autocomplete/", {"term": cast.patient.birth_name, "app_label": "patients",
                                                 "model_name": "encounter", "field_name": "patient"}).json()
    assert [r["id"] for r in picker["results"]] == [str(cast.patient.pk)]


def test_the_api_merges_only_for_the_identity_vigilance_cell(cast, duplicate, client):
    app, token = make_api_client()
    response = post_json(client, f"/api/patients/{cast.patient.pk}/merge/",
                         {"merged": duplicate.pk, "reason": "A40"}, **bearer(token))
    assert response.status_code == 403
    assert audit_events(basis="deny:identity_vigilance")
    assert not Patient.objects.get(pk=duplicate.pk).is_merged


def test_the_api_merge_for_a_member_of_the_cell(cast, duplicate):
    # In the member's own verified session (a client acting on behalf of her is refused: its token is not her
    # second factor; tests/test_privileged_roles_need_a_second_factor.py).
    _vigilance(cast.reception)
    client = verified_client(cast.reception)
    response = post_json(client, f"/api/patients/{cast.patient.pk}/merge/",
                         {"merged": duplicate.pk, "reason": "doublon"})
    assert response.status_code == 200, response.content
    assert response.json()["kept"] == cast.patient.pk
    assert client.get(f"/api/patients/{duplicate.pk}/").json()["merged_into"] == cast.patient.ipp


def _cell_client(cast):
    """A member of the cell in her own verified session (a token is nobody's second factor: a service account
    given the identity-vigilance group is refused, tests/test_api_token_of_a_privileged_account_is_refused.py)."""
    _vigilance(cast.reception)
    return verified_client(cast.reception)


def test_the_cell_undoes_a_merge_through_the_api(cast, duplicate, client):
    cell = _cell_client(cast)
    merged = post_json(cell, f"/api/patients/{cast.patient.pk}/merge/", {"merged": duplicate.pk, "reason": "doublon"})
    assert merged.status_code == 200, merged.content
    outsider, other_token = make_api_client()
    refused = post_json(client, f"/api/patients/{duplicate.pk}/unmerge/", {"reason": "erreur"},
                        **bearer(other_token))
    assert refused.status_code == 403
    undone = post_json(cell, f"/api/patients/{duplicate.pk}/unmerge/", {"reason": "deux personnes"})
    assert undone.status_code == 200, undone.content
    assert undone.json()["undone_at"] and not Patient.objects.get(pk=duplicate.pk).is_merged
    assert Encounter.objects.filter(patient=duplicate).count() == 1
    again = post_json(cell, f"/api/patients/{duplicate.pk}/unmerge/", {"reason": "encore"})
    assert again.status_code == 400


def test_the_cell_splits_a_collision_through_the_api(cast, duplicate, client):
    cell = _cell_client(cast)
    stay = Encounter.objects.get(patient=duplicate)
    body = {"reason": "deux personnes dans un dossier", "encounters": [stay.pk],
            "identity": {"birth_name": "AUTRE", "first_name": "Paul", "sex": "M",
                         "birth_date": duplicate.birth_date.isoformat()}}
    _app, other_token = make_api_client()
    assert post_json(client, f"/api/patients/{duplicate.pk}/split/", body, **bearer(other_token)).status_code == 403
    response = post_json(cell, f"/api/patients/{duplicate.pk}/split/", body)
    assert response.status_code == 201, response.content
    other = Patient.objects.get(pk=response.json()["id"])
    assert (other.birth_name, other.identity_status) == ("AUTRE", "PROV")
    assert list(Encounter.objects.filter(patient=other)) == [stay]
    assert audit_events(patient_id=duplicate.pk, basis="identity:split")


def test_the_cell_undoes_a_merge_in_the_admin(cast, duplicate):
    services.patient_merge(actor=cast.reception, kept=cast.patient, merged=duplicate, reason="doublon")
    form = {"action": "unmerge", "_selected_action": [duplicate.pk]}
    refused = verified_client(cast.reception).post("/admin/patients/patient/", {**form, "apply": "1",
                                                                                "reason": "erreur"}, follow=True)
    assert "Seule la cellule d’identitovigilance" in refused.content.decode()
    assert Patient.objects.get(pk=duplicate.pk).is_merged
    _vigilance(cast.reception)
    client = verified_client(cast.reception)
    page = client.post("/admin/patients/patient/", form)
    assert page.status_code == 200 and "Annuler la fusion" in page.content.decode()
    done = client.post("/admin/patients/patient/", {**form, "apply": "1", "reason": "deux personnes"}, follow=True)
    assert done.status_code == 200
    assert not Patient.objects.get(pk=duplicate.pk).is_merged
    assert IdentityMerge.objects.get().undone_by == cast.reception
    assert Encounter.objects.filter(patient=duplicate).count() == 1
