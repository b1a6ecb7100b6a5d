"""Live: the application's own database role inserts events reusing existing ids (``OVERRIDING SYSTEM VALUE``),
once while the chain lock is free and once while another committer holds it (the row is then queued). The
chain quarantines both at commit instead of failing every later commit: chart reads keep answering 200, the
DPO dashboard keeps working, and verify_audit names both inserted rows."""

import pytest
from django.db import connection

from audit import selectors
from audit.models import AccessEvent, ChainQuarantine
from audit.services import chain_seal, checkpoint_sign
from audit.verification import chain_verify
from tests.test_audit_support import verified_client

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN_LOCK = 7391004412  # migration 0003


def sql_count(query: str) -> int:
    with connection.cursor() as cur:
        cur.execute(query)
        return int(cur.fetchone()[0])


def _app_role_connection():
    conn = connection.get_new_connection(connection.get_connection_params())
    conn.autocommit = False
    conn.execute("SET ROLE dpi_app_audit")  # INSERT and SELECT only (migration 0004)
    return conn


def _forge(conn, reused_id: int):
    conn.execute("INSERT INTO audit_accessevent (action, outcome) VALUES ('login', 'allowed')")  # an ordinary one
    row = conn.execute(
        "INSERT INTO audit_accessevent (id, actor_username, patient_id, action, outcome, category) "
        "OVERRIDING SYSTEM VALUE VALUES (%s, 'dr.forged', 1, 'view', 'allowed', 'medical') RETURNING id, occurred_at",
        [reused_id]).fetchone()
    conn.commit()
    return row


def test_a_reused_id_is_quarantined_the_app_keeps_serving_and_the_verifier_names_it(cast):
    chart = f"/patients/{cast.patient.pk}/"
    client = verified_client(cast.physician)
    assert client.get(chart).status_code == 200
    assert client.get(chart).status_code == 200
    first, second = AccessEvent.objects.filter(actor_id=cast.physician.pk).order_by("id").values_list(
        "id", flat=True)[:2]
    forged: list[tuple[int, object]] = []
    try:
        conn = _app_role_connection()
        try:
            forged.append(_forge(conn, first))  # chain lock free: quarantined by its own commit
            holder = connection.get_new_connection(connection.get_connection_params())
            holder.autocommit = True
            try:
                holder.execute("SELECT pg_advisory_lock(%s)", [CHAIN_LOCK])  # another committer, mid-COMMIT
                forged.append(_forge(conn, second))  # queued; quarantined when the next committer drains it
                holder.execute("SELECT pg_advisory_unlock(%s)", [CHAIN_LOCK])
            finally:
                holder.close()
        finally:
            conn.close()

        for _ in range(10):  # every later commit still goes through
            assert client.get(chart).status_code == 200
        assert verified_client(cast.dpo).get("/dpo/").status_code == 200

        chain_seal()
        assert sorted(ChainQuarantine.objects.values_list("event_id", flat=True)) == [first, second]
        # Before any verification, the patient's access report already flags the quarantined rows, not the genuine.
        rows = list(AccessEvent.objects.filter(id__in=[first, second]))
        assert len(rows) == 4
        assert selectors.integrity_flags(rows) == {(event_id, at): "quarantined" for event_id, at in forged}
        checkpoint_sign()
        # Outside a test transaction the verifier reads the events on DPI_AUDIT_VERIFY_STREAMS connections sharing
        # its snapshot, slice by slice of ids: with slices of 3 ids, the two streams interleave many slices.
        for batch in (20_000, 3):
            run = chain_verify(alert=False, batch=batch)
            assert not run.ok and run.completed, run.message
            named = {(p["event_id"], p["occurred_at"]) for p in run.problems if p["kind"] == "duplicate_id"}
            assert named == {(event_id, at.isoformat()) for event_id, at in forged}, run.problems
            assert all("quarantined at commit" in p["reason"] for p in run.problems if p["kind"] == "duplicate_id")
            assert "dr.forged" not in run.message  # the genuine rows are not the ones blamed
            assert run.events_checked == sql_count("SELECT count(*) FROM audit_chainlink")
    finally:  # committed rows outlive this test: put the trail back as it was for the next ones
        with connection.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            for event_id, at in forged:
                cur.execute("DELETE FROM audit_accessevent WHERE id = %s AND occurred_at = %s", [event_id, at])
            cur.execute("DELETE FROM audit_chainquarantine")
            cur.execute("SET session_replication_role = DEFAULT")
