"""Under /fhir/ every answer is FHIR: a session without its verified second factor gets a 403 OperationOutcome
(application/fhir+json), not the REST API's JSON; a browser opening the API's documentation page is sent to the
second-factor step like any other page."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_fhir_without_a_second_factor_is_a_403_operation_outcome(cast, client):
    client.force_login(cast.physician)
    response = client.get(f"/fhir/Patient/{cast.patient.pk}")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["code"] == "forbidden" and issue["details"]["text"] == "second_factor_required"
    assert "second factor" in issue["diagnostics"]


def test_the_rest_api_keeps_its_json_error(cast, client):
    client.force_login(cast.physician)
    response = client.get(f"/api/patients/{cast.patient.pk}/")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "second_factor_required"


def test_a_browser_on_the_api_docs_page_is_sent_to_the_second_factor_step(cast, client):
    client.force_login(cast.physician)
    response = client.get("/api/docs/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("authn-second-factor"))
    assert "next=%2Fapi%2Fdocs%2F" in response["Location"]
    # a program asking for the same page still gets data, not a redirect
    assert client.get("/api/docs/", headers={"Accept": "application/json"}).status_code == 403
