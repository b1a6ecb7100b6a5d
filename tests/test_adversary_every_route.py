"""Issue 13's adversarial suite: every persona x every patient class x every URL pattern (walked from the URL
resolver: browser UI, admin site with change / history / popup / autocomplete pages, REST API and FHIR with
by-id reads, searches and ``_include``), plus writes through the gate that change nothing.

Each patient class carries planted marker values (birth name, NIR, IPP, birth date, and a marker in its
medical record). The oracle below restates the policy from the specification (not from the gate):
- identity of a patient: roles with administrative "view"; a restricted patient only for its care team;
- its medical record: roles with medical "view", within the care team for those that need one (not the
  professional the patient objected to, not the person who created the relationship herself).
No response may carry a marker the persona may not see, and every refusal (401, 403, 404, or a redirect
away from a patient page) has a denied access event for that very request.

One test builds the data once and loops over the cases, collecting failures (fast enough for ``make test``);
it prints and asserts its case count.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import unquote

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.models import CareTeamMembership, PatientObjection
from access.policy import Role
from dpi import services as dpi_services
from dpi.api.testing import make_api_client
from dpi.models import Allergy, MedicationAdministration, Prescription, Problem
from patients import services as patient_services
from patients.models import CareUnit, Patient
from tests.helpers import audit_events
from tests.personas import make_patient, make_user
from tests.ui_support import _model_backend

pytestmark = pytest.mark.django_db

CLASSES = ("normal", "restricted", "restricted_other", "objection", "other_unit", "deceased", "self_granted",
           "archived")
RESTRICTED = {"restricted", "restricted_other"}
IN_CARDIO = {"normal", "restricted", "objection", "self_granted"}  # open encounter in cardiology
IN_PNEUMO = {"restricted_other", "other_unit"}  # open encounter in pneumology
A_VIEW = {"physician", "nurse", "secretary", "other_physician", "pharmacist", "reception", "dim", "integration"}
M_VIEW = {"physician", "nurse", "secretary", "other_physician", "pharmacist", "dim", "integration"}
NO_CARE_NEEDED = {"dim", "integration"}
CARDIO_STAFF = {"physician", "nurse", "secretary"}
PNEUMO_STAFF = {"other_physician"}
PERSONAS = ("physician", "nurse", "secretary", "other_physician", "pharmacist", "reception", "dim", "dpo", "it_admin",
            "integration", "integration_session", "no_role", "anonymous")


def in_team(persona: str, cls: str) -> bool:
    if cls == "self_granted" and persona == "secretary":
        return False  # she admitted the patient into her own unit herself
    return (persona in CARDIO_STAFF and cls in IN_CARDIO) or (persona in PNEUMO_STAFF and cls in IN_PNEUMO)


def may_see_identity(persona: str, cls: str) -> bool:
    if cls == "archived":
        return False  # moved to the archive: out of the live base for everyone (only a four-eyes restore)
    if persona not in A_VIEW:
        return False
    if cls in RESTRICTED:
        return in_team(persona, cls)
    return True


def may_see_record(persona: str, cls: str) -> bool:
    if persona not in M_VIEW or not may_see_identity(persona, cls):
        return False
    if persona in NO_CARE_NEEDED:
        return True
    if cls == "objection" and persona == "physician":
        return False
    return in_team(persona, cls)


@dataclass
class Planted:
    patient: Patient
    encounter: object
    note: object
    obs: object
    doc: object
    appointment: object
    membership: object
    allergy: object
    problem: object
    rx: object
    adm: object
    identity: tuple[str, ...]
    record: tuple[str, ...]


def _plant(n: int, cls: str, units: dict, people: dict) -> Planted:
    tag = cls.upper().replace("_", "")
    born = date(1951, 1 + n, 10 + n)
    restricted = cls in RESTRICTED
    patient = make_patient(
        ipp=f"ZQIPP{n:04d}{tag[:6]}", birth_name=f"ZQ{tag}NOM", first_name="Marqueur", sex="F", birth_date=born,
        confidentiality="restricted" if restricted else "normal", restriction_reason="vip" if restricted else "",
        date_of_death=timezone.localdate() - timedelta(days=10) if cls == "deceased" else None,
    )
    nir = patient.ins
    unit = units["pneumo"] if cls in IN_PNEUMO else units["cardio"]
    now = timezone.now()
    if cls == "deceased":
        encounter = patient_services.encounter_admit(patient=patient, unit=unit, start=now - timedelta(days=90))
        patient_services.encounter_discharge(encounter=encounter, end=now - timedelta(days=60))
    elif cls == "archived":
        encounter = patient_services.encounter_admit(patient=patient, unit=unit, start=now - timedelta(days=7700))
        patient_services.encounter_discharge(encounter=encounter, end=now - timedelta(days=7690))
    elif cls == "self_granted":
        encounter = patient_services.encounter_admit(patient=patient, unit=unit, actor=people["secretary"],
                                                     source="staff")
    else:
        encounter = patient_services.encounter_admit(patient=patient, unit=unit)
    if cls == "objection":
        PatientObjection.objects.create(patient=patient, professional=people["physician"], reason="voisin")
    author = people["ghost"]
    med = f"ZQ{tag}SOIN"
    note = dpi_services.note_create(patient=patient, author=author, encounter=None, body=f"{med} note",
                                    title=f"{med} titre", kind="progress", sensitive=False)
    obs = dpi_services.observation_record(patient=patient, author=author, label=f"{med} obs", effective_at=now,
                                          value_text="positif")
    doc = dpi_services.document_add(patient=patient, author=author, title=f"{med} doc",
                                    content=b"%PDF-1.4 " + med.encode(), media_type="application/pdf")
    common = {"patient": patient, "author": author}
    allergy = Allergy.objects.create(substance=f"{med} allergie", **common)
    problem = Problem.objects.create(icd10="I10", label=f"{med} probleme", **common)
    rx = Prescription.objects.create(medication=f"{med} medicament", instructions="x", start=now.date(), **common)
    adm = MedicationAdministration.objects.create(patient=patient, author=author, prescription=rx,
                                                  status="completed", administered_at=now, dose_given="1 cp")
    when = {"deceased": now - timedelta(days=80), "archived": now - timedelta(days=7695)}.get(
        cls, now + timedelta(days=30))
    appointment = patient_services.appointment_book(patient=patient, unit=unit, practitioner=author, start=when,
                                                    end=when + timedelta(hours=1), regularisation=True)
    membership = CareTeamMembership.objects.create(patient=patient, user=people["ghost2"], start=now,
                                                   end=now + timedelta(days=1), reason="avis", source="system")
    identity = (f"ZQ{tag}NOM", nir, patient.ipp, born.isoformat(), born.strftime("%d/%m/%Y"))
    return Planted(patient, encounter, note, obs, doc, appointment, membership, allergy, problem, rx, adm, identity,
                   (med,))


def _routes() -> list[str]:
    def walk(resolver, prefix=""):
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                yield from walk(p, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern)

    return [r for r in walk(get_resolver()) if not r.startswith(("static/", "media/")) and "logout" not in r]


PARAM = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>|\(\?P<(?P<rname>\w+)>[^)]*\)")
API_OBJECTS = {"patients": "patient", "encounters": "encounter", "observations": "obs", "documents": "doc",
               "care-team-memberships": "membership", "audit-events": "patient"}
FHIR_OBJECTS = {"Patient": "patient", "Encounter": "encounter", "Observation": "obs", "DocumentReference": "doc",
                "AllergyIntolerance": "allergy", "Condition": "problem", "MedicationRequest": "rx",
                "MedicationAdministration": "adm", "AuditEvent": "patient"}
ADMIN_OBJECTS = {"patient": "patient", "encounter": "encounter", "appointment": "appointment"}


def _clean(route: str) -> str:
    return route.replace("^", "").replace("$", "").replace("\\", "").replace("/?", "/")


def _expand(route: str, planted: Planted, patient_ct: int) -> list[str]:
    """Concrete paths of a route for one patient class (empty: the route has no parameter)."""
    names = [m.group("name") or m.group("rname") for m in PARAM.finditer(route)]
    if not names:
        return []
    if "url" in names or route.endswith("^.*$"):
        return []  # catch-alls: tried once per persona with an unknown path
    if "resource_type" in names:
        if "pk" not in names:
            return []  # FHIR searches: see _searches
        return [f"/fhir/{t}/{getattr(planted, a).pk}" for t, a in FHIR_OBJECTS.items()]
    values: dict[str, list[str]] = {}
    for name in names:
        if name == "patient_id":
            values[name] = [str(planted.patient.pk)]
        elif name == "note_id":
            values[name] = [str(planted.note.pk)]
        elif name == "document_id":
            values[name] = [str(planted.doc.pk)]
        elif name == "fmt":
            values[name] = ["csv", "pdf", "json"]
        elif name == "app_label":
            values[name] = ["patients"]
        elif name == "content_type_id":
            values[name] = [str(patient_ct)]
        elif name == "name":
            values[name] = ["x"]
        elif name == "object_id" and route.startswith("admin/patients/"):
            model = route.split("/")[2]
            values[name] = [str(getattr(planted, ADMIN_OBJECTS[model]).pk)]
        elif name == "pk" and route.startswith("api/"):
            resource = route.removeprefix("api/").lstrip("^").split("/")[0]
            values[name] = [str(getattr(planted, API_OBJECTS[resource]).pk)]
        else:
            values[name] = [str(planted.patient.pk)]
    paths = [_clean(route)]
    for name in names:
        new = []
        for path in paths:
            for value in values[name]:
                new.append(PARAM.sub(lambda m, n=name, v=value: v if (m.group("name") or m.group("rname")) == n
                                     else m.group(0), path, count=1))
        paths = new
    return ["/" + p for p in paths]


def _searches(planted: Planted) -> list[str]:
    pk, ipp, name, nir = planted.patient.pk, planted.patient.ipp, planted.identity[0], planted.identity[1]
    paths = [f"/api/patients/?ipp={ipp}", f"/api/patients/?ins={nir}", f"/api/patients/?family={name}",
             f"/patients/?q={name}", f"/patients/?q={ipp}", f"/admin/patients/patient/?q={name}",
             f"/admin/patients/encounter/?q={name}", f"/admin/patients/appointment/?q={ipp}",
             f"/admin/autocomplete/?app_label=patients&model_name=encounter&field_name=patient&term={name}",
             f"/admin/autocomplete/?app_label=patients&model_name=appointment&field_name=patient&term={ipp}",
             f"/fhir/Patient?identifier={ipp}", f"/fhir/Patient?family={name}", f"/fhir/Patient?_id={pk}",
             f"/fhir/Encounter?patient={pk}&_include=Encounter:patient",
             f"/fhir/Observation?subject=Patient/{pk}", f"/fhir/AuditEvent?patient={pk}"]
    paths += [f"/api/{r}/?patient={pk}" for r in API_OBJECTS]
    paths += [f"/fhir/{t}?patient={pk}" for t in FHIR_OBJECTS if t not in {"Patient", "AuditEvent"}]
    return paths


def _client(persona: str, people: dict) -> Client:
    client = Client()
    user = people.get(persona)
    if user is not None:
        client.force_login(user, backend=_model_backend())
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
        session.save()
    return client


PATIENT_SCOPED = re.compile(r"/(patients|encounters|observations|documents|care-team-memberships)/\d+|"
                            r"\?(.*&)?(patient|subject|_id|ipp|ins|identifier)=|/fhir/\w+/\d+|/admin/patients/\w+/\d+")


def test_no_persona_sees_a_marker_it_may_not_and_every_refusal_is_recorded(settings, tmp_path):
    units = {"cardio": CareUnit.objects.create(code="adv-cardio", name="Cardiologie adv"),
             "pneumo": CareUnit.objects.create(code="adv-pneumo", name="Pneumologie adv")}
    people = {
        "physician": make_user("adv.physician", Role.PHYSICIAN, [units["cardio"]]),
        "nurse": make_user("adv.nurse", Role.NURSE, [units["cardio"]]),
        "secretary": make_user("adv.secretary", Role.MEDICAL_SECRETARY, [units["cardio"]]),
        "other_physician": make_user("adv.other", Role.PHYSICIAN, [units["pneumo"]]),
        "pharmacist": make_user("adv.pharma", Role.PHARMACIST),
        "reception": make_user("adv.reception", Role.RECEPTION),
        "dim": make_user("adv.dim", Role.DIM),
        "dpo": make_user("adv.dpo", Role.DPO),
        "it_admin": make_user("adv.itadmin", Role.IT_ADMIN),
        "integration_session": make_user("adv.integration", Role.INTEGRATION),
        "no_role": make_user("adv.norole", None),
        "ghost": make_user("adv.ghost", Role.PHYSICIAN),  # author of the records, not a persona
        "ghost2": make_user("adv.ghost2", Role.NURSE),
    }
    for user in people.values():
        TOTPDevice.objects.create(user=user, name="adv", confirmed=True)
    planted = {cls: _plant(n, cls, units, people) for n, cls in enumerate(CLASSES)}
    # The archived class: its record is past its retention period and moves to the archive (retention run).
    from retention import services as retention_services
    from retention.testing import age

    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"
    age([planted["archived"].patient.pk], last_activity=timezone.now() - timedelta(days=365 * 21))
    run = retention_services.retention_run()
    assert run.archived == 1 and not Patient.objects.filter(pk=planted["archived"].patient.pk).exists()
    patient_ct = ContentType.objects.get_for_model(Patient).pk
    _, token = make_api_client(name="adv-feed")

    routes = _routes()
    per_class = {cls: [p for r in routes for p in _expand(r, planted[cls], patient_ct)] + _searches(planted[cls])
                 for cls in CLASSES}
    plain = ["/" + _clean(r) for r in routes if not PARAM.search(r)] + ["/api/zz-unknown/", "/fhir/zz-unknown",
                                                                        "/admin/zz-unknown/"]
    writes = {cls: [("patch", f"/api/patients/{p.patient.pk}/", {"city": "Nulle-part"}),
                    ("post", f"/api/encounters/{p.encounter.pk}/discharge/", {}),
                    ("post", f"/patients/{p.patient.pk}/notes/new/", None),
                    ("post", f"/patients/{p.patient.pk}/break-glass/", None)]
              for cls, p in planted.items()}

    cases = marker_checks = 0
    failures: list[str] = []
    covered: set[str] = set()
    for persona in PERSONAS:
        client = _client(persona, people)
        extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if persona == "integration" else {}
        requests = [("get", path, None, None) for path in plain]
        for cls in CLASSES:
            requests += [("get", path, None, cls) for path in per_class[cls]]
            requests += [(m, path, body, cls) for m, path, body in writes[cls]]
        refusals: dict[str, str] = {}  # request id -> the failure if that request has no denied event
        for method, path, body, cls in requests:
            if persona == "integration_session" and "_auth_user_id" not in client.session:
                client = _client(persona, people)  # its sessions are ended at once: sign it in again
            rid = str(uuid.uuid4())  # a caller id is kept only if opaque (no NIR-like digit run)
            headers = {"HTTP_X_REQUEST_ID": rid, "HTTP_ACCEPT": "application/json, text/html", **extra}
            if method == "get":
                response = client.get(path, **headers)
            elif method == "patch":
                response = client.patch(path, data=body, content_type="application/json", HTTP_IF_MATCH='"stale"',
                                        **headers)
            elif body is not None:
                response = client.post(path, data=body, content_type="application/json", HTTP_IF_MATCH='"stale"',
                                       **headers)
            else:
                response = client.post(path, data={}, **headers)
            cases += 1
            covered.add(path.split("?")[0])
            content = b"".join(response.streaming_content) if response.streaming else response.content
            text = content.decode("utf-8", errors="replace")
            asked = unquote(path)  # a value the persona typed in the request is not a leak when echoed
            exact = persona == "reception" and re.search(r"[?&](ipp|ins|identifier)=", path) is not None
            for other in CLASSES:
                for marker in planted[other].identity:
                    marker_checks += 1
                    # reception's arrival lookup by exact identifier is a purpose of the policy (recorded, flagged)
                    allowed = may_see_identity(persona, other) or (
                        exact and any(i in asked for i in planted[other].identity[1:3]))
                    if marker in text and marker not in asked and not allowed:
                        failures.append(f"{persona} {method.upper()} {path} -> {response.status_code}: identity "
                                        f"of {other} ({marker})")
                for marker in planted[other].record:
                    marker_checks += 1
                    if marker in text and marker not in asked and not may_see_record(persona, other):
                        failures.append(f"{persona} {method.upper()} {path} -> {response.status_code}: record of "
                                        f"{other}")
            refused = response.status_code in (401, 403, 404) or (
                response.status_code == 302 and ("login" in response.get("Location", "")
                                                 or response.get("Location", "").rstrip("/") == "/admin"))
            if refused and cls is not None and PATIENT_SCOPED.search(path):
                refusals[rid] = f"{persona} {method.upper()} {path} -> {response.status_code}: no denied event"
            if response.status_code >= 500:
                failures.append(f"{persona} {method.upper()} {path} -> {response.status_code}")
        # Each refusal has a denied event for that very request (read once per persona: events are append-only).
        denied = {e.request_id for e in audit_events(request_id__in=list(refusals), outcome="denied")}
        failures += [message for rid, message in refusals.items() if rid not in denied]
    assert not failures, f"{len(failures)} failures in {cases} cases:\n" + "\n".join(failures[:60])
    # Every URL pattern of the project was tried: by id for each class, once if it has no parameter, and the
    # FHIR search and catch-all patterns through the searches and unknown paths.
    by_route = {r: (bool(PARAM.search(r)) and any(_expand(r, planted[c], patient_ct) for c in CLASSES))
                or not PARAM.search(r) for r in routes}
    searched = ("fhir/^(?P<resource_type>[A-Za-z]+)/?$", "fhir/^.*$", "api/^.*$", "admin/(?P<url>")
    untried = [r for r, ok in by_route.items() if not ok and not r.startswith(searched)]
    assert not untried, untried
    print(f"adversarial suite: {cases} requests, {marker_checks} marker checks, {len(PERSONAS)} personas, "
          f"{len(CLASSES)} patient classes, {len(routes)} URL patterns")
    assert cases >= 3000
