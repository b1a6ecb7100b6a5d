"""A read's trace committed beside the read (``audit.services.read_trace``, issue #18): the chart page's events
are written on the audit connection and their COMMIT goes out while the sections are read; the page leaves only
once that COMMIT is confirmed. Every decision stays recorded (also when the page fails afterwards), a refusal
commits at once, a COMMIT that fails fails the request, and inside a caller's transaction nothing changes."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, connections, transaction

from access import gate
from access.policy import Action, Category
from audit.context import access_context
from audit.models import AccessEvent, ChainLink
from audit.services import chain_seal, current_read_trace
from patients.selectors import patient_reader
from tests.test_audit_support import sql
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_permission_cache(monkeypatch):
    import access.care_team

    monkeypatch.setattr(access.care_team, "_perm_id", None)  # permissions are recreated after each flush


def _events(request_id: str) -> list[tuple[str, str, str]]:
    """What another connection sees: committed events only."""
    return [tuple(r) for r in sql("SELECT resource_type, outcome, basis FROM audit_accessevent "
                                  "WHERE request_id = %s ORDER BY id", [request_id])]


def _read(cast):
    return gate.require_read(cast.physician, reader=patient_reader, patient_id=cast.patient.pk,
                             category=Category.MEDICAL, action=Action.VIEW, resource_type="chart",
                             resource_id=cast.patient.pk)


def test_the_event_commits_on_release_while_the_caller_reads_and_is_chained(cast):
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), gate.read_trace() as trace:
        assert trace is not None and current_read_trace() is trace
        _, patient = _read(cast)
        assert patient.pk == cast.patient.pk
        assert _events(rid) == []  # not committed yet: the trace's transaction is open
        trace.release()
        assert cast.patient.encounters.count() >= 1  # the caller reads on its own connection meanwhile
        trace.settle()
        assert [e[:2] for e in _events(rid)] == [("chart", "allowed")]
    event = AccessEvent.objects.get(request_id=rid)
    chain_seal()
    assert ChainLink.objects.filter(event_id=event.pk).exists()


def test_a_page_failing_after_the_decision_keeps_its_event(cast):
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), pytest.raises(RuntimeError), gate.read_trace():
        _read(cast)
        raise RuntimeError("the page failed after the decision")
    assert [e[:2] for e in _events(rid)] == [("chart", "allowed")]


def test_a_refusal_inside_a_trace_is_committed_at_once(cast):
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), gate.read_trace():
        _read(cast)
        decision = gate.authorize(cast.reception, patient_id=cast.patient.pk, category=Category.MEDICAL,
                                  action=Action.VIEW, resource_type="chart", resource_id=cast.patient.pk)
        assert not decision.allowed
        # Seen from another connection before the block ends: the refusal and the allowed read before it.
        assert [e[1] for e in _events(rid)] == ["allowed", "denied"]


@pytest.fixture
def commit_fails_for():
    """A deferred check that fails the COMMIT of any transaction holding an event of the given request id."""
    sql("CREATE FUNCTION pg_temp_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'refused at commit'; END $$")
    sql("CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON audit_accessevent "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.request_id LIKE 'fail-at-commit-%') "
        "EXECUTE FUNCTION pg_temp_fail_commit()")
    try:
        yield lambda: f"fail-at-commit-{uuid.uuid4().hex}"
    finally:
        sql("DROP TRIGGER test_fail_at_commit ON audit_accessevent")
        sql("DROP FUNCTION pg_temp_fail_commit()")


def test_a_commit_that_fails_fails_the_request(cast, commit_fails_for):
    rid = commit_fails_for()
    with access_context(request_id=rid), pytest.raises(DatabaseError, match="refused at commit"), \
            gate.read_trace() as trace:
        _read(cast)
        trace.release()
        trace.settle()
    assert _events(rid) == []
    # The connection is usable again afterwards.
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), gate.read_trace():
        _read(cast)
    assert [e[:2] for e in _events(rid)] == [("chart", "allowed")]


def test_a_lost_connection_before_the_commit_fails_the_request(cast):
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), pytest.raises(DatabaseError), gate.read_trace() as trace:
        _read(cast)
        sql("SELECT pg_terminate_backend(%s)", [connections["audit"].connection.info.backend_pid])
        trace.release()
        trace.settle()
    assert _events(rid) == []
    with access_context(request_id=rid), gate.read_trace():
        _read(cast)
    assert [e[:2] for e in _events(rid)] == [("chart", "allowed")]


def test_a_failed_statement_of_the_trace_fails_its_commit_even_when_ignored(cast):
    # The first event was sent in the trace's transaction; a later statement fails and its caller goes on: the
    # transaction is gone, so the COMMIT must not look confirmed (the page would leave without its first event).
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), pytest.raises(DatabaseError), gate.read_trace() as trace:
        _read(cast)
        with pytest.raises(DatabaseError):
            trace.fetch_one("SELECT 1 / %(zero)s", {"zero": 0})
        trace.release()
        trace.settle()
    assert _events(rid) == []


def test_another_use_of_the_audit_connection_during_a_trace_fails_loudly(cast):
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), gate.read_trace():
        _read(cast)
        with pytest.raises(DatabaseError), connections["audit"].cursor() as cur:
            cur.execute("SELECT 1")  # not silently outside the trace's transaction, nor inside it
    assert [e[:2] for e in _events(rid)] == [("chart", "allowed")]


def test_inside_a_callers_transaction_the_event_follows_it(cast):
    rid = uuid.uuid4().hex
    with access_context(request_id=rid), pytest.raises(RuntimeError), transaction.atomic():
        with gate.read_trace() as trace:
            assert trace is None
            _read(cast)
        raise RuntimeError("rolled back")
    assert _events(rid) == []


def test_the_chart_page_records_its_reads_before_it_leaves(cast):
    client = verified_client(cast.physician)
    before = AccessEvent.objects.filter(patient_id=cast.patient.pk, actor_id=cast.physician.pk).count()
    response = client.get(f"/patients/{cast.patient.pk}/")
    assert response.status_code == 200
    kinds = list(AccessEvent.objects.filter(patient_id=cast.patient.pk, actor_id=cast.physician.pk)
                 .order_by("id").values_list("resource_type", "outcome")[before:])
    assert ("chart", "allowed") in kinds and ("patient", "allowed") in kinds
    # Nothing is left open on the audit connection between requests.
    from psycopg import pq

    audit = connections["audit"]
    if audit.connection is not None:
        assert audit.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE


def test_a_refused_chart_page_is_recorded(cast):
    client = verified_client(cast.reception)
    response = client.get(f"/patients/{cast.patient.pk}/")
    assert response.status_code in (302, 403, 404)
    assert AccessEvent.objects.filter(patient_id=cast.patient.pk, actor_id=cast.reception.pk, outcome="denied").exists()


def test_a_transaction_left_open_on_the_audit_connection_is_not_written_into(cast):
    rid = uuid.uuid4().hex
    with connections["audit"].cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("CREATE TEMPORARY TABLE left_open (x int)")  # something else's uncommitted work
    with access_context(request_id=rid), gate.read_trace():
        _read(cast)
    assert [e[:2] for e in _events(rid)] == [("chart", "allowed")]
    with connections["audit"].cursor() as cur:
        cur.execute("SELECT to_regclass('pg_temp.left_open')")
        assert cur.fetchone()[0] is None  # rolled back, not committed with the trace
