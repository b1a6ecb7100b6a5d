"""Every page of the browser UI, for every persona: the status the authorization matrix (access.policy) and
the care relationship predict. One test per page; each compares the whole table at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client

from access.policy import Action, Category, Role, allowed_by_matrix, needs_care_relationship
from dpi import services as dpi_services
from dpi.web.permissions import ADMIN_SITE_ROLES, is_clinician
from tests.helpers import audit_events
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db

M = Category.MEDICAL
PERSONAS = ("physician", "nurse", "other_physician", "reception", "dpo", "dim", "outsider")
IN_TEAM = {"physician", "nurse"}


def role_of(cast, name: str) -> Role | None:
    user = getattr(cast, name)
    return Role(user.staff.role) if hasattr(user, "staff") else None


def reaches_record(role: Role | None, in_team: bool, action: Action = Action.VIEW) -> bool:
    return (is_clinician(role) and allowed_by_matrix(role, M, action)
            and (in_team or not needs_care_relationship(role, M)))


@dataclass
class Page:
    name: str
    url: Callable[[dict], str]
    expect: Callable[[Role | None, bool, str], int]
    method: str = "get"
    data: dict | None = None
    follow: bool = False


def _clinical(ok: int = 200):
    return lambda role, in_team, name: ok if reaches_record(role, in_team) else 403


def _printable():
    """Printing needs the "print" action on the medical data and on the identity printed with it."""
    return lambda role, in_team, name: 200 if (reaches_record(role, in_team, Action.PRINT)
                                               and allowed_by_matrix(role, Category.ADMINISTRATIVE, Action.PRINT)
                                               ) else 403


PAGES = [
    Page("patient search", lambda o: "/patients/", lambda r, t, n: 200 if is_clinician(r) else 403),
    Page("patient search with a query", lambda o: "/patients/?q=dup",
         lambda r, t, n: 200 if is_clinician(r) else 403),
    Page("chart", lambda o: f"/patients/{o['patient']}/", _clinical()),
    Page("print the record", lambda o: f"/patients/{o['patient']}/print/record.pdf", _printable()),
    Page("print the prescriptions", lambda o: f"/patients/{o['patient']}/print/prescriptions.pdf", _printable()),
    Page("note history", lambda o: f"/patients/{o['patient']}/notes/{o['note']}/", _clinical()),
    Page("document", lambda o: f"/patients/{o['patient']}/documents/{o['document']}/", _clinical()),
    Page("write a note", lambda o: f"/patients/{o['patient']}/notes/new/",
         lambda r, t, n: 302 if reaches_record(r, t, Action.CREATE) else 403,
         # "nursing": a kind every role that writes notes is offered
         method="post", data={"kind": "nursing", "title": "T", "body": "Text of the note"}),
    # The note was written by the physician: only its author amends it.
    Page("amend a note", lambda o: f"/patients/{o['patient']}/notes/{o['note']}/amend/",
         lambda r, t, n: 200 if n == "physician" else 403),
    Page("break-the-glass (no data posted)", lambda o: f"/patients/{o['patient']}/break-glass/",
         lambda r, t, n: (302 if reaches_record(r, t) else 403) if is_clinician(r) else 403,
         method="post", data={}),
    Page("DPO dashboard", lambda o: "/dpo/", lambda r, t, n: 200 if r == Role.DPO else 403),
    Page("DPO access log", lambda o: "/dpo/access-log/?user=dr.house",
         lambda r, t, n: 200 if r == Role.DPO else 403),
    Page("DPO break-the-glass list", lambda o: "/dpo/break-glass/", lambda r, t, n: 200 if r == Role.DPO else 403),
    Page("DPO alert queue", lambda o: "/dpo/queue/", lambda r, t, n: 200 if r == Role.DPO else 403),
    Page("reception site", lambda o: "/admin/", lambda r, t, n: 200 if r in ADMIN_SITE_ROLES else 403,
         follow=True),
    Page("reception: patients", lambda o: "/admin/patients/patient/",
         lambda r, t, n: 200 if r in ADMIN_SITE_ROLES else 403, follow=True),
    Page("reception: one patient", lambda o: f"/admin/patients/patient/{o['patient']}/change/",
         lambda r, t, n: 200 if r in ADMIN_SITE_ROLES else 403, follow=True),
    Page("reception: encounters", lambda o: "/admin/patients/encounter/",
         lambda r, t, n: 200 if r in ADMIN_SITE_ROLES else 403, follow=True),
    Page("reception: appointments", lambda o: "/admin/patients/appointment/",
         lambda r, t, n: 200 if r in ADMIN_SITE_ROLES else 403, follow=True),
    # No clinical model is registered on the admin site: not found even for reception.
    Page("reception: clinical notes (not registered)", lambda o: "/admin/dpi/clinicalnote/",
         lambda r, t, n: 404 if r in ADMIN_SITE_ROLES else 403, follow=True),
]


@pytest.fixture
def objects(cast):
    note = dpi_services.note_create(patient=cast.patient, author=cast.physician, body="Initial note",
                                    encounter=cast.encounter)
    document = dpi_services.document_add(patient=cast.patient, author=cast.physician, title="ECG",
                                         content=b"%PDF-1.4 synthetic", media_type="application/pdf")
    return {"patient": cast.patient.pk, "note": note.pk, "document": document.pk}


def test_every_page_answers_each_role_as_the_matrix_says(cast, objects):
    """One table: (page, persona) -> HTTP status, compared whole so that a failure lists every difference."""
    clients = {name: verified_client(getattr(cast, name)) for name in PERSONAS}
    expected, got = {}, {}
    for page in PAGES:
        for name in PERSONAS:
            expected[page.name, name] = page.expect(role_of(cast, name), name in IN_TEAM, name)
            response = getattr(clients[name], page.method)(page.url(objects), data=page.data, follow=page.follow)
            got[page.name, name] = response.status_code
    assert {k: v for k, v in got.items() if v != expected[k]} == {}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_anonymous_visitors_are_sent_to_sign_in(page):
    response = getattr(Client(), page.method)(page.url({"patient": 1, "note": 1, "document": 1}), data=page.data)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_every_chart_opened_or_refused_leaves_an_audit_event(cast, objects):
    for name in ("physician", "nurse", "other_physician", "dim"):
        user = getattr(cast, name)
        verified_client(user).get(f"/patients/{objects['patient']}/")
        events = audit_events(actor_id=user.pk, patient_id=objects["patient"], resource_type="chart")
        assert events, name
        assert events[-1].outcome == ("allowed" if name != "other_physician" else "denied")


def test_a_page_refused_to_the_role_is_a_recorded_denial(cast, objects):
    verified_client(cast.dpo).get(f"/patients/{objects['patient']}/")
    [event] = audit_events(actor_id=cast.dpo.pk, basis="deny:page_role")
    assert (event.outcome, event.patient_id, event.category) == ("denied", objects["patient"], "medical")
    verified_client(cast.nurse).get("/admin/", follow=True)
    assert audit_events(actor_id=cast.nurse.pk, basis="deny:page_role", outcome="denied")
