"""The DPO's /api/audit-events/ never shows a forged row as genuine (issue #14, as the access report and
/fhir/AuditEvent do).

A database superuser inserts a row reusing the id of a genuine event of the patient's file; once verify_audit has
named it, the REST list marks it ``integrity`` {code not-genuine, the report's wording in the DPO's language}, the
genuine row stays ``null``, and the answer keeps to the published OpenAPI schema. A row the chain quarantined at
commit is marked even before any verification."""

import copy

import jsonschema
import pytest

from audit import reports
from dpi.api.testing import verified_login
from tests.helpers import audit_events
from tests.test_api_schema_conformance import _published_schema
from tests.test_audit_access_report_flags_forged_rows import forged  # noqa: F401 - the fixture
from tests.test_audit_support import sql

pytestmark = pytest.mark.django_db


def _json_schema(node, components: dict):
    """An OpenAPI 3.0 schema as JSON Schema: $ref inlined, ``nullable`` as "or null"."""
    if isinstance(node, list):
        return [_json_schema(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {k: _json_schema(v, components) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out


def _event_schema() -> dict:
    components = _published_schema()["components"]["schemas"]
    return _json_schema(copy.deepcopy(components["AccessEvent"]), components)


def _list(client, patient_id: int, language: str) -> list[dict]:
    response = client.get(f"/api/audit-events/?patient={patient_id}&page_size=200", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    results = response.json()["results"]
    schema = _event_schema()
    assert "integrity" in schema["properties"]
    for row in results:
        jsonschema.validate(row, schema)
    return results


def test_the_list_marks_the_forged_row_not_the_genuine_one(forged, client):  # noqa: F811
    cast, event_id, genuine_at, forged_at = forged
    verified_login(client, cast.dpo)
    rows = _list(client, cast.patient.pk, "en")
    same_id = {r["actor_username"]: r for r in rows if r["id"] == event_id}
    assert same_id["dr.forged"]["integrity"]["code"] == reports.NOT_GENUINE == "not-genuine"
    assert same_id["dr.forged"]["integrity"]["display"].startswith("NOT GENUINE: inserted reusing the number")
    assert same_id["dr.house"]["integrity"] is None
    assert [r["actor_username"] for r in rows if r["integrity"]] == ["dr.forged"]
    # The DPO reading in French gets the report's French wording.
    [marked] = [r for r in _list(client, cast.patient.pk, "fr") if r["integrity"]]
    assert marked["integrity"]["display"].startswith("NON AUTHENTIQUE")


def test_a_quarantined_row_is_marked(cast, client):
    """Quarantined at commit (tests/test_audit_reused_id_does_not_wedge.py shows the chain doing it): marked before
    any verification."""
    verified_login(client, cast.dpo)
    client.get(f"/api/audit-events/?patient={cast.patient.pk}")  # the DPO's reading is itself an event of the file
    event = audit_events(patient_id=cast.patient.pk)[0]
    sql("INSERT INTO audit_chainquarantine (event_id, event_occurred_at, canonical, reason, quarantined_at) "
        "VALUES (%s, %s, '', 'id already chained', now())", [event.id, event.occurred_at])
    rows = _list(client, cast.patient.pk, "en")
    marked = [r for r in rows if r["integrity"]]
    assert [r["id"] for r in marked] == [event.id]
    assert marked[0]["integrity"] == {"code": "not-genuine",
                                      "display": "NOT GENUINE: inserted reusing the number of a genuine trace"}
