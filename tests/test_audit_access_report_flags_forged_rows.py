"""The patient's access report never shows a forged row as genuine (issue #14: "dr.forged" appeared in it).

A database superuser inserts a row reusing the id of a genuine event of the patient's file; once verify_audit has
named it, the DPO's CSV, PDF and FHIR downloads mark that row NOT GENUINE and leave the genuine one unmarked. A row
the chain quarantined at commit is flagged even before any verification."""

import csv
import io
import json
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle

from access import gate
from access.authn.services import FRESH_OTP_AT
from access.policy import Action, Category
from audit import reports, selectors
from audit.verification import chain_verify
from tests.test_audit_support import chain_now, sql, triggers_off, verified_client

pytestmark = pytest.mark.django_db


def _dpo_client(user):
    client = verified_client(user)
    session = client.session
    session[FRESH_OTP_AT] = time.time()  # an export of patient data needs a fresh one-time code (issue 13)
    session.save()
    return client


def _url(patient_id: int, fmt: str) -> str:
    return reverse("audit:patient_access_report", kwargs={"patient_id": patient_id, "fmt": fmt})


@pytest.fixture
def forged(cast):
    """The physician's genuine read of the file, then a forged row reusing its id (another date), named by
    verify_audit."""
    event = gate.authorize(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW,
                           resource_type="clinicalnote", resource_id=7)
    chain_now()
    genuine_id, genuine_at = sql("SELECT id, occurred_at FROM audit_accessevent WHERE patient_id = %s AND "
                                 "actor_id = %s ORDER BY id DESC LIMIT 1", [cast.patient.pk, cast.physician.pk])[0]
    assert event is None or getattr(event, "id", genuine_id) == genuine_id
    forged_at = genuine_at - timedelta(minutes=3)
    with triggers_off():
        sql("INSERT INTO audit_accessevent (id, occurred_at, actor_username, actor_role, patient_id, action, "
            "outcome, category) OVERRIDING SYSTEM VALUE VALUES (%s, %s, 'dr.forged', 'physician', %s, 'view', "
            "'allowed', 'medical')", [genuine_id, forged_at, cast.patient.pk])
    run = chain_verify(alert=False)
    assert (genuine_id, forged_at.isoformat()) in {(p["event_id"], p["occurred_at"]) for p in run.problems
                                                   if p["kind"] == "duplicate_id"}, run.problems
    return cast, genuine_id, genuine_at, forged_at


def test_the_selector_flags_the_forged_row_not_the_genuine_one(forged):
    cast, event_id, genuine_at, forged_at = forged
    events = selectors.patient_access_report(patient_id=cast.patient.pk)
    assert {(e.id, e.occurred_at) for e in events} >= {(event_id, genuine_at), (event_id, forged_at)}
    assert selectors.integrity_flags(events) == {(event_id, forged_at): "duplicate_id"}


def test_the_csv_marks_the_forged_row(forged):
    cast, event_id, genuine_at, forged_at = forged
    response = _dpo_client(cast.dpo).get(_url(cast.patient.pk, "csv"),
                                         HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    by_who = {r["who"]: r for r in rows if r["event"] == str(event_id)}
    assert by_who["dr.forged"]["integrity"].startswith("NOT GENUINE: inserted reusing the number")
    assert by_who["dr.house"]["integrity"] == ""
    assert all(r["integrity"] == "" for r in rows if r["who"] != "dr.forged")


def test_the_fhir_bundle_tags_the_forged_row_and_stays_valid(forged):
    cast, event_id, genuine_at, forged_at = forged
    response = _dpo_client(cast.dpo).get(_url(cast.patient.pk, "json"))
    assert response.status_code == 200
    bundle = json.loads(response.content)
    Bundle.model_validate(bundle)
    tagged = [e["resource"] for e in bundle["entry"] if e["resource"].get("meta", {}).get("tag")]
    assert [(r["id"], r["recorded"], r["meta"]["tag"][0]["code"]) for r in tagged] == [
        (str(event_id), reports._instant(forged_at), "not-genuine")]
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])


def test_the_pdf_marks_the_forged_row(forged, monkeypatch):
    cast, event_id, genuine_at, forged_at = forged
    seen = {}
    real = reports.to_pdf

    def spy(events, **kwargs):
        seen["labels"] = {(e.id, e.occurred_at): reports.integrity_label(e, kwargs.get("flags")) for e in events}
        return real(events, **kwargs)

    monkeypatch.setattr(reports, "to_pdf", spy)
    response = _dpo_client(cast.dpo).get(_url(cast.patient.pk, "pdf"),
                                         HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    assert seen["labels"][(event_id, forged_at)].startswith("NON AUTHENTIQUE")
    assert seen["labels"][(event_id, genuine_at)] == ""
