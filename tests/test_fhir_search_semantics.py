"""FHIR search answers like a standard server: strict and lenient handling, links that identify each page,
totals, _summary=count, _sort, 406 for formats not served, and never a 500 on extreme dates or garbage."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from dpi.api.testing import bearer, make_api_client
from tests.fhir_support import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    s = seed()
    _, token = make_api_client()

    def get(path: str, **headers):
        return client.get(f"/fhir/{path}", headers=bearer(token, **headers))

    return s, get


def _links(body) -> dict[str, dict[str, list[str]]]:
    return {link["relation"]: parse_qs(urlparse(link["url"]).query) for link in body["link"]}


def test_unknown_parameters_strict_and_lenient(api):
    s, get = api
    strict = get("Patient?family=alph&colour=blue", Prefer="handling=strict")
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["expression"] == ["colour"]
    lenient = get("Patient?family=alph&colour=blue")
    assert lenient.status_code == 200 and lenient.json()["total"] == 2
    assert "colour" not in _links(lenient.json())["self"]
    assert _links(lenient.json())["self"]["family"] == ["alph"]
    # A modifier the parameter does not declare is refused whatever the handling (it would widen the search).
    assert get("Patient?birthdate:exact=1950").status_code == 400


def test_pages_have_their_own_self_previous_and_next(api):
    s, get = api
    first = get(f"Observation?patient={s.a.pk}&_count=1&_sort=date").json()
    assert first["total"] == 3 and len(first["entry"]) == 1
    links = _links(first)
    assert "previous" not in links and links["next"]["_offset"] == ["1"]
    second = get(f"Observation?patient={s.a.pk}&_count=1&_sort=date&_offset=1").json()
    links2 = _links(second)
    assert links2["self"] != links["self"] and links2["self"]["_offset"] == ["1"]
    assert links2["previous"].get("_offset") is None and links2["next"]["_offset"] == ["2"]
    third = get(f"Observation?patient={s.a.pk}&_count=1&_sort=date&_offset=2").json()
    assert "next" not in _links(third)
    seen = [page["entry"][0]["resource"]["effectiveDateTime"] for page in (first, second, third)]
    assert seen == sorted(seen)
    assert len({page["entry"][0]["resource"]["id"] for page in (first, second, third)}) == 3


def test_sort_total_and_summary(api):
    s, get = api
    by_birth = get("Patient?birthdate=ge1900&_sort=-birthdate").json()
    assert [e["resource"]["birthDate"] for e in by_birth["entry"]] == ["2000-01-01", "1985-07-01", "1950-03-15"]
    assert get("Patient?family=a&_sort=colour").status_code == 400
    no_total = get("Patient?family=alph&_total=none").json()
    assert "total" not in no_total and len(no_total["entry"]) == 2
    count_only = get("Patient?family=alph&_summary=count").json()
    assert count_only["total"] == 2 and "entry" not in count_only


def test_formats_not_served_get_406(api):
    s, get = api
    for path in (
        "Patient?family=alph&_format=xml",
        "metadata?_format=application/fhir+xml",
        f"Patient/{s.a.pk}?_format=xml",
    ):
        response = get(path)
        assert response.status_code == 406, path
        assert response.json()["resourceType"] == "OperationOutcome"
    assert get("Patient?family=alph", Accept="application/fhir+xml").status_code == 406
    assert get("Patient?family=alph&_format=json").status_code == 200
    assert get("Patient?family=alph", Accept="application/fhir+json").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "Patient?birthdate=le9999-12-31",
        "Patient?birthdate=gt9999-12-31",
        "Patient?birthdate=ge0001-01-01",
        "Patient?birthdate=lt0001-01-01T00:00:00Z",
        "Patient?birthdate=eq9999-12-31T23:59:59%2B14:00",
        "Patient?birthdate=ge0000-01-01",
        "Patient?birthdate=2024-02-30",
        "Patient?birthdate=xx2024",
        "Patient?birthdate=2024-13",
        "Patient?birthdate=%00%ff",
        "Patient?family=" + "x" * 500,
        "Patient?_count=999999999999999999999",
        "Patient?family=a&_offset=-1",
        "Patient?_id=99999999999999999999999",
        "Patient?identifier=%7C%7C%7C",
        "Patient?gender=%2C%2C",
        "Observation?patient=Patient/abc",
        "Observation?patient=0",
        "Encounter?patient={a}&date=le9999-12-31",
        "Encounter?patient={a}&date=gt9999",
        "Encounter?patient={a}&date=eb0001",
        "Encounter?patient={a}&date=sa9999-12-31T23:59:59Z",
        "Observation?patient={a}&date=ne0001-01-01T00:00:00-14:00",
        "Condition?patient={a}&onset-date=le9999-12-31",
        "AllergyIntolerance?patient={a}&date=2024-01-01T25:00",
    ],
)
def test_extreme_dates_and_garbage_never_500(api, query):
    s, get = api
    response = get(query.format(a=s.a.pk))
    assert response.status_code in {200, 400}, (query, response.content[:300])
    assert response.json()["resourceType"] in {"Bundle", "OperationOutcome"}


def test_an_uploaded_documents_type_gives_its_xds_codes_and_hash(api, client):
    import base64
    import hashlib

    from django.core.files.uploadedfile import SimpleUploadedFile

    s, get = api
    _, token = make_api_client()
    content = b"%PDF-1.4 lettre de liaison"

    def upload(type_code: str):
        data = {
            "patient": s.a.pk,
            "title": "Lettre",
            "type_code": type_code,
            "file": SimpleUploadedFile("l.pdf", content, "application/pdf"),
        }
        return client.post("/api/documents/", data=data, headers=bearer(token))

    assert upload("99999-9").status_code == 400
    created = upload("11490-0")
    assert created.status_code == 201, created.content
    doc = get(f"DocumentReference/{created.json()['id']}").json()
    assert doc["type"]["coding"][0]["code"] == "11490-0"
    assert doc["category"][0]["coding"][0]["code"] == "11"
    assert (
        doc["content"][0]["attachment"]["hash"]
        == base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()
    )
    assert doc["author"][0]["identifier"]["value"]
