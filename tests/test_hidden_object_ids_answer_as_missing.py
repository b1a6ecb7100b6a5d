"""Every URL pattern that takes the id of a patient-owned object (walked from ``django.urls.get_resolver()``):
an id of an object of a patient the persona may not know (a restricted patient outside its care team) gets
exactly the answer of an id that does not exist (same status, the same JSON body), on GET and on every write
method, and the answer carries no marker of the hidden patient. The same under a patient the persona may see,
with the sub-resource's id belonging to the hidden patient; that refusal is recorded against the resource
actually requested and its real patient (attack review: encounter, unmerge and cross-patient oracles).

One test builds the data once and loops over the cases, collecting failures; it asserts its case count.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.models import CareTeamMembership
from access.policy import IDENTITY_VIGILANCE_GROUP, Role
from dpi import services as dpi_services
from dpi.api.testing import make_api_client
from dpi.models import Allergy, MedicationAdministration, Prescription, Problem
from patients import services as patient_services
from patients.models import CareUnit, Patient
from tests.helpers import audit_events
from tests.personas import make_patient, make_user
from tests.ui_support import _model_backend

pytestmark = pytest.mark.django_db

VIP_NAME, VIP_IPP, VIP_CARE = "ZQCACHENOM", "ZQCACHE001", "ZQCACHESOIN"
MISSING = 900_000_000
PARAM = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>|\(\?P<(?P<rname>\w+)>[^)]*\)")
# Routes whose ids are not patient-owned objects (the DPO's alerts and reviews, accounts, retention's requests),
# and the admin's catch-all and app index.
NOT_PATIENT_OWNED = ("dpo/", "security/", "retention/", "audit/verification/", "admin/(?P<url>",
                     "admin/(?P<app_label>", "admin/r/", "static/", "media/")
API_OBJECTS = {"patients": "patient", "encounters": "encounter", "observations": "obs", "documents": "doc",
               "care-team-memberships": "membership"}
FHIR_OBJECTS = {"Patient": "patient", "Encounter": "encounter", "Observation": "obs", "DocumentReference": "doc",
                "AllergyIntolerance": "allergy", "Condition": "problem", "MedicationRequest": "rx",
                "MedicationAdministration": "adm"}
SUB_IDS = {"note_id": "note", "document_id": "doc", "rx_id": "rx"}
BODY = {"unit": "zqmine", "reason": "erreur de saisie", "phone": "0102030405", "value": "2", "body": "texte",
        "title": "titre", "end": "2031-01-01T00:00:00Z", "merged": 0, "justification": "urgence vitale",
        "category": "emergency", "token": "123456", "dose_given": "1 cp", "status": "completed"}


def _routes() -> list[str]:
    def walk(resolver, prefix=""):
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                yield from walk(p, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield (prefix + str(p.pattern)).replace("^", "")

    return [r for r in walk(get_resolver()) if PARAM.search(r) and not r.startswith(NOT_PATIENT_OWNED)]


def _fill(route: str, values: dict[str, str]) -> str:
    path = PARAM.sub(lambda m: values[m.group("name") or m.group("rname")], route)
    return "/" + path.replace("^", "").replace("$", "").replace("\\", "").replace("/?", "/")


@pytest.fixture
def world():
    psy = CareUnit.objects.create(code="zqpsy", name="Psychiatrie ZQ")
    mine = CareUnit.objects.create(code="zqmine", name="Mine")
    vip = make_patient(birth_name=VIP_NAME, first_name="Marqueur", sex="F", ipp=VIP_IPP,
                       confidentiality="restricted", restriction_reason="vip")
    ghost = make_user("zq.ghost", Role.PHYSICIAN, [psy])
    now = timezone.now()
    objects = {"patient": vip, "encounter": patient_services.encounter_admit(patient=vip, unit=psy)}
    objects["note"] = dpi_services.note_create(patient=vip, author=ghost, encounter=None, body=f"{VIP_CARE} note",
                                               title=VIP_CARE, kind="progress", sensitive=False)
    objects["obs"] = dpi_services.observation_record(patient=vip, author=ghost, label=f"{VIP_CARE} obs",
                                                     effective_at=now, value_text="positif")
    objects["doc"] = dpi_services.document_add(patient=vip, author=ghost, title=VIP_CARE, content=b"%PDF-1.4 x",
                                               media_type="application/pdf")
    common = {"patient": vip, "author": ghost}
    objects["allergy"] = Allergy.objects.create(substance=f"{VIP_CARE} allergie", **common)
    objects["problem"] = Problem.objects.create(icd10="I10", label=f"{VIP_CARE} probleme", **common)
    objects["rx"] = Prescription.objects.create(medication=f"{VIP_CARE} rx", instructions="x", start=now.date(),
                                                **common)
    objects["adm"] = MedicationAdministration.objects.create(patient=vip, author=ghost, prescription=objects["rx"],
                                                             status="completed", administered_at=now, dose_given="1")
    objects["appointment"] = patient_services.appointment_book(
        patient=vip, unit=psy, practitioner=ghost, start=now + timedelta(days=3),
        end=now + timedelta(days=3, hours=1))
    objects["membership"] = CareTeamMembership.objects.create(
        patient=vip, user=ghost, start=now, end=now + timedelta(days=1), reason="avis", source="system")
    seen = make_patient(birth_name="ZQVISIBLE", first_name="Paul")
    patient_services.encounter_admit(patient=seen, unit=mine)
    personas = {
        "physician": make_user("zq.phys", Role.PHYSICIAN, [mine]),
        "nurse": make_user("zq.nurse", Role.NURSE, [mine]),
        "pharmacist": make_user("zq.pharma", Role.PHARMACIST, [mine]),
        "secretary": make_user("zq.sec", Role.MEDICAL_SECRETARY, [mine]),
        "reception": make_user("zq.recep", Role.RECEPTION),
        "vigilance": make_user("zq.vigil", Role.RECEPTION),
        "dim": make_user("zq.dim", Role.DIM),
        "dpo": make_user("zq.dpo", Role.DPO),
        "it_admin": make_user("zq.it", Role.IT_ADMIN),
    }
    personas["vigilance"].groups.add(Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)[0])
    return {"vip": vip, "objects": objects, "seen": seen, "personas": personas}


def _session(user) -> Client:
    client = Client()
    client.force_login(user, backend=_model_backend())
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.create(user=user, name="t", confirmed=True).persistent_id
    session.save()
    return client


def _markers(text: str) -> list[str]:
    return [m for m in (VIP_NAME, VIP_IPP, VIP_CARE, "Psychiatrie ZQ") if m in text]


def _without_ids(body: str, path: str) -> str:
    """The body with the ids of its path replaced (an answer may name the id it was asked for)."""
    for number in set(re.findall(r"\d+", path)):
        body = re.sub(rf"(?<=[/:\"]){number}\b", "ID", body)
    return body


def _ask(client: Client, method: str, path: str, *, headers: dict | None = None) -> tuple[int, str, str]:
    rid = str(uuid.uuid4())
    kwargs = {"HTTP_X_REQUEST_ID": rid, "HTTP_ACCEPT": "application/json", **(headers or {})}
    if method == "get":
        response = client.get(path, **kwargs)
    elif path.startswith(("/api/", "/fhir/")):
        response = getattr(client, method)(path, data=json.dumps(BODY), content_type="application/json", **kwargs)
    elif method == "post":
        response = client.post(path, data={k: str(v) for k, v in BODY.items()}, **kwargs)
    else:
        response = getattr(client, method)(path, **kwargs)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode(errors="replace")
    if "json" in response.get("Content-Type", ""):
        return response.status_code, text, rid
    return response.status_code, "", rid  # HTML pages carry tokens and request ids: compared on status only


def _cases(world) -> list[tuple[str, str, str]]:
    """(label, path of the hidden object, path of a missing id)."""
    objects, seen = world["objects"], world["seen"]
    ct = ContentType.objects.get_for_model(Patient).pk
    cases = []
    for route in _routes():
        names = [m.group("name") or m.group("rname") for m in PARAM.finditer(route)]
        if "resource_type" in names:
            if "pk" in names:
                for rtype, key in FHIR_OBJECTS.items():
                    cases.append((f"fhir {rtype}", f"/fhir/{rtype}/{objects[key].pk}", f"/fhir/{rtype}/{MISSING}"))
            continue
        if route.startswith("api/"):
            key = API_OBJECTS[route.removeprefix("api/").split("/")[0]]
        elif route.startswith("admin/patients/"):
            key = route.split("/")[2]
        else:
            key = "patient"
        fixed = {"fmt": "json", "content_type_id": str(ct)}
        hidden = {n: fixed.get(n, str(objects[SUB_IDS.get(n, key)].pk)) for n in names}
        missing = {n: fixed.get(n, str(MISSING)) for n in names}
        cases.append((route, _fill(route, hidden), _fill(route, missing)))
        sub = [n for n in names if n in SUB_IDS]
        if sub:  # under a patient the persona may see, the sub-resource of the hidden one
            cases.append((route + " (cross)", _fill(route, {**hidden, "patient_id": str(seen.pk)}),
                          _fill(route, {**missing, "patient_id": str(seen.pk)})))
    return cases


def test_an_object_of_a_hidden_patient_answers_as_a_missing_id_on_every_route(world):
    cases = _cases(world)
    clients = {name: _session(user) for name, user in world["personas"].items()}
    _, token = make_api_client(name="zq-feed")
    clients["integration"] = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    failures, count = [], 0
    for persona, client in clients.items():
        for label, hidden_path, missing_path in cases:
            for method in ("get", "post", "patch", "delete"):
                if persona == "integration" and method != "get" and label.startswith("api/encounters"):
                    continue  # the ADT feed's purpose: it moves a restricted patient it cannot read (policy)
                count += 1
                hidden = _ask(client, method, hidden_path, headers={"HTTP_IF_MATCH": "*"})
                missing = _ask(client, method, missing_path, headers={"HTTP_IF_MATCH": "*"})
                where = f"{persona} {method.upper()} {label}"
                if hidden[0] != missing[0]:
                    failures.append(f"{where}: {hidden[0]} for the hidden object, {missing[0]} for a missing id "
                                    f"{hidden[1][:120]}")
                elif _without_ids(hidden[1], hidden_path) != _without_ids(missing[1], missing_path):
                    failures.append(f"{where}: bodies differ {hidden[1][:120]} / {missing[1][:120]}")
                if _markers(hidden[1]):
                    failures.append(f"{where}: answer names the hidden patient {_markers(hidden[1])}")
    assert not failures, f"{len(failures)} of {count}:\n" + "\n".join(failures)
    assert count >= 1000, count


@pytest.mark.parametrize("path", ["/patients/{seen}/notes/{note}/", "/patients/{seen}/notes/{note}/amend/",
                                  "/patients/{seen}/documents/{doc}/", "/patients/{seen}/prescriptions/{rx}/stop/"])
def test_a_sub_resource_of_another_patient_is_recorded_against_its_real_patient(world, path):
    objects = world["objects"]
    path = path.format(seen=world["seen"].pk, note=objects["note"].pk, doc=objects["doc"].pk, rx=objects["rx"].pk)
    status, _, rid = _ask(_session(world["personas"]["physician"]), "post" if "stop" in path else "get", path)
    assert status == 404
    denied = [e for e in audit_events(request_id=rid) if e.outcome == "denied"]
    assert denied and denied[-1].patient_id == world["vip"].pk, [(e.patient_id, e.basis) for e in denied]
    assert str(denied[-1].resource_id) == path.split("/")[4]


# --- unmerge (identity vigilance) ---------------------------------------------------------------------------
@pytest.fixture
def alias_of_the_vip(world):
    """A normal file merged (by the ADT feed) into the restricted one: the alias holds the same person."""
    vip = world["vip"]
    for stay in vip.encounters.filter(end__isnull=True):
        patient_services.encounter_discharge(encounter=stay)
    alias = make_patient(birth_name=VIP_NAME, first_name="Marqueur", sex="F", birth_date=vip.birth_date,
                         identity_status="PROV")
    patient_services.encounter_discharge(encounter=patient_services.encounter_admit(
        patient=alias, unit=CareUnit.objects.get(code="zqmine"), start=timezone.now() - timedelta(days=2)))
    patient_services.patient_merge(actor=None, system_task="hl7:A40:zq", kept=vip, merged=alias,
                                   reason="doublon")
    return alias


def test_unmerging_into_a_hidden_file_answers_as_a_missing_file(world, alias_of_the_vip):
    """The cell member may not know the kept file: neither the alias nor its unmerge tells that it is hidden;
    they answer as for a file that does not exist, and the refusal names the file asked for."""
    alias, client = alias_of_the_vip, _session(world["personas"]["vigilance"])
    for method, path in (("get", "/api/patients/{}/"), ("post", "/api/patients/{}/unmerge/"),
                         ("get", "/fhir/Patient/{}")):
        hidden = _ask(client, method, path.format(alias.pk))
        missing = _ask(client, method, path.format(MISSING))
        assert hidden[0] == missing[0] == 404, (path, hidden[:2], missing[:2])
        assert _without_ids(hidden[1], str(alias.pk)) == _without_ids(missing[1], str(MISSING))
        assert not _markers(hidden[1]), hidden[1]
        denied = [e for e in audit_events(request_id=hidden[2]) if e.outcome == "denied"]
        assert denied and denied[-1].patient_id == alias.pk, [(e.patient_id, e.basis) for e in denied]
    assert patient_services.merge_of(alias) is not None  # nothing was undone


def test_unmerge_puts_the_alias_confidentiality_back(world, alias_of_the_vip):
    alias = alias_of_the_vip
    alias.refresh_from_db()
    assert alias.confidentiality == "restricted"
    patient_services.patient_unmerge(actor=None, system_task="hl7:A37:zq", merge=patient_services.merge_of(alias),
                                     reason="erreur")
    alias.refresh_from_db()
    assert alias.confidentiality == "normal" and alias.restriction_reason == ""


@pytest.mark.parametrize("path", ["/patients/{other}/notes/{note}/", "/patients/{other}/documents/{doc}/",
                                  "/patients/{other}/prescriptions/{rx}/ordonnance.pdf"])
def test_under_a_patient_the_user_may_not_open_the_refusal_still_names_the_real_patient(world, path):
    """The URL's patient is refused too (another unit: no care relationship): the answer is that refusal, the
    same as for a free id, and the event names the object asked for and the patient it belongs to."""
    other = make_patient(birth_name="ZQAUTRE", first_name="Luc")
    patient_services.encounter_admit(patient=other, unit=CareUnit.objects.get(code="zqpsy"))
    objects, client = world["objects"], _session(world["personas"]["physician"])
    asked = path.format(other=other.pk, note=objects["note"].pk, doc=objects["doc"].pk, rx=objects["rx"].pk)
    free = path.format(other=other.pk, note=MISSING, doc=MISSING, rx=MISSING)
    status, _, rid = _ask(client, "get", asked)
    assert status == _ask(client, "get", free)[0] == 403
    denied = [e for e in audit_events(request_id=rid) if e.outcome == "denied"]
    assert denied and {e.patient_id for e in denied} == {world["vip"].pk}, [(e.patient_id, e.basis) for e in denied]
    assert str(denied[-1].resource_id) == asked.split("/")[4]
    assert denied[-1].details.get("requested_patient_id") == other.pk


@pytest.mark.parametrize("who", ["reception", "anonymous"])
def test_a_page_refused_before_any_lookup_names_the_sub_resource_and_its_real_patient(world, who):
    """A role the page is not for (reception) or an anonymous request: refused before the view looks anything
    up, the event still names the note asked for and the patient it belongs to, not the URL's patient."""
    client = Client() if who == "anonymous" else _session(world["personas"]["reception"])
    note = world["objects"]["note"]
    status, _, rid = _ask(client, "get", f"/patients/{world['seen'].pk}/notes/{note.pk}/")
    assert status in (302, 403)
    denied = [e for e in audit_events(request_id=rid) if e.outcome == "denied"]
    assert denied and denied[-1].patient_id == world["vip"].pk, [(e.patient_id, e.basis) for e in denied]
    assert (denied[-1].resource_type, str(denied[-1].resource_id)) == ("clinicalnote", str(note.pk))


