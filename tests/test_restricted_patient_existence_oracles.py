"""A write naming a restricted patient that the principal may not know answers exactly as for a missing id, before
doing anything else, and no write answer or error echoes data the principal could not read (attack review H3, H4,
H10, H11: tests/test_zz_attack_existence_oracle.py and test_zz_attack_write_echo.py of the attack branch)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.policy import Role
from dpi.api.common import etag_of
from dpi.api.testing import make_api_client
from patients import services as patient_services
from patients.models import CareUnit, DuplicateSuspicion, Patient
from tests.helpers import audit_events
from tests.personas import make_patient, make_user
from tests.ui_support import _model_backend

pytestmark = pytest.mark.django_db

VIP_NAME, VIP_CITY, VIP_IPP = "ZQPURPOSENOM", "ZQVILLE", "ZQPURP0001"


@pytest.fixture
def world():
    psy = CareUnit.objects.create(code="psy", name="Psychiatrie fermée")
    mine = CareUnit.objects.create(code="u2", name="U2")
    vip = make_patient(birth_name=VIP_NAME, first_name="Marqueur", sex="F", confidentiality="restricted",
                       restriction_reason="vip", ipp=VIP_IPP, city=VIP_CITY)
    patient_services.encounter_admit(patient=vip, unit=psy)
    make_user("n.zz", Role.NURSE, [mine])
    return {"vip": vip, "missing": vip.pk + 1000, "mine": mine}


def _session(user) -> Client:
    c = Client()
    c.force_login(user, backend=_model_backend())
    s = c.session
    s[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.create(user=user, name="t", confirmed=True).persistent_id
    s.save()
    return c


def _api() -> Client:
    _, token = make_api_client(name="purp")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def _call(c: Client, method: str, path: str, body: dict, **headers) -> tuple[int, str]:
    r = getattr(c, method)(path, data=json.dumps(body), content_type="application/json",
                           HTTP_ACCEPT="application/json", **headers)
    return r.status_code, r.content.decode()


def _markers(vip: Patient, text: str) -> list[str]:
    return [x for x in (VIP_NAME, VIP_CITY, vip.ins, VIP_IPP, "Psychiatrie", vip.birth_date.strftime("%d/%m/%Y"))
            if x and x in text]


# --- H3 -----------------------------------------------------------------------------------------------------
def test_care_team_membership_create_answers_a_restricted_patient_as_a_missing_one(world):
    c = _session(make_user("p.zz", Role.PHYSICIAN, [world["mine"]]))
    body = {"user": "n.zz", "end": "2030-01-01T00:00:00Z", "reason": "avis"}
    hidden = _call(c, "post", "/api/care-team-memberships/", {**body, "patient": world["vip"].pk})
    missing = _call(c, "post", "/api/care-team-memberships/", {**body, "patient": world["missing"]})
    assert hidden == missing
    # Even with a username that does not exist: the patient is checked first.
    bad_user = {**body, "user": "nobody.zz"}
    assert (_call(c, "post", "/api/care-team-memberships/", {**bad_user, "patient": world["vip"].pk})
            == _call(c, "post", "/api/care-team-memberships/", {**bad_user, "patient": world["missing"]}))
    denied = audit_events(patient_id=world["vip"].pk, outcome="denied", resource_type="careteammembership")
    assert denied and {e.basis for e in denied} == {"deny:not_visible"}


# --- H4 -----------------------------------------------------------------------------------------------------
def test_reception_admission_by_numeric_id_does_not_tell_the_unit_or_date_of_a_restricted_stay(world):
    c = _session(make_user("r.zz", Role.RECEPTION))
    status, text = _call(c, "post", "/api/encounters/", {"patient": world["vip"].pk, "unit": "u2"})
    assert status == 400 and not _markers(world["vip"], text), text
    assert "psy" not in text.lower()


def test_admission_before_birth_does_not_tell_a_restricted_birth_date(world):
    vip = world["vip"]
    for e in vip.encounters.all():
        patient_services.encounter_discharge(encounter=e)
    start = (vip.birth_date - timedelta(days=3)).isoformat() + "T10:00:00Z"
    status, text = _call(_api(), "post", "/api/encounters/", {"patient": vip.pk, "unit": "u2", "start": start})
    assert status == 400 and not _markers(vip, text), text


def test_admission_error_says_why_without_naming_the_stay(world):
    """A normal patient: the refusal says a stay is in progress, for anyone, without its unit or date (the same
    text reaches HL7 senders and API clients: tests/test_errors_never_quote_what_the_record_holds.py)."""
    other = make_patient()
    patient_services.encounter_admit(patient=other, unit=CareUnit.objects.get(code="psy"))
    c = _session(make_user("r.zz", Role.RECEPTION))
    status, text = _call(c, "post", "/api/encounters/", {"patient": other.pk, "unit": "u2"})
    assert status == 400 and "Psychiatrie" not in text, text
    assert "séjour en cours" in text or "stay in progress" in text, text


def test_a_secretary_admitting_a_restricted_patient_gets_the_missing_patient_answer(world):
    c = _session(make_user("s.zz", Role.MEDICAL_SECRETARY, [world["mine"]]))
    assert (_call(c, "post", "/api/encounters/", {"patient": world["vip"].pk, "unit": "u2"})
            == _call(c, "post", "/api/encounters/", {"patient": world["missing"], "unit": "u2"}))


# --- H10 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("if_match", ["*", "real"])
def test_integration_patch_of_a_hidden_patient_is_a_404_as_for_a_missing_one(world, if_match):
    vip, api = world["vip"], _api()
    assert api.get(f"/api/patients/{vip.pk}/").status_code == 404
    tag = etag_of(vip) if if_match == "real" else "*"
    hidden = _call(api, "patch", f"/api/patients/{vip.pk}/", {"phone": "0102030405"}, HTTP_IF_MATCH=tag)
    missing = _call(api, "patch", f"/api/patients/{world['missing']}/", {"phone": "0102030405"}, HTTP_IF_MATCH=tag)
    assert hidden == missing and hidden[0] == 404, hidden
    assert not _markers(vip, hidden[1])
    # Without If-Match either: the patient is checked before the precondition (no 428 telling it exists).
    assert (_call(api, "patch", f"/api/patients/{vip.pk}/", {"phone": "0102030405"})
            == _call(api, "patch", f"/api/patients/{world['missing']}/", {"phone": "0102030405"}))
    vip.refresh_from_db()
    assert vip.phone != "0102030405"
    denied = audit_events(patient_id=vip.pk, outcome="denied", action="amend")
    assert denied and denied[-1].basis == "deny:not_visible" and denied[-1].resource_type == "patient"


def test_integration_insi_call_on_a_hidden_patient_is_a_404_as_for_a_missing_one(world):
    vip, api = world["vip"], _api()
    hidden = _call(api, "post", f"/api/patients/{vip.pk}/insi/", {})
    missing = _call(api, "post", f"/api/patients/{world['missing']}/insi/", {})
    assert hidden == missing and hidden[0] == 404, hidden
    assert audit_events(patient_id=vip.pk, outcome="denied", basis="deny:not_visible")


def test_the_feed_still_admits_a_restricted_patient_without_reading_it(world):
    """The integration purpose (create administrative) stays: the ADT feed admits a VIP it cannot read."""
    vip = world["vip"]
    for e in vip.encounters.all():
        patient_services.encounter_discharge(encounter=e)
    status, text = _call(_api(), "post", "/api/encounters/", {"patient": vip.pk, "unit": "u2"})
    assert status == 201 and not _markers(vip, text), text


# --- H11 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["integration", "reception"])
def test_creating_a_look_alike_does_not_name_the_hidden_vip_but_says_a_duplicate_is_hidden(world, who):
    vip = world["vip"]
    c = _api() if who == "integration" else _session(make_user("r.zz", Role.RECEPTION))
    body = {"birth_name": VIP_NAME, "first_name": "Marqueur", "sex": "F", "birth_date": vip.birth_date.isoformat()}
    r = c.post("/api/patients/", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 201, r.content
    created = r.json()
    assert created["probable_duplicates"] == [] and created["probable_duplicates_not_shown"] is True
    assert VIP_IPP not in r.content.decode()
    # Identity vigilance still has the suspicion, and the refusal to name it is in the trace.
    assert DuplicateSuspicion.objects.filter(patient_id=created["id"], candidate_id=vip.pk).exists()
    assert audit_events(patient_id=vip.pk, outcome="denied", basis="deny:not_visible", resource_type="patient")


def test_a_visible_duplicate_is_still_named(world):
    other = make_patient(birth_name="ZQVISIBLE", first_name="Paul", sex="M")
    c = _session(make_user("r.zz", Role.RECEPTION))
    body = {"birth_name": "ZQVISIBLE", "first_name": "Paul", "sex": "M", "birth_date": other.birth_date.isoformat()}
    created = c.post("/api/patients/", data=json.dumps(body), content_type="application/json").json()
    assert [d["id"] for d in created["probable_duplicates"]] == [other.pk]
    assert created["probable_duplicates_not_shown"] is False


def test_reception_admin_add_with_a_similar_name_does_not_show_the_hidden_vip(world):
    vip = world["vip"]
    c = _session(make_user("r.zz", Role.RECEPTION))
    data = {"birth_name": VIP_NAME + "M", "first_names": "Marqueur", "first_name": "Marqueur", "sex": "F",
            "birth_date": vip.birth_date.strftime("%d/%m/%Y"), "birthplace_insee": "", "used_name": "",
            "identity_status": "PROV", "identity_attribute": "", "validation_mode": "", "address": "",
            "postal_code": "", "city": "", "phone": "", "email": "", "confidentiality": "normal",
            "restriction_reason": "", "_save": "1"}
    r = c.post("/admin/patients/patient/add/", data, follow=True)
    assert r.status_code == 200
    shown = [str(m.message) for m in r.context["messages"]]
    text = r.content.decode().upper().replace(VIP_NAME + "M", "")
    assert VIP_IPP not in text and VIP_NAME not in text, shown
    assert any("identit" in m.lower() for m in shown), shown  # told to ask identity vigilance, without a name


def test_the_feed_discharging_a_restricted_stay_is_not_told_its_unit_or_start(world):
    vip = world["vip"]
    stay = vip.encounters.get(end__isnull=True)
    status, text = _call(_api(), "post", f"/api/encounters/{stay.pk}/discharge/", {})
    assert status == 200 and not _markers(vip, text) and "psy" not in text, text
    stay.refresh_from_db()
    assert stay.end is not None
