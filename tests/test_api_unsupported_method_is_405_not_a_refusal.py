"""A method a view does not implement is a 405 with an Allow header, before the scope check, and leaves no
refused-access event: it is no access decision on patient data (detection must not count it)."""

import pytest

from dpi.api.scopes import scope
from dpi.api.testing import bearer, make_api_client, request_id
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["delete", "put", "options"])
def test_an_unsupported_method_on_a_patient_is_405_and_records_nothing(cast, client, method):
    _, token = make_api_client(scopes=[scope("administrative", "view")])
    rid = request_id()
    response = getattr(client, method)(f"/api/patients/{cast.patient.pk}/",
                                       headers=bearer(token, **{"X-Request-ID": rid}))
    assert response.status_code == 405
    allowed = {m.strip() for m in response["Allow"].split(",")}
    assert {"GET", "PATCH"} <= allowed and method.upper() not in allowed
    assert "not supported" in response.json()["detail"]
    assert not [e for e in audit_events(request_id=rid) if e.outcome == "denied"]


def test_an_unsupported_method_on_a_list_is_405(cast, client):
    _, token = make_api_client()
    response = client.delete("/api/observations/", headers=bearer(token))
    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_a_missing_scope_on_a_supported_method_is_still_refused(cast, client):
    _, token = make_api_client(scopes=[scope("administrative", "view")])
    response = client.patch(f"/api/patients/{cast.patient.pk}/", data="{}", content_type="application/json",
                            headers=bearer(token))
    assert response.status_code == 403


@pytest.mark.parametrize("method", ["delete", "put", "post"])
def test_fhir_writes_are_405_in_english_before_the_scope_check(cast, client, method):
    _, token = make_api_client(scopes=[scope("administrative", "view")])
    response = getattr(client, method)(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token))
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/fhir+json")
    issue = response.json()["issue"][0]
    assert issue["code"] == "not-supported"
    assert issue["diagnostics"].startswith(f"Method {method.upper()} is not supported")
    assert "GET" in response["Allow"]