# --- reception's arrival purpose ----------------------------------------------------------------------------
def test_reception_admitting_a_raw_id_without_the_exact_lookup_gets_the_missing_patient_answer(world):
    """Reception's purpose (create administrative on a restricted patient) is for an arrival found by exact
    IPP / INS: a raw id typed without it answers as an id that does not exist, admits nothing, and the refusal
    names the patient; after the exact lookup the arrival is registered."""
    vip, client = world["vip"], _session(world["personas"]["reception"])
    for stay in vip.encounters.filter(end__isnull=True):
        patient_services.encounter_discharge(encounter=stay)
    body = {"unit": "zqmine"}

    def admit(patient_id):
        response = client.post("/api/encounters/", data=json.dumps({**body, "patient": patient_id}),
                               content_type="application/json", HTTP_X_REQUEST_ID=(rid := str(uuid.uuid4())))
        return response.status_code, response.content.decode(), rid

    hidden, missing = admit(vip.pk), admit(MISSING)
    assert hidden[:2] == missing[:2] and hidden[0] == 400, (hidden, missing)
    assert not vip.encounters.filter(end__isnull=True).exists()
    denied = [e for e in audit_events(request_id=hidden[2]) if e.outcome == "denied"]
    assert denied and denied[-1].patient_id == vip.pk and denied[-1].basis == "deny:not_visible"
    assert client.get(f"/api/patients/?ipp={VIP_IPP}").json()["results"][0]["id"] == vip.pk
    assert admit(vip.pk)[0] == 201


