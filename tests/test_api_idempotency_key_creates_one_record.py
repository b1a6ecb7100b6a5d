"""A retried POST with the same Idempotency-Key gets the first answer and creates one record."""

import threading

import pytest
from django.db import connections

from dpi.api.models import IdempotencyRecord
from dpi.api.testing import bearer, make_api_client, post_json, request_id
from dpi.models import Observation
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _body(cast, value="5.4"):
    return {
        "patient": cast.patient.pk,
        "label": "Glucose",
        "loinc": "2345-7",
        "value": value,
        "unit": "mmol/L",
        "effective_at": "2025-03-01T08:00:00Z",
    }


def test_a_retried_post_creates_one_record_and_gets_the_same_answer(cast, client):
    _, token = make_api_client()
    headers = bearer(token, **{"Idempotency-Key": "sil-order-42-result-1"})
    first = post_json(client, "/api/observations/", _body(cast), **headers)
    rid = request_id()
    retry = post_json(client, "/api/observations/", _body(cast), **headers, **{"X-Request-ID": rid})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["ETag"] == first["ETag"] and retry["Location"] == first["Location"]
    assert retry["Idempotent-Replayed"] == "true"
    assert Observation.objects.filter(patient=cast.patient).count() == 1
    # The replay shows patient data again: the gate checked and recorded it as a read.
    [event] = audit_events(request_id=rid)
    assert (event.action, event.outcome, event.details["idempotent_replay"]) == ("view", "allowed", True)


def test_the_stored_answer_is_encrypted(cast, client):
    _, token = make_api_client()
    post_json(
        client,
        "/api/observations/",
        {**_body(cast), "value": None, "value_text": "très positif"},
        **bearer(token, **{"Idempotency-Key": "k-enc"}),
    )
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT response_body FROM api_idempotencyrecord")
        [(stored,)] = cur.fetchall()
    assert "positif" not in stored and "Glucose" not in stored


def test_the_same_key_with_another_body_is_422_and_writes_nothing(cast, client):
    _, token = make_api_client()
    headers = bearer(token, **{"Idempotency-Key": "k-1"})
    assert post_json(client, "/api/observations/", _body(cast), **headers).status_code == 201
    response = post_json(client, "/api/observations/", _body(cast, value="9.9"), **headers)
    assert response.status_code == 422
    assert [str(v) for v in Observation.objects.values_list("value", flat=True)] == ["5.400"]


def test_the_key_of_a_refused_request_stays_free_for_the_corrected_retry(cast, client):
    _, token = make_api_client()
    headers = bearer(token, **{"Idempotency-Key": "k-2"})
    bad = post_json(client, "/api/observations/", {**_body(cast), "effective_at": "not a date"}, **headers)
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.exists()
    assert post_json(client, "/api/observations/", _body(cast), **headers).status_code == 201
    assert Observation.objects.count() == 1


def test_keys_belong_to_one_client(cast, client):
    _, token_a = make_api_client()
    _, token_b = make_api_client()
    for token in (token_a, token_b):
        assert (
            post_json(
                client, "/api/observations/", _body(cast), **bearer(token, **{"Idempotency-Key": "same"})
            ).status_code
            == 201
        )
    assert Observation.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_retries_create_one_record(cast):
    from django.test import Client

    _, token = make_api_client()
    headers = bearer(token, **{"Idempotency-Key": "concurrent-1"})
    barrier, answers = threading.Barrier(2), []

    def send():
        try:
            barrier.wait()
            answers.append(post_json(Client(), "/api/observations/", _body(cast), **headers))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert Observation.objects.filter(patient=cast.patient).count() == 1
