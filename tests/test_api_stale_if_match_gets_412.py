"""Updates carry If-Match with the ETag that was read: a stale one gets 412 and changes nothing (no lost update)."""

import pytest
from django.utils import timezone

from dpi import services as clinical_services
from dpi.api.testing import bearer, make_api_client, patch_json
from dpi.models import Amendment, Observation
from patients.models import Patient

pytestmark = pytest.mark.django_db


def test_a_stale_if_match_gets_412_and_changes_nothing(cast, client):
    _, token = make_api_client()
    url = f"/api/patients/{cast.patient.pk}/"
    etag = client.get(url, headers=bearer(token))["ETag"]
    first = patch_json(client, url, {"phone": "0102030405"}, **bearer(token, **{"If-Match": etag}))
    assert first.status_code == 200
    assert first["ETag"] != etag
    # A second system still holding the old version:
    stale = patch_json(client, url, {"phone": "0611111111"}, **bearer(token, **{"If-Match": etag}))
    assert stale.status_code == 412
    assert Patient.objects.get(pk=cast.patient.pk).phone == "0102030405"


def test_an_update_without_if_match_gets_428(cast, client):
    _, token = make_api_client()
    response = patch_json(client, f"/api/patients/{cast.patient.pk}/", {"phone": "0102030405"}, **bearer(token))
    assert response.status_code == 428
    assert Patient.objects.get(pk=cast.patient.pk).phone == ""


def test_a_weak_etag_never_matches(cast, client):
    _, token = make_api_client()
    url = f"/api/patients/{cast.patient.pk}/"
    etag = client.get(url, headers=bearer(token))["ETag"]
    response = patch_json(client, url, {"phone": "0102030405"}, **bearer(token, **{"If-Match": f"W/{etag}"}))
    assert response.status_code == 412


def test_a_result_corrected_from_a_stale_version_gets_412(cast, client):
    _, token = make_api_client()
    obs = clinical_services.observation_record(
        patient=cast.patient,
        author=cast.physician,
        label="Potassium",
        value="3.1",
        unit="mmol/L",
        effective_at=timezone.now(),
    )
    url = f"/api/observations/{obs.pk}/"
    etag = client.get(url, headers=bearer(token))["ETag"]
    ok = patch_json(
        client, url, {"value": "4.1", "reason": "hémolyse, recontrôle"}, **bearer(token, **{"If-Match": etag})
    )
    assert ok.status_code == 200
    assert ok.json()["version"] == 2
    stale = patch_json(client, url, {"value": "5.0", "reason": "autre"}, **bearer(token, **{"If-Match": etag}))
    assert stale.status_code == 412
    obs = Observation.objects.get(pk=obs.pk)
    assert (str(obs.value), obs.version) == ("4.100", 2)
    assert Amendment.objects.filter(resource_type="observation", resource_id=obs.pk).count() == 1