@pytest.mark.parametrize("action", ["discharge", "transfer"])
def test_the_reception_admin_actions_on_a_hidden_stay_answer_as_a_free_id_and_record_it(world, action):
    """The admin's discharge and transfer actions: a stay of a patient reception may not know is left alone,
    with the answer of an id that does not exist, and the refusal names the stay and its patient."""
    stay, client = world["objects"]["encounter"], _session(world["personas"]["reception"])

    def act(object_id):
        response = client.post("/admin/patients/encounter/", {
            "action": action, ACTION_CHECKBOX_NAME: [object_id], "apply": "1", "unit": "1"},
            HTTP_X_REQUEST_ID=(rid := str(uuid.uuid4())), follow=True)
        return response.status_code, [str(m) for m in response.context["messages"]], rid

    hidden, missing = act(stay.pk), act(MISSING)
    assert hidden[:2] == missing[:2], (hidden, missing)
    assert not _markers(" ".join(hidden[1]))
    stay.refresh_from_db()
    assert stay.end is None
    denied = [e for e in audit_events(request_id=hidden[2]) if e.outcome == "denied"]
    assert denied and (denied[-1].patient_id, denied[-1].resource_type, str(denied[-1].resource_id)) == (
        world["vip"].pk, "encounter", str(stay.pk)), [(e.patient_id, e.basis) for e in denied]
    assert denied[-1].basis == "deny:not_visible"


@pytest.mark.parametrize(("persona", "method", "path", "key"), [
    ("physician", "post", "/api/encounters/{}/discharge/", "encounter"),
    ("physician", "post", "/api/encounters/{}/transfer/", "encounter"),
    ("reception", "get", "/api/observations/{}/", "obs"),
    ("dpo", "get", "/fhir/Encounter/{}", "encounter"),
])
def test_a_matrix_refusal_before_the_lookup_names_the_object_and_its_patient(world, persona, method, path, key):
    obj = world["objects"][key]
    status, _, rid = _ask(_session(world["personas"][persona]), method, path.format(obj.pk))
    assert status == 403
    denied = [e for e in audit_events(request_id=rid) if e.outcome == "denied"]
    assert denied and (denied[-1].patient_id, str(denied[-1].resource_id)) == (world["vip"].pk, str(obj.pk))
