"""PATCH needs the ETag that was read: ``If-Match: *`` (any version) would skip the lost-update check, so it is
refused like a missing If-Match (428) and changes nothing."""

import pytest

from dpi.api.testing import bearer, make_api_client, patch_json
from patients.models import Patient

pytestmark = pytest.mark.django_db


def test_if_match_star_on_a_patch_gets_428_and_changes_nothing(cast, client):
    _, token = make_api_client()
    before = Patient.objects.get(pk=cast.patient.pk).phone
    response = patch_json(client, f"/api/patients/{cast.patient.pk}/", {"phone": "0611111111"},
                          **bearer(token, **{"If-Match": "*"}))
    assert response.status_code == 428
    assert "ETag" in response.json()["detail"]
    assert Patient.objects.get(pk=cast.patient.pk).phone == before


def test_if_match_star_is_still_accepted_where_if_match_is_optional(cast, client):
    _, token = make_api_client()
    response = client.post(f"/api/encounters/{cast.encounter.pk}/discharge/", data="{}",
                           content_type="application/json", headers=bearer(token, **{"If-Match": "*"}))
    assert response.status_code == 200
