"""A chart costs the same number of queries whatever the size of the record (no N+1), and stays small."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dpi import services as dpi_services
from dpi.models import Allergy, Prescription, Problem
from patients import services as patient_services
from tests.helpers import page_queries
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db

MAX_QUERIES = 30


def _fill(patient, author, encounter, n: int) -> None:
    now = timezone.now()
    for i in range(n):
        dpi_services.note_create(patient=patient, author=author, encounter=encounter, body=f"note {i}",
                                 sensitive=i % 3 == 0)
        dpi_services.observation_record(patient=patient, author=author, label=f"Lab {i}", value=Decimal(i),
                                        reference_high=Decimal(3), effective_at=now - timedelta(hours=i))
        Prescription.objects.create(patient=patient, author=author, medication=f"Drug {i}", instructions="x",
                                    start=now.date())
        Allergy.objects.create(patient=patient, author=author, substance=f"Allergen {i}")
        Problem.objects.create(patient=patient, author=author, icd10="I10", label=f"Problem {i}")
        dpi_services.document_add(patient=patient, author=author, title=f"Doc {i}", content=b"x")


def _chart_queries(client, patient) -> int:
    client.get(f"/patients/{patient.pk}/")  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/patients/{patient.pk}/")
    assert response.status_code == 200
    return page_queries(ctx)


def test_chart_queries_do_not_grow_with_the_record(cast):
    small = cast.patient
    _fill(small, cast.physician, cast.encounter, 1)
    large = make_patient()
    encounter = patient_services.encounter_admit(patient=large, unit=cast.cardio)
    _fill(large, cast.physician, encounter, 25)
    client = verified_client(cast.physician)
    small_count, large_count = _chart_queries(client, small), _chart_queries(client, large)
    assert small_count == large_count
    assert large_count <= MAX_QUERIES


def test_search_queries_do_not_grow_with_the_results(cast):
    client = verified_client(cast.nurse)
    client.get("/patients/?q=dupont")
    with CaptureQueriesContext(connection) as few:
        client.get("/patients/?q=dupont")
    for _ in range(20):
        make_patient()
    with CaptureQueriesContext(connection) as many:
        response = client.get("/patients/?q=dupont")
    assert response.content.decode().count("/patients/") > 20
    assert page_queries(few) == page_queries(many) <= MAX_QUERIES
