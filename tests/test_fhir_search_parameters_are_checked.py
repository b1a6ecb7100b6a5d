"""FHIR search parameters as the specification says: a repeated parameter is an AND (a comma is the OR), for
``patient`` too; a search with only unknown parameters names them; a code outside the closed gender value set
is a 400 naming ``gender``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from dpi import services as clinical_services
from dpi.api.testing import bearer, make_api_client
from tests.fhir_support import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    s = seed()
    _, token = make_api_client()

    def get(path: str):
        return client.get(f"/fhir/{path}", headers=bearer(token))

    return s, get


def _ids(body) -> set[int]:
    return {int(e["resource"]["id"]) for e in body.get("entry", [])}


def _issue(response) -> dict:
    return response.json()["issue"][0]


def test_a_repeated_patient_is_an_and_and_a_comma_an_or(api):
    s, get = api
    theirs = clinical_services.observation_record(
        patient=s.b, author=_author(), label="Glucose", loinc="2345-7",
        value=Decimal("5"), effective_at=timezone.now())
    mine = set(s.ids["Observation"])
    assert _ids(get(f"Observation?patient={s.a.pk},{s.b.pk}").json()) == mine | {theirs.pk}
    both = get(f"Observation?patient={s.a.pk}&patient={s.b.pk}")
    assert both.status_code == 200 and both.json()["total"] == 0
    assert _ids(get(f"Observation?patient={s.a.pk}&patient={s.a.pk},{s.b.pk}").json()) == mine
    assert _ids(get(f"Observation?patient={s.a.pk}&subject=Patient/{s.b.pk}").json()) == set()


def _author():
    from django.contrib.auth.models import User

    return User.objects.get(username="dr.seed")


def test_a_patient_search_with_only_unknown_parameters_names_them(api):
    _, get = api
    response = get("Patient?foo=bar")
    assert response.status_code == 400
    assert _issue(response)["expression"] == ["foo"]
    assert "foo" in _issue(response)["diagnostics"]
    assert _issue(get("Patient"))["expression"] == ["identifier"]  # nothing at all: as before


def test_an_unknown_gender_is_400_naming_gender(api):
    _, get = api
    response = get("Patient?gender=bogus")
    assert response.status_code == 400
    assert _issue(response)["expression"] == ["gender"]
    assert "female, male, other, unknown" in _issue(response)["diagnostics"]
    assert get("Patient?gender=male,bogus").status_code == 400
    for code in ("male", "female", "other", "unknown", "http://hl7.org/fhir/administrative-gender|female"):
        assert get(f"Patient?gender={code}").status_code == 200, code
    assert get("Patient?gender=other").json()["total"] == 0
    assert get("Patient?gender=female").json()["total"] >= 2
