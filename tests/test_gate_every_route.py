"""Walk every URL pattern of the project (UI, admin, API, FHIR, DPO): a route that returns patient data
always has an audit event for that very request (the gate ran), and a refused one too.

Every patient-data object of the sentinel patient gets the same primary key, so any integer or path
parameter of any route can be filled with it.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from dpi.models import Allergy, ClinicalNote, Document, Observation, Prescription, Problem
from patients.models import Appointment, Encounter, Patient
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db

SENTINEL = "ZZSENTINEL"
OBJ_ID = 987654
PARAM_RE = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>|\(\?P<(?P<rname>\w+)>[^)]*\)")
SKIP_PREFIXES = ("static/", "media/")


def all_routes():
    def walk(resolver, prefix=""):
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                yield from walk(p, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern).lstrip("^").rstrip("$"), p

    return list(walk(get_resolver()))


def fill(route: str) -> tuple[str, list[str]]:
    names = []

    def sub(m):
        names.append(m.group("name") or m.group("rname"))
        return str(OBJ_ID)

    path = "/" + PARAM_RE.sub(sub, route).lstrip("^")
    return path.replace("\\", ""), names


@pytest.fixture
def sentinel_patient(cast):
    p = Patient.objects.create(
        id=OBJ_ID,
        ipp=f"P{OBJ_ID}",
        birth_name=SENTINEL,
        first_name="Sentinelle",
        sex="F",
        birth_date="1970-01-01",
        identity_status="QUAL",
    )
    now = timezone.now()
    enc = Encounter.objects.create(id=OBJ_ID, patient=p, unit=cast.other_unit, start=now - timedelta(days=1))
    Appointment.objects.create(
        id=OBJ_ID,
        patient=p,
        unit=cast.other_unit,
        practitioner=cast.other_physician,
        start=now + timedelta(days=2),
        end=now + timedelta(days=2, hours=1),
    )
    common = {"id": OBJ_ID, "patient": p, "encounter": enc, "author": cast.other_physician}
    ClinicalNote.objects.create(body=f"{SENTINEL} note", **common)
    Observation.objects.create(label=f"{SENTINEL} obs", value=1, effective_at=now, **common)
    Prescription.objects.create(medication=f"{SENTINEL} rx", instructions="x", start=now.date(), **common)
    Document.objects.create(title=f"{SENTINEL} doc", content=b"%PDF " + SENTINEL.encode(), size=10, **common)
    Allergy.objects.create(substance=f"{SENTINEL} allergy", **common)
    Problem.objects.create(icd10="I10", label=f"{SENTINEL} problem", **common)
    return p


def verified_client(client, user):
    device = TOTPDevice.objects.create(user=user, name="t", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.mark.parametrize("persona", ["physician", "reception", "dpo", "other_physician"])
def test_no_route_returns_patient_data_without_an_audit_event(client, cast, sentinel_patient, persona):
    user = getattr(cast, persona)
    verified_client(client, user)
    checked = []
    for route, _pattern in all_routes():
        if route.startswith(SKIP_PREFIXES) or "logout" in route:
            continue
        path, params = fill(route)
        request_id = str(uuid.uuid4())
        response = client.get(path, HTTP_X_REQUEST_ID=request_id, HTTP_ACCEPT="application/json, text/html")
        body = b"".join(response.streaming_content) if response.streaming else response.content
        shows_sentinel = SENTINEL.encode() in body
        events = audit_events(request_id=request_id)
        if response.status_code == 200 and (shows_sentinel or params):
            assert (
                any(e.outcome == "allowed" for e in events)
                or not shows_sentinel
                and not events
                and _no_patient_data(body)
            ), f"{persona} GET {path}: 200 without an audit event"
        if shows_sentinel:
            assert any(e.patient_id == OBJ_ID or e.action == "search" for e in events), (
                f"{persona} GET {path} shows the patient without an event naming it"
            )
        if response.status_code == 403 and params:
            assert events, f"{persona} GET {path}: 403 without an audit event"
        checked.append(path)
    assert len(checked) >= 5


def _no_patient_data(body: bytes) -> bool:
    """A 200 page that shows no field of the sentinel patient (e.g. an empty form) needs no event."""
    return SENTINEL.encode() not in body and b"Sentinelle" not in body
