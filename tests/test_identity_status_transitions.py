"""RNIV status transitions, table-driven through the service, the REST API and the reception admin: the status
follows its evidence (INSi answer x identity document), doubtful and fictitious identities stay provisional, a
strict-trait edit downgrades and is recorded, the same INS is never on two files."""

from datetime import date, timedelta
from itertools import product

import pytest
from django.core.exceptions import ValidationError

from dpi.api.testing import bearer, make_api_client, patch_json, post_json
from patients import services
from patients.insi import InsiIdentity, SimulatorBackend
from patients.models import Patient
from tests.helpers import audit_events
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere

PERSON = {"birth_name": "BERNARD", "first_name": "LUC", "first_names": "LUC HENRI", "sex": "M",
          "birth_date": date(1983, 6, 9), "birthplace_insee": "33063"}
INS = "183063306300"  # 12 characters; completed below with the order digit and key
DOCUMENT = {"validation_mode": "CN", "validation_date": date(2026, 1, 5), "validated_by_name": "Accueil"}


@pytest.fixture
def in_referential():
    from patients.ins import with_key

    identity = InsiIdentity(ins=with_key(INS + "1"), oid="1.2.250.1.213.1.4.11", birth_name="BERNARD",
                            first_names="LUC HENRI", sex="M", birth_date=PERSON["birth_date"],
                            birthplace_insee="33063")
    SimulatorBackend.register(identity)
    return identity


def _evidence(document: bool, insi: bool, identity: InsiIdentity | None):
    fields = dict(PERSON)
    if document:
        fields.update(DOCUMENT)
    answer = None
    if insi:
        answer = services.insi_search(actor=None, traits=services.insi_client.InsiTraits(
            birth_name="Bernard", first_names="Luc Henri", sex="M", birth_date=PERSON["birth_date"], ins=identity.ins))
    return fields, answer


# Every requested status against every combination of evidence: allowed only when they agree.
@pytest.mark.parametrize(("requested", "document", "insi"),
                         list(product(["PROV", "RECUP", "VALI", "QUAL"], [False, True], [False, True])))
def test_a_requested_status_must_match_its_evidence(in_referential, requested, document, insi):
    fields, answer = _evidence(document, insi, in_referential)
    expected = {(False, False): "PROV", (False, True): "RECUP", (True, False): "VALI", (True, True): "QUAL"}[
        (document, insi)]
    if requested == expected:
        patient = services.patient_create(identity_status=requested, insi=answer, **fields)
        assert patient.identity_status == expected
        assert bool(patient.ins) == insi
    else:
        with pytest.raises(ValidationError) as exc:
            services.patient_create(identity_status=requested, insi=answer, **fields)
        assert "identity_status" in exc.value.message_dict
        assert not Patient.objects.exists()


@pytest.mark.parametrize(("start", "step", "end"), [
    ("PROV", "document", "VALI"),
    ("PROV", "insi", "RECUP"),
    ("VALI", "insi", "QUAL"),
    ("RECUP", "document", "QUAL"),
])
def test_each_upward_transition(cast, in_referential, start, step, end):
    fields, answer = _evidence(start == "VALI", start == "RECUP", in_referential)
    patient = services.patient_create(insi=answer, **fields)
    assert patient.identity_status == start
    if step == "document":
        patient = services.patient_document_record(actor=cast.reception, patient=patient, mode="PA")
        assert patient.validated_by == cast.reception
    else:
        patient, query = services.patient_insi_check(actor=cast.reception, patient=patient)
        assert query.outcome == "found" and query.patient_id == patient.pk
    assert patient.identity_status == end
    assert audit_events(patient_id=patient.pk, action="amend")


