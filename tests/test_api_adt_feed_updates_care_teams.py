"""The admission / transfer / discharge feed goes through the services, and care teams follow."""

import pytest

from access import gate
from access.policy import Action, Category
from dpi.api.testing import bearer, make_api_client, post_json
from patients.models import Encounter
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


def _can_read_chart(user, patient_id) -> bool:
    return gate.decide(user, patient_id=patient_id, category=Category.MEDICAL, action=Action.VIEW).allowed


def test_an_admission_lets_the_units_team_in(cast, client):
    _, token = make_api_client()
    patient = make_patient()
    assert not _can_read_chart(cast.nurse, patient.pk)
    response = post_json(client, "/api/encounters/", {"patient": patient.pk, "unit": cast.cardio.code}, **bearer(token))
    assert response.status_code == 201
    assert response.json()["end"] is None
    assert _can_read_chart(cast.nurse, patient.pk)
    assert not _can_read_chart(cast.other_physician, patient.pk)


def test_a_transfer_opens_the_next_units_access_and_a_discharge_closes_the_stay(cast, client):
    _, token = make_api_client()
    url = f"/api/encounters/{cast.encounter.pk}/"
    etag = client.get(url, headers=bearer(token))["ETag"]
    moved = post_json(client, f"{url}transfer/", {"unit": cast.other_unit.code}, **bearer(token, **{"If-Match": etag}))
    assert moved.status_code == 201
    new = moved.json()
    assert (new["unit"], new["transferred_from"]) == (cast.other_unit.code, cast.encounter.pk)
    assert Encounter.objects.get(pk=cast.encounter.pk).end is not None
    assert _can_read_chart(cast.other_physician, cast.patient.pk)
    # A second transfer from the closed encounter (a stale feed message) is refused.
    assert post_json(client, f"{url}transfer/", {"unit": cast.cardio.code}, **bearer(token)).status_code == 400
    done = post_json(client, f"/api/encounters/{new['id']}/discharge/", {}, **bearer(token))
    assert done.status_code == 200 and done.json()["end"] is not None
    again = post_json(client, f"/api/encounters/{new['id']}/discharge/", {}, **bearer(token))
    assert again.status_code == 400 and "end" in again.json()


def test_a_transfer_with_a_stale_etag_gets_412(cast, client):
    _, token = make_api_client()
    response = post_json(
        client,
        f"/api/encounters/{cast.encounter.pk}/transfer/",
        {"unit": cast.other_unit.code},
        **bearer(token, **{"If-Match": '"encounter-0-stale"'}),
    )
    assert response.status_code == 412
    assert Encounter.objects.filter(patient=cast.patient).count() == 1


def test_encounters_are_listed_per_patient(cast, client):
    _, token = make_api_client()
    response = client.get(f"/api/encounters/?patient={cast.patient.pk}", headers=bearer(token))
    assert [e["id"] for e in response.json()["results"]] == [cast.encounter.pk]
    assert client.get("/api/encounters/", headers=bearer(token)).status_code == 400
