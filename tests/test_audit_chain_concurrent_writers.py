"""Concurrent writers, each with its own connection, produce one unbroken chain: every committed event gets
exactly one link and no two links claim the same predecessor. Committers never wait for each other: when
the chain lock is busy, an event is queued and chained by the next committer."""

import threading
import uuid

import pytest
from django.db import connection, connections, transaction

from audit.models import AccessEvent, ChainLink
from audit.services import chain_seal, checkpoint_sign, event_record
from audit.verification import chain_verify
from tests.test_audit_support import chain_now, record, sql

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 6
PER_WRITER = 25


def _chain_rows() -> list[tuple[int, bytes, bytes]]:
    rows = sql("SELECT seq, prev_hash, hash FROM audit_chainlink ORDER BY seq")
    return [(seq, bytes(p), bytes(h)) for seq, p, h in rows]


def test_concurrent_writers_make_one_unbroken_chain():
    tag = uuid.uuid4().hex
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(PER_WRITER):
                with transaction.atomic():
                    event_record(action="view", outcome="allowed", resource_type="test", resource_id=f"{n}-{i}",
                                 details={"tag": tag})
                    if i % 4 == 0:  # two events in one transaction
                        event_record(action="print", outcome="allowed", details={"tag": tag})
                if i % 5 == 0:  # a refusal, on the independent audit connection
                    event_record(action="view", outcome="denied", details={"tag": tag})
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    chain_seal()  # events still queued when the last writer committed
    ours = set(AccessEvent.objects.filter(details__tag=tag).values_list("id", flat=True))
    assert len(ours) == WRITERS * (PER_WRITER + 7 + 5)
    linked = list(ChainLink.objects.filter(event_id__in=ours).values_list("event_id", flat=True))
    assert sorted(linked) == sorted(ours)  # exactly one link per event

    rows = _chain_rows()
    assert len({prev for _, prev, _ in rows}) == len(rows)  # no two links claim the same predecessor
    for (seq_a, _, hash_a), (seq_b, prev_b, _) in zip(rows, rows[1:], strict=False):
        assert seq_b == seq_a + 1 and prev_b == hash_a
    assert not sql("SELECT 1 FROM audit_chainpending")
    checkpoint_sign()  # as beat does every period
    run = chain_verify()
    assert run.ok, run.message


def test_a_committer_that_finds_the_chain_busy_queues_its_event_without_waiting():
    with transaction.atomic():
        first = record()[0]
        chain_now()  # this transaction now holds the chain lock, as during its COMMIT
        queued = event_record(action="view", outcome="denied", reason="queued")  # commits on `audit` meanwhile
        with connections["audit"].cursor() as cur:
            cur.execute("SELECT event_id FROM audit_chainpending")
            assert [r[0] for r in cur.fetchall()] == [queued.pk]
    after = record()[0]  # the next committer chains the queued event before its own
    seqs = dict(ChainLink.objects.filter(event_id__in=[first.pk, queued.pk, after.pk]).values_list("event_id", "seq"))
    assert seqs[queued.pk] == seqs[first.pk] + 1 and seqs[after.pk] == seqs[queued.pk] + 1
    assert not sql("SELECT 1 FROM audit_chainpending")


def test_a_rolled_back_transaction_leaves_no_link():
    before = sql("SELECT count(*) FROM audit_chainlink")[0][0]
    with pytest.raises(RuntimeError), transaction.atomic():
        record(3)
        raise RuntimeError("request failed")
    chain_seal()
    assert sql("SELECT count(*) FROM audit_chainlink")[0][0] == before
    assert connection.in_atomic_block is False
