"""Proving the trail: every link recomputed, every checkpoint signature checked (``manage.py verify_audit``).

The verifier reads one consistent snapshot (REPEATABLE READ) with two server-side cursors: the links in
chain order and the events in id order, merged in Python. The database only serialises each event with
built-in functions (``record_send``, the same bytes as ``audit_event_canonical()``, written out here so
that a replaced database function cannot fool the check); SHA-256 is recomputed here with hashlib.

What it proves:
- each link's hash is ``sha256(prev_hash || canonical(event))``: an event altered after the fact (as a
  superuser with triggers disabled would) no longer matches, and is named;
- the links follow each other (``prev_hash`` equals the previous link's hash, ``seq`` has no gap): a link
  removed, inserted or reordered breaks there;
- every signed checkpoint matches the link it covers: a rewritten chain (events altered *and* every later
  link recomputed) differs from what was signed; a checkpoint beyond the last link means links were cut;
- the first remaining link is anchored (genesis, or a signed retention checkpoint once old months are gone);
- no event is outside the chain (inserted with the chain trigger disabled), apart from events still queued
  for chaining and events older than a signed retention cutoff.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from audit.models import AccessEvent, AuditCheckpoint, VerificationRun
from audit.services import chain_seal
from audit.signing import GENESIS, checkpoint_signature_valid

# Must produce the same bytes as the SQL function audit_event_canonical() (migration 0003).
CANONICAL_SQL = (
    "pg_catalog.record_send(ROW(e.id, e.occurred_at, e.actor_id, e.actor_username, e.actor_role, e.actor_unit, "
    "e.patient_id, e.category, e.resource_type, e.resource_id, e.action, e.outcome, e.basis, e.reason, "
    "e.channel, e.request_id, e.ip, e.user_agent, e.details))"
)
MAX_BREAKS_KEPT = 100


@dataclass(order=True)
class Break:
    sort_key: tuple = field(repr=False)
    seq: int | None = field(compare=False)
    event_id: int | None = field(compare=False)
    reason: str = field(compare=False)


@dataclass
class Result:
    ok: bool = True
    events_checked: int = 0
    checkpoints_checked: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    breaks: list[Break] = field(default_factory=list)
    break_count: int = 0

    def add(self, seq: int | None, event_id: int | None, reason: str) -> None:
        self.ok = False
        self.break_count += 1
        key = (seq if seq is not None else float("inf"), event_id if event_id is not None else -1)
        if len(self.breaks) < MAX_BREAKS_KEPT:
            self.breaks.append(Break(key, seq, event_id, reason))

    @property
    def first(self) -> Break | None:
        return min(self.breaks) if self.breaks else None

    @property
    def message(self) -> str:
        first = self.first
        if first is None:
            return (f"{self.events_checked} events and {self.checkpoints_checked} checkpoints verified"
                    + (f" (links {self.first_seq} to {self.last_seq})" if self.first_seq else ""))
        more = f" ({self.break_count} problems in all)" if self.break_count > 1 else ""
        return first.reason + more


def chain_verify(*, seal: bool = True, record: bool = True, batch: int = 20_000) -> VerificationRun:
    """Verify the whole remaining trail; store and return a ``VerificationRun``."""
    started = timezone.now()
    if seal:
        chain_seal()
    result = Result()
    checkpoints = list(AuditCheckpoint.objects.order_by("seq", "id"))
    valid: list[AuditCheckpoint] = []
    for cp in checkpoints:
        if checkpoint_signature_valid(cp):
            valid.append(cp)
        else:
            result.add(cp.seq, None, f"checkpoint #{cp.pk} (seq {cp.seq}) has an invalid signature: forged or altered")
    result.checkpoints_checked = len(checkpoints)
    purged_before = max((cp.retention_cutoff for cp in valid
                         if cp.kind == AuditCheckpoint.Kind.RETENTION and cp.retention_cutoff), default=None)
    by_seq: dict[int, list[AuditCheckpoint]] = defaultdict(list)
    for cp in valid:
        by_seq[cp.seq].append(cp)

    outer = connection.in_atomic_block
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cur:
            if not outer:  # one snapshot for links and events (inside a caller's transaction: its own)
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SET LOCAL client_encoding = 'UTF8'")
            cur.execute("SELECT min(seq), max(seq) FROM audit_chainlink")
            first, last = cur.fetchone()
            cur.execute("SELECT event_id FROM audit_chainpending")
            pending = {row[0] for row in cur.fetchall()}
            snapshot = None
            if not outer:
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
        result.first_seq, result.last_seq = first, last
        missing, leftovers = _scan(result, by_seq, first, batch, snapshot)
        _explain_missing(result, missing, leftovers, pending, purged_before)

    if last is None:
        for cp in valid:
            if cp.seq > 0:
                result.add(cp.seq, None, f"the chain is empty but checkpoint #{cp.pk} signed {cp.seq} links")
    else:
        for cp in valid:
            if cp.seq > last:
                result.add(cp.seq, None, f"the chain ends at link {last} but checkpoint #{cp.pk} signed at "
                                         f"{cp.signed_at:%Y-%m-%d %H:%M:%S} covers link {cp.seq}: links were removed")
    run = VerificationRun(
        started_at=started, finished_at=timezone.now(), ok=result.ok, events_checked=result.events_checked,
        checkpoints_checked=result.checkpoints_checked, first_seq=result.first_seq, last_seq=result.last_seq,
        first_broken_id=result.first.event_id if result.first else None,
        first_broken_seq=result.first.seq if result.first else None, message=result.message[:2000],
    )
    if record:
        run.save(force_insert=True)
    run.result = result  # for the command's report
    return run


def _anchor(result: Result, by_seq: dict[int, list[AuditCheckpoint]], first: int) -> bytes | None:
    """The hash the first remaining link must follow: genesis, or a signed checkpoint just before it."""
    if first == 1:
        for cp in by_seq.get(0, []):
            if bytes(cp.head_hash) != GENESIS:
                result.add(0, None, f"checkpoint #{cp.pk} signed a chain start that is not the genesis hash")
        return GENESIS
    anchors = by_seq.get(first - 1)
    if not anchors:
        result.add(first, None, f"the chain starts at link {first} but no signed checkpoint anchors it: "
                                f"earlier links were removed")
        return None
    return bytes(anchors[-1].head_hash)


class _EventStream:
    """Events in id order with their canonical bytes, fetched in batches by a background thread so that the
    database serialises the next batch while this process hashes the current one.

    Outside a caller's transaction the events are read on a second connection sharing the verifier's
    snapshot (``pg_export_snapshot``), so links and events are produced by two server processes at once.
    """

    def __init__(self, batch: int, snapshot: str | None):
        self.batch = batch
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.stop = threading.Event()
        self.own_conn = None
        if snapshot is not None:
            self.own_conn = connection.get_new_connection(connection.get_connection_params())
            self.own_conn.autocommit = True  # the explicit BEGIN below opens the (only) transaction
            self.own_conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self.own_conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            self.own_conn.execute("SET client_encoding = 'UTF8'")
        raw = self.own_conn or connection.connection
        self.cursor = raw.cursor("audit_verify_events", binary=True)
        self.cursor.execute(f"SELECT e.id, {CANONICAL_SQL} FROM audit_accessevent e ORDER BY e.id")  # noqa: S608
        self.thread = threading.Thread(target=self._produce, name="audit-verify-events", daemon=True)
        self.thread.start()

    def _produce(self) -> None:
        try:
            while not self.stop.is_set():
                rows = self.cursor.fetchmany(self.batch)
                self._put(rows or None)
                if not rows:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(exc)

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def next_batch(self) -> list | None:
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.cursor.close()
        if self.own_conn is not None:
            self.own_conn.close()


def _scan(result: Result, by_seq, first: int | None, batch: int,
          snapshot: str | None) -> tuple[list[tuple[int, int]], list[int]]:
    """Merge links (by seq) with events (by id); returns links whose event is absent, and unlinked event ids."""
    missing: list[tuple[int, int]] = []
    expected_prev = GENESIS if first is None else _anchor(result, by_seq, first)
    links = connection.connection.cursor("audit_verify_links", binary=True)
    links.execute("SELECT seq, event_id, prev_hash, hash FROM audit_chainlink ORDER BY seq")
    events = _EventStream(batch, snapshot)
    sha256 = hashlib.sha256
    ahead: dict[int, bytes] = {}
    pop = ahead.pop
    events_max = -1  # highest event id received so far
    events_done = False
    expected_seq = first
    checkpoint_seqs = by_seq.keys()
    last_ok_checkpoint = first - 1 if first else 0
    n = 0
    try:
        while True:
            rows = links.fetchmany(batch)
            if not rows:
                break
            for seq, event_id, prev, digest in rows:
                if seq != expected_seq:
                    result.add(seq, event_id, f"links {expected_seq} to {seq - 1} are missing before event {event_id}")
                elif expected_prev is not None and prev != expected_prev:
                    result.add(seq, event_id, f"event {event_id} (link {seq}) does not follow link {seq - 1}: "
                                              f"a link was removed, inserted or rewritten")
                canonical = pop(event_id, None)
                while canonical is None and not events_done and events_max < event_id:
                    more = events.next_batch()
                    if more is None:
                        events_done = True
                    else:
                        ahead.update(more)
                        events_max = more[-1][0]
                        canonical = pop(event_id, None)
                if canonical is None:
                    missing.append((seq, event_id))
                elif sha256(prev + canonical).digest() != digest:
                    result.add(seq, event_id, f"event {event_id} (link {seq}) was altered after it was recorded")
                if seq in checkpoint_seqs:
                    for cp in by_seq[seq]:
                        if bytes(cp.head_hash) != digest:
                            result.add(seq, event_id, f"the chain between links {last_ok_checkpoint + 1} and {seq} "
                                                      f"was rewritten after checkpoint #{cp.pk} signed it "
                                                      f"({cp.signed_at:%Y-%m-%d %H:%M:%S})")
                        else:
                            last_ok_checkpoint = seq
                expected_prev = digest
                expected_seq = seq + 1
            n += len(rows)
        leftovers = list(ahead)
        while not events_done:
            more = events.next_batch()
            if more is None:
                events_done = True
            else:
                leftovers.extend(event_id for event_id, _ in more)
    finally:
        events.close()
        links.close()
    result.events_checked = n
    return missing, leftovers


def _explain_missing(result: Result, missing, leftovers, pending: set[int], purged_before: datetime | None) -> None:
    """Events gone from the table, and events outside the chain, unless retention or the queue explains them."""
    if missing:
        seqs = [seq for seq, _ in missing]
        with connection.cursor() as cur:
            cur.execute("SELECT seq, event_occurred_at FROM audit_chainlink WHERE seq = ANY(%s)", [seqs])
            occurred = dict(cur.fetchall())
        for seq, event_id in missing:
            if purged_before is None or occurred[seq] >= purged_before:
                result.add(seq, event_id, f"event {event_id} (link {seq}) is missing: it was deleted")
    unlinked = [i for i in leftovers if i not in pending]
    if unlinked:
        old = set()
        if purged_before is not None:
            old = set(AccessEvent.objects.filter(id__in=unlinked[:10_000], occurred_at__lt=purged_before)
                      .values_list("id", flat=True))
        for event_id in unlinked:
            if event_id not in old:
                result.add(None, event_id, f"event {event_id} is not in the chain: inserted with the chain "
                                           f"trigger disabled")
