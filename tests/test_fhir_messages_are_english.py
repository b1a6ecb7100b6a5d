"""FHIR answers in English whatever the caller's language (the server's default is French): DRF's own messages
(authentication, not found, method not allowed) included."""

import pytest

from dpi.api.testing import bearer, make_api_client

pytestmark = pytest.mark.django_db


def _diagnostics(response) -> str:
    return response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("language", ["fr", "fr-FR,fr;q=0.9", ""])
def test_fhir_errors_are_in_english(cast, client, language):
    _, token = make_api_client()
    headers = {"Accept-Language": language} if language else {}
    anonymous = client.get(f"/fhir/Patient/{cast.patient.pk}", headers=headers)
    assert anonymous.status_code == 401
    assert _diagnostics(anonymous) == "Authentication credentials were not provided."
    missing = client.get("/fhir/Observation?patient=999999999", headers=bearer(token, **headers))
    assert missing.status_code == 404 and _diagnostics(missing) == "Not found."
    write = client.delete(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token, **headers))
    assert write.status_code == 405 and _diagnostics(write).startswith("Method DELETE is not supported")
