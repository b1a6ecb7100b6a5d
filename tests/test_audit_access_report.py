"""The patient access report: the DPO downloads it as CSV, PDF and FHIR AuditEvent resources (validated against
the R4B models); each download is itself recorded; anyone else gets 403 and a denied event."""

import csv
import io
import json

import pytest
from django.urls import reverse
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from access import gate
from access.policy import Action, Category
from audit.selectors import patient_access_report
from tests.helpers import audit_events
from tests.test_audit_support import verified_client

pytestmark = pytest.mark.django_db


def _dpo_client(user):
    """The DPO with a fresh one-time code: an access report is an export of patient data (issue 13)."""
    import time

    from access.authn.services import FRESH_OTP_AT

    client = verified_client(user)
    session = client.session
    session[FRESH_OTP_AT] = time.time()
    session.save()
    return client


def _url(patient_id: int, fmt: str) -> str:
    return reverse("audit:patient_access_report", kwargs={"patient_id": patient_id, "fmt": fmt})


@pytest.fixture
def accessed(cast):
    gate.authorize(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW,
                   resource_type="clinicalnote", resource_id=7)
    gate.authorize(cast.nurse, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.CREATE,
                   resource_type="observation")
    gate.authorize(cast.reception, patient_id=cast.patient.pk, category=Category.ADMINISTRATIVE,
                   action=Action.VIEW, resource_type="patient", resource_id=cast.patient.pk)
    return cast


def test_selector_lists_who_when_role_unit_basis_action_outcome(accessed):
    # The file's own creation (identity vigilance, an automated step) comes first; the people follow.
    rows = [e for e in patient_access_report(patient_id=accessed.patient.pk) if e.actor_role != "system"]
    summary = [(e.actor_username, e.actor_role, e.actor_unit, e.action, e.outcome, e.basis) for e in rows]
    assert summary[0][:5] == ("dr.house", "physician", gate.unit_of(accessed.physician), "view", "allowed")
    assert [s[0] for s in summary] == ["dr.house", "nurse.joy", "front.desk"]
    assert summary[0][5].startswith("care:") and summary[2][5] == "role"
    assert all(e.occurred_at for e in rows)


def test_dpo_downloads_csv(accessed):
    response = _dpo_client(accessed.dpo).get(_url(accessed.patient.pk, "csv"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = [r for r in csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))) if r["role"] != "system"]
    assert [r["who"] for r in rows] == ["dr.house", "nurse.joy", "front.desk", "the.dpo"]  # with this download
    assert rows[0]["role"] == "physician" and rows[0]["action"] == "view" and rows[0]["outcome"] == "allowed"
    assert rows[0]["basis"].startswith("care team")
    assert rows[3]["action"] == "export"


def test_dpo_downloads_pdf(accessed):
    response = _dpo_client(accessed.dpo).get(_url(accessed.patient.pk, "pdf"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-") and len(response.content) > 1500


def test_dpo_downloads_fhir_audit_events_valid_against_r4b(accessed):
    response = _dpo_client(accessed.dpo).get(_url(accessed.patient.pk, "json"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    data = json.loads(response.content)
    bundle = Bundle.model_validate(data)
    events = [AuditEvent.model_validate(e["resource"]) for e in data["entry"]]
    events = [e for e in events if e.agent[0].type.coding[0].code == "humanuser"]  # people, not automated steps
    assert bundle.type == "collection" and len(events) == 4
    read = events[0]
    assert read.action == "R" and read.outcome == "0"
    assert read.meta.profile[0].endswith("IHE.BasicAudit.PatientRead")
    assert read.purposeOfEvent[0].coding[0].code == "TREAT"
    assert read.entity[0].what.reference == f"Patient/{accessed.patient.pk}"
    assert read.agent[0].who.display == "dr.house" and read.agent[0].requestor is True
    assert events[1].action == "C" and events[1].subtype[0].code == "create"


def test_each_download_is_recorded(accessed):
    client = _dpo_client(accessed.dpo)
    for fmt in ("csv", "pdf", "json"):
        assert client.get(_url(accessed.patient.pk, fmt)).status_code == 200
    events = audit_events(actor_id=accessed.dpo.pk, action="export")
    assert [(e.outcome, e.patient_id, e.category, e.details["format"]) for e in events] == [
        ("allowed", accessed.patient.pk, "administrative", fmt) for fmt in ("csv", "pdf", "json")]


@pytest.mark.parametrize("who", ["physician", "reception", "dim"])
def test_anyone_else_gets_403_and_a_denied_event(cast, who):
    user = getattr(cast, who)
    response = verified_client(user).get(_url(cast.patient.pk, "csv"))
    assert response.status_code == 403
    [event] = audit_events(actor_id=user.pk, action="export")
    assert (event.outcome, event.patient_id, event.basis) == ("denied", cast.patient.pk, "deny:not_dpo")


def test_anonymous_is_sent_to_sign_in(cast, client):
    rid = "0b6f2c1e-4d3a-4c8e-9f1a-2b3c4d5e6f70"
    response = client.get(_url(cast.patient.pk, "pdf"), HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 302 and "login" in response["Location"]
    # An anonymous request for a patient's report is a refusal like any other (issue 13, finding 6).
    assert [(e.basis, e.patient_id) for e in audit_events(request_id=rid)] == [
        ("deny:anonymous", cast.patient.pk)]


def test_a_report_refused_for_want_of_a_fresh_code_names_its_patient(cast):
    """A refusal names the file its URL asks for, whoever refuses (here the fresh-code check, before the view)."""
    from dpi.api.testing import request_id

    rid = request_id()
    response = verified_client(cast.dpo).get(_url(cast.patient.pk, "json"), HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 403
    assert [(e.basis, e.patient_id) for e in audit_events(request_id=rid)] == [("deny:fresh_otp", cast.patient.pk)]