@pytest.mark.parametrize("status", ["VALI", "RECUP", "QUAL"])
@pytest.mark.parametrize("trait", ["birth_name", "first_names", "birthplace_insee"])
def test_editing_a_strict_trait_downgrades_and_is_recorded(cast, in_referential, status, trait):
    fields, answer = _evidence(status in {"VALI", "QUAL"}, status in {"RECUP", "QUAL"}, in_referential)
    patient = services.patient_create(insi=answer, **fields)
    new = {"birth_name": "BERNARDE", "first_names": "LUC", "birthplace_insee": "33281"}[trait]
    diff = services.patient_update(patient=patient, actor=cast.reception, **{trait: new})
    patient.refresh_from_db()
    assert patient.identity_status == "PROV"
    assert diff["identity_status"] == (status, "PROV")
    assert not patient.validation_mode and patient.insi_date is None
    [event] = audit_events(patient_id=patient.pk, basis="identity:update")
    assert event.details["downgraded"] is True and event.details["status"] == [status, "PROV"]


def test_a_contact_change_keeps_the_status(cast, in_referential):
    fields, answer = _evidence(True, True, in_referential)
    patient = services.patient_create(insi=answer, **fields)
    services.patient_update(patient=patient, actor=cast.reception, phone="0102030405")
    patient.refresh_from_db()
    assert patient.identity_status == "QUAL"


def test_retyping_the_ins_of_a_qualified_identity_voids_its_insi_part(cast, in_referential):
    from patients.ins import with_key

    fields, answer = _evidence(True, True, in_referential)
    patient = services.patient_create(insi=answer, **fields)
    services.patient_update(patient=patient, actor=cast.reception, ins=with_key(INS + "2"))
    patient.refresh_from_db()
    assert (patient.identity_status, patient.insi_date) == ("VALI", None)


@pytest.mark.parametrize("attribute", ["DOUT", "FICT"])
def test_doubtful_or_fictitious_stays_provisional_and_never_uses_insi(cast, in_referential, attribute):
    fields, answer = _evidence(True, True, in_referential)
    patient = services.patient_create(insi=answer, **fields)
    patient = services.patient_attribute_set(actor=cast.reception, patient=patient, attribute=attribute)
    assert (patient.identity_status, patient.ins, patient.validation_mode) == ("PROV", "", "")
    with pytest.raises(ValidationError):
        services.patient_insi_check(actor=cast.reception, patient=patient)
    with pytest.raises(ValidationError):
        services.patient_document_record(actor=cast.reception, patient=patient, mode="CN")
    with pytest.raises(ValidationError):
        services.patient_create(identity_attribute=attribute, **{**PERSON, "birth_name": "AUTRE"}, **DOCUMENT)


def test_insi_without_a_single_answer_changes_nothing(cast):
    patient = services.patient_create(birth_name="LEGRAND", first_name="ALICE", sex="F", birth_date=date(2001, 4, 9))
    patient, query = services.patient_insi_check(actor=cast.reception, patient=patient)
    assert (query.outcome, len(query.candidates), patient.identity_status) == ("several", 2, "PROV")
    nobody = services.patient_create(birth_name="PERSONNE", first_name="NUL", sex="M", birth_date=date(1950, 1, 1))
    nobody, query = services.patient_insi_check(actor=cast.reception, patient=nobody)
    assert (query.outcome, nobody.identity_status) == ("none", "PROV")


def test_insi_traits_replace_the_typed_ones_on_a_provisional_identity(cast):
    patient = services.patient_create(birth_name="casanova", first_name="Paul", sex="M", birth_date=date(1979, 2, 2))
    patient, query = services.patient_insi_check(actor=cast.reception, patient=patient)
    assert query.outcome == "found"
    assert (patient.identity_status, patient.first_names, patient.birthplace_insee) == (
        "RECUP", "PAUL ANTOINE", "2A004")


def test_the_same_ins_twice_is_refused(in_referential):
    fields, answer = _evidence(False, True, in_referential)
    first = services.patient_create(insi=answer, **fields)
    _fields, again = _evidence(False, True, in_referential)
    with pytest.raises(ValidationError) as exc:
        services.patient_create(insi=again, **{**PERSON, "used_name": "X"})
    assert exc.value.message_dict["ins"][0].count(first.ipp) == 1


