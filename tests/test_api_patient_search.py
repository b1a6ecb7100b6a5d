"""Patient search: by INS through its blind index, by name and birth date, through gate.visible_patients."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dpi.api.testing import bearer, make_api_client, request_id
from patients.ins import with_key
from patients.models import Patient
from tests.helpers import audit_events
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


def _search(client, token, query, **headers):
    return client.get(f"/api/patients/?{query}", headers=bearer(token, **headers))


def test_search_by_ins_finds_the_patient_through_the_blind_index(cast, client):
    _, token = make_api_client()
    ins = cast.patient.ins
    spaced = f"{ins[0]} {ins[1:3]} {ins[3:5]} {ins[5:7]} {ins[7:10]} {ins[10:13]} {ins[13:]}"
    response = _search(client, token, f"ins={spaced}")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [cast.patient.pk]
    # The INS itself is stored encrypted: the search never compares plaintext in SQL.
    with connection.cursor() as cur:
        cur.execute("SELECT ins FROM patients_patient WHERE id = %s", [cast.patient.pk])
        assert cur.fetchone()[0] != ins


def test_search_by_name_and_birth_date(cast, client):
    _, token = make_api_client()
    twin = make_patient(birth_name="LEROY", first_name="Anne", sex="F", birth_date=cast.patient.birth_date)
    make_patient(birth_name="LEROY", first_name="Paul", birth_date=cast.patient.birth_date.replace(year=1950))
    response = _search(client, token, f"family=ler&birth_date={cast.patient.birth_date.isoformat()}")
    assert [p["id"] for p in response.json()["results"]] == [twin.pk]
    response = _search(client, token, "family=LEROY&given=pa")
    assert [p["first_name"] for p in response.json()["results"]] == ["PAUL"]  # as the INS referential writes it


def test_restricted_patients_are_masked_from_searches(cast, client):
    _, token = make_api_client()
    make_patient(birth_name="CELEBRE", confidentiality=Patient.Confidentiality.RESTRICTED, restriction_reason="vip")
    assert _search(client, token, "family=celebre").json()["results"] == []


def test_a_search_needs_a_criterion(cast, client):
    _, token = make_api_client()
    response = client.get("/api/patients/", headers=bearer(token))
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_the_ins_is_shown_only_for_a_qualified_identity(cast, client):
    _, token = make_api_client()
    provisional = make_patient(identity_status=Patient.IdentityStatus.PROVISIONAL, ins=with_key("2850375000777"),
                               sex="F", birth_date=date(1985, 3, 1))
    assert client.get(f"/api/patients/{provisional.pk}/", headers=bearer(token)).json()["ins"] is None
    assert client.get(f"/api/patients/{cast.patient.pk}/", headers=bearer(token)).json()["ins"] == cast.patient.ins


def test_the_search_is_recorded_with_the_client(cast, client):
    api, token = make_api_client()
    rid = request_id()
    _search(client, token, "family=dupont", **{"X-Request-ID": rid})
    [event] = audit_events(request_id=rid)
    assert (event.action, event.outcome, event.resource_type) == ("search", "allowed", "patient")
    assert event.details["api_client"] == api.name


def test_the_number_of_queries_does_not_grow_with_the_results(cast, client):
    _, token = make_api_client()
    _search(client, token, "family=nombreux")  # first use of the token stamps last_used_at
    for _ in range(2):
        make_patient(birth_name="NOMBREUX")
    with CaptureQueriesContext(connection) as few:
        assert len(_search(client, token, "family=nombreux").json()["results"]) == 2
    for _ in range(8):
        make_patient(birth_name="NOMBREUX")
    with CaptureQueriesContext(connection) as many:
        assert len(_search(client, token, "family=nombreux").json()["results"]) == 10
    assert len(many) == len(few) <= 6, [q["sql"][:80] for q in many]


def test_pages_follow_an_opaque_cursor(cast, client):
    _, token = make_api_client()
    for _ in range(5):
        make_patient(birth_name="PAGINE")
    first = _search(client, token, "family=pagine&page_size=3").json()
    second = client.get(first["next"], headers=bearer(token)).json()
    ids = [p["id"] for p in first["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == 5
    assert second["next"] is None
