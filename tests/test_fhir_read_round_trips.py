"""An audited FHIR read costs a fixed number of round trips once its token is verified (issue #18): the gate's
facts query, the access event's INSERT and the patient row in one statement (the row leaves the database only
with its trace), and one Redis round trip (rate limit and credential check together). A regression
that adds a query or a Redis command fails here."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from redis.connection import AbstractConnection

from audit.models import AccessEvent
from dpi.api.testing import bearer, make_api_client, request_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_commands(monkeypatch):
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)  # TCP and Unix socket alike
    return sent


def test_a_cached_token_read_is_one_statement_and_one_redis_round_trip(cast, client, redis_commands):
    _, token = make_api_client()
    url = f"/fhir/Patient/{cast.patient.pk}"
    assert client.get(url, headers=bearer(token)).status_code == 200  # verifies and caches the token
    redis_commands.clear()
    rid = request_id()
    with CaptureQueriesContext(connections["default"]) as default, \
            CaptureQueriesContext(connections["audit"]) as independent:
        response = client.get(url, headers=bearer(token, **{"X-Request-ID": rid}))
    assert response.status_code == 200 and response.json()["id"] == str(cast.patient.pk)
    statements = [q["sql"] for q in default.captured_queries]
    assert len(statements) == 1, statements
    assert statements[0].startswith("WITH f AS (")
    assert "access_caregrant" in statements[0] and "INSERT INTO audit_accessevent" in statements[0]
    assert "patients_patient" in statements[0]
    assert not independent.captured_queries
    assert len(redis_commands) == 1
    # The one access event of the read, on the request's own connection.
    [event] = AccessEvent.objects.filter(request_id=rid)
    assert (event.action, event.outcome, event.patient_id) == ("view", "allowed", cast.patient.pk)


def test_behind_a_transaction_pooler_the_read_prepares_nothing(cast, client, monkeypatch):
    # DPI_DB_DISABLE_SERVER_SIDE_CURSORS=1 (PgBouncer in transaction mode): the hot statements use Django's
    # ordinary client-side cursor, and the read still answers with its access event.
    from dpi.prepared import _PreparedCursor, prepared_cursor

    monkeypatch.setitem(connections["default"].settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    with prepared_cursor() as cur:
        assert not isinstance(cur.cursor, _PreparedCursor)
    _, token = make_api_client()
    rid = request_id()
    response = client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token, **{"X-Request-ID": rid}))
    assert response.status_code == 200
    assert AccessEvent.objects.filter(request_id=rid, outcome="allowed").count() == 1


def test_the_rest_read_of_a_patient_is_one_statement_too(cast, client):
    _, token = make_api_client()
    url = f"/api/patients/{cast.patient.pk}/"
    assert client.get(url, headers=bearer(token)).status_code == 200
    rid = request_id()
    with CaptureQueriesContext(connections["default"]) as default:
        response = client.get(url, headers=bearer(token, **{"X-Request-ID": rid}))
    assert response.status_code == 200 and response.json()["id"] == cast.patient.pk
    statements = [q["sql"] for q in default.captured_queries]
    assert len(statements) == 1, statements
    assert "INSERT INTO audit_accessevent" in statements[0]
    assert AccessEvent.objects.filter(request_id=rid, outcome="allowed", patient_id=cast.patient.pk).count() == 1


def test_the_events_commit_waits_for_the_disk():
    # The one-statement event + read is durable before the answer only if PostgreSQL flushes the WAL at COMMIT:
    # nobody may trade that for speed (synchronous_commit off would lose acknowledged traces on a crash).
    with connections["default"].cursor() as cur:
        cur.execute("SHOW synchronous_commit")
        assert cur.fetchone()[0] in {"on", "remote_write", "remote_apply"}


def test_the_reads_statement_is_prepared_once_per_connection(cast, client):
    # Django turns psycopg's prepared statements off; dpi.prepared turns them back on for its own statements
    # only, so PostgreSQL plans the read's statement once per connection instead of on every read.
    _, token = make_api_client()
    for _ in range(3):
        assert client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token)).status_code == 200
    with connections["default"].cursor() as cur:
        cur.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'WITH f AS (%%'")
        assert len(cur.fetchall()) == 1