# --- the same rules through the API and the admin ------------------------------------------------------
def test_the_api_refuses_a_qualified_identity_without_evidence(client):
    _, token = make_api_client()
    body = {**PERSON, "birth_date": "1983-06-09", "identity_status": "QUAL"}
    response = post_json(client, "/api/patients/", body, **bearer(token))
    assert response.status_code == 400 and "identity_status" in response.json()
    body.update(identity_status="VALI", validation_mode="PA", validation_date="2026-01-05",
                validated_by_name="GAM")
    response = post_json(client, "/api/patients/", body, **bearer(token))
    assert response.status_code == 201 and response.json()["identity_status"] == "VALI"
    assert response.json()["ins"] is None


def test_the_api_qualifies_through_insi_and_downgrades_on_a_trait_edit(client, in_referential):
    _, token = make_api_client()
    body = {**PERSON, "birth_date": "1983-06-09", "validation_mode": "PA", "validation_date": "2026-01-05"}
    created = post_json(client, "/api/patients/", body, **bearer(token)).json()
    answer = client.post(f"/api/patients/{created['id']}/insi/", headers=bearer(token))
    assert answer.status_code == 200, answer.content
    assert answer.json()["outcome"] == "found" and answer.json()["patient"]["identity_status"] == "QUAL"
    assert answer.json()["patient"]["ins"] == in_referential.ins
    etag = answer.headers["ETag"]
    edited = patch_json(client, f"/api/patients/{created['id']}/", {"birth_name": "BERNARDI"},
                        **bearer(token, **{"If-Match": etag}))
    assert edited.status_code == 200, edited.content
    assert (edited.json()["identity_status"], edited.json()["ins"]) == ("PROV", None)


def test_the_api_shows_probable_duplicates_on_creation(client, cast):
    _, token = make_api_client()
    body = {"birth_name": cast.patient.birth_name, "first_name": "Jean", "sex": "M",
            "birth_date": cast.patient.birth_date.isoformat()}
    created = post_json(client, "/api/patients/", body, **bearer(token)).json()
    assert created["probable_duplicates"] == [{"id": cast.patient.pk, "ipp": cast.patient.ipp,
                                               "reason": "strict_traits"}]


def test_the_admin_validates_with_the_document_and_records_who_checked(cast):
    response = verified_client(cast.reception).post("/admin/patients/patient/add/", {
        **PERSON, "birth_date": "1983-06-09", "validation_mode": "CN", "validation_date": "2026-01-05",
        "confidentiality": "normal", "ins": "", "social_security_number": "",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    patient = Patient.objects.get(birth_name="BERNARD")
    assert (patient.identity_status, patient.validated_by) == ("VALI", cast.reception)


def test_the_admin_downgrades_on_a_strict_trait_edit(cast, in_referential):
    fields, answer = _evidence(True, True, in_referential)
    patient = services.patient_create(insi=answer, **fields)
    client = verified_client(cast.reception)
    form = {**PERSON, "birth_name": "BERNARDI", "birth_date": "1983-06-09", "validation_mode": "CN",
            "validation_date": "2026-01-05", "confidentiality": "normal", "social_security_number": ""}
    response = client.post(f"/admin/patients/patient/{patient.pk}/change/", form, follow=True)
    assert response.status_code == 200
    patient.refresh_from_db()
    assert patient.identity_status == "PROV" and patient.birth_name == "BERNARDI"
    assert "Statut de l’identité passé" in response.content.decode()


def test_the_admin_picker_tells_homonyms_apart(cast):
    twin = services.patient_create(birth_name=cast.patient.birth_name, first_name="JEAN", sex="M",
                                   birth_date=cast.patient.birth_date - timedelta(days=3650))
    client = verified_client(cast.reception)
    response = client.get("/admin/autocomplete/", {"term": cast.patient.birth_name, "app_label": "patients",
                                                   "model_name": "encounter", "field_name": "patient"})
    texts = [r["text"] for r in response.json()["results"]]
    assert len(texts) == 2 and len(set(texts)) == 2
    assert any(twin.birth_date.strftime("%d/%m/%Y") in t and "provisoire" in t.lower() for t in texts), texts
