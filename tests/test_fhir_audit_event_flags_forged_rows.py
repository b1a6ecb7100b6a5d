"""The DPO's /fhir/AuditEvent never shows a forged row as genuine (issue #14, as the access report does).

A database superuser inserts a row reusing the id of a genuine event of the patient's file; once verify_audit has
named it, the FHIR search lists it with the report's not-genuine ``meta.tag`` (in the DPO's language) and its own
fullUrl, the genuine row stays unmarked, and a read by id answers the genuine row. A row the chain quarantined at
commit is tagged even before any verification."""

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from audit import reports
from dpi.api.testing import verified_login
from tests.helpers import audit_events
from tests.test_audit_access_report_flags_forged_rows import forged  # noqa: F401 - the fixture
from tests.test_audit_support import sql

pytestmark = pytest.mark.django_db


def _tags(resource: dict) -> list[dict]:
    return [t for t in resource.get("meta", {}).get("tag", []) if t["system"] == reports.INTEGRITY_SYSTEM]


def _search(client, patient_id: int, language: str) -> dict:
    response = client.get(f"/fhir/AuditEvent?patient={patient_id}&_count=100", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    bundle = response.json()
    Bundle.model_validate(bundle)
    return bundle


def test_the_search_tags_the_forged_row_not_the_genuine_one(forged, client):  # noqa: F811
    cast, event_id, genuine_at, forged_at = forged
    verified_login(client, cast.dpo)
    bundle = _search(client, cast.patient.pk, "en")
    same_id = {e["resource"]["recorded"]: e for e in bundle["entry"] if e["resource"]["id"] == str(event_id)}
    forged_entry, genuine_entry = same_id[reports._instant(forged_at)], same_id[reports._instant(genuine_at)]
    [tag] = _tags(forged_entry["resource"])
    assert tag["code"] == "not-genuine"
    assert tag["display"].startswith("NOT GENUINE: inserted reusing the number")
    assert [e["resource"]["id"] for e in bundle["entry"] if _tags(e["resource"])] == [str(event_id)]
    assert genuine_entry["fullUrl"].endswith(f"/fhir/AuditEvent/{event_id}")
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])
    # The DPO reading in French gets the report's French wording.
    french = _search(client, cast.patient.pk, "fr")
    [tag] = [t for e in french["entry"] for t in _tags(e["resource"])]
    assert tag["display"].startswith("NON AUTHENTIQUE")


def test_a_read_by_id_answers_the_genuine_row(forged, client):  # noqa: F811
    cast, event_id, genuine_at, forged_at = forged
    verified_login(client, cast.dpo)
    response = client.get(f"/fhir/AuditEvent/{event_id}")
    assert response.status_code == 200
    resource = response.json()
    AuditEvent.model_validate(resource)
    assert resource["recorded"] == reports._instant(genuine_at)
    assert not _tags(resource)


def test_a_quarantined_row_is_tagged_on_search_and_read(cast, client):
    """Quarantined at commit (tests/test_audit_reused_id_does_not_wedge.py shows the chain doing it): tagged before
    any verification; a row alone with its id is read as it is, tagged."""
    verified_login(client, cast.dpo)
    client.get(f"/fhir/AuditEvent?patient={cast.patient.pk}")  # the DPO's search is itself an event of the file
    event = audit_events(patient_id=cast.patient.pk)[0]
    sql("INSERT INTO audit_chainquarantine (event_id, event_occurred_at, canonical, reason, quarantined_at) "
        "VALUES (%s, %s, '', 'id already chained', now())", [event.id, event.occurred_at])
    bundle = _search(client, cast.patient.pk, "en")
    assert [e["resource"]["id"] for e in bundle["entry"] if _tags(e["resource"])] == [str(event.id)]
    resource = client.get(f"/fhir/AuditEvent/{event.id}", HTTP_ACCEPT_LANGUAGE="en").json()
    assert resource["id"] == str(event.id)
    assert _tags(resource)[0]["display"] == "NOT GENUINE: inserted reusing the number of a genuine trace"
