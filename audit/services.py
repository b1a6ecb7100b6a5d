"""Recording access events, and keeping the trail: chain sealing, signed checkpoints, partitions.

Allowed accesses are recorded on the request's own connection, inside its transaction: the trace
commits if and only if the access does. Denied accesses are recorded on the separate ``audit`` connection
(autocommit), so the trace survives the rollback of the refused request. In both cases PostgreSQL links the
event into the hash chain when it commits (migration 0003; docs/audit.md).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from audit import context
from audit.models import AccessEvent, AuditCheckpoint, VerificationRun
from audit.signing import GENESIS, checkpoint_digest, checkpoint_message, run_digest, run_message
from dpi.crypto import KeyringError, signing_key
from dpi.prepared import PipelinedTransaction, prepared_cursor

log = logging.getLogger(__name__)


def event_record(
    *,
    action: str,
    outcome: str,
    actor: Any = None,
    actor_role: str = "",
    actor_unit: str = "",
    patient_id: int | None = None,
    category: str = "",
    resource_type: str = "",
    resource_id: str | int = "",
    basis: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
    independent: bool | None = None,
) -> AccessEvent:
    """Write one event. ``independent`` (default: True when denied) writes it outside the current transaction."""
    if outcome == AccessEvent.Outcome.DENIED:
        context.denied_noted()
    if independent is None:
        independent = outcome == AccessEvent.Outcome.DENIED
    alias = "audit" if independent else "default"
    trace = _read_trace.get()
    if alias == "audit" and trace is not None:
        trace.commit()  # a refusal is committed on its own, as outside a trace: the trace's events first
    elif alias == "audit":
        # The prepared statement's cursor skips Django's health check: a kept connection PostgreSQL dropped
        # would lose the refusal in a 500. Checked once per request, refusals only.
        connections[alias].close_if_health_check_failed()
    event = _event(actor=actor, actor_role=actor_role, actor_unit=actor_unit, patient_id=patient_id,
                   category=category, resource_type=resource_type, resource_id=resource_id, action=action,
                   outcome=outcome, basis=basis, reason=reason, details=details)
    # One INSERT (every page view pays for it), prepared once per connection: the time comes from the database
    # clock, and the row is linked into the hash chain by PostgreSQL when this transaction commits.
    with prepared_cursor(alias) as cur:
        cur.execute(_INSERT, _insert_params([getattr(event, name) for name, _ in EVENT_COLUMNS]))
        event.id, event.occurred_at = cur.fetchone()
    event._state.adding = False
    event._state.db = alias
    return event


# --- a read's trace committed while the data is read (issue #18) -------------------------------------------
class ReadTrace:
    """The events of a read written on the ``audit`` connection in a transaction of their own, whose COMMIT
    is sent before the caller reads the data and awaited before the data is released.

    An allowed access's event must be durable before the data leaves the server (nothing lost on a crash):
    PostgreSQL waits for the WAL flush at COMMIT. In the read's own transaction that wait comes after the
    read; here the trace's COMMIT is on its way while the read's queries run on the request's connection, so
    the flush overlaps them. The decision and its event stay in one statement (``access.gate``); a refusal is
    committed at once, on its own (``event_record``); the caller gets nothing before ``settle`` confirms the
    COMMIT, and a COMMIT that fails raises (the request fails, nothing is shown).

    The transaction goes through libpq's pipeline mode (``dpi.prepared.PipelinedTransaction``): it is the
    protocol's implicit transaction (no BEGIN or COMMIT statement), and its commit, the pipeline's Sync, goes
    out without waiting, so the trace costs the statements' round trips and nothing more.
    """

    alias = "audit"

    def __init__(self) -> None:
        self._tx = PipelinedTransaction(self.alias)

    def fetch_one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run one of the trace's statements (named placeholders) in its transaction: its first row."""
        return self._tx.fetch_one(sql, params)

    def release(self) -> None:
        """Send the COMMIT without waiting for it (the read goes on meanwhile)."""
        self._tx.commit()

    def settle(self) -> None:
        """Wait for the COMMIT sent by ``release``; raises ``DatabaseError`` unless it committed."""
        self._tx.confirm()

    def commit(self) -> None:
        self.release()
        self.settle()


_read_trace: contextvars.ContextVar[ReadTrace | None] = contextvars.ContextVar("dpi_read_trace", default=None)


def current_read_trace() -> ReadTrace | None:
    return _read_trace.get()


@contextmanager
def read_trace() -> Iterator[ReadTrace | None]:
    """Within the block, the gate writes allowed reads' events in a ``ReadTrace``; leaving the block commits
    it (also when the block raised: every decision is recorded) and waits for that COMMIT. Inside a caller's
    transaction (``atomic``) the events stay in that transaction, as without this block: yields None."""
    if connections["default"].in_atomic_block or _read_trace.get() is not None:
        yield None
        return
    trace = ReadTrace()
    token = _read_trace.set(trace)
    failed = True
    try:
        yield trace
        failed = False
    finally:
        _read_trace.reset(token)
        try:
            trace.commit()
        except DatabaseError:
            if not failed:
                raise
            log.warning("access trace: COMMIT failed after the request failed", exc_info=True)


# The event's columns and their SQL types, in the order of ``_INSERT``, for statements that insert an event
# with other work (``access.gate``: the decision's facts and the event in one statement), as named parameters.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("actor_id", "bigint"), ("actor_username", "text"), ("actor_role", "text"), ("actor_unit", "text"),
    ("patient_id", "bigint"), ("category", "text"), ("resource_type", "text"), ("resource_id", "text"),
    ("action", "text"), ("outcome", "text"), ("basis", "text"), ("reason", "text"), ("channel", "text"),
    ("request_id", "text"), ("ip", "inet"), ("user_agent", "text"), ("details", "jsonb"),
)


def event_params(**fields: Any) -> dict[str, Any]:
    """The values of an event (same fields as ``event_record``) as named parameters ``ev_<column>``."""
    if fields.get("outcome") == AccessEvent.Outcome.DENIED:
        raise ValueError("a denied event is written on the independent connection (event_record)")
    values = _insert_params(_values(**fields))
    return {f"ev_{name}": value for (name, _), value in zip(EVENT_COLUMNS, values, strict=True)}


# The columns in which the events of one request on one patient can differ (``access.gate.authorize_steps``):
# the others (actor, patient, outcome, request) are the first event's.
STEP_COLUMNS = ("category", "resource_type", "resource_id", "action", "details")


def event_step_params(prefix: str, *, category: str, resource_type: str, resource_id: str | int, action: str,
                      details: dict[str, Any] | None) -> dict[str, Any]:
    """The ``STEP_COLUMNS`` of another event of the same request, named ``<prefix><column>``, written as
    ``event_params`` writes them."""
    return {f"{prefix}category": category, f"{prefix}resource_type": resource_type,
            f"{prefix}resource_id": str(resource_id)[:64], f"{prefix}action": action,
            f"{prefix}details": _details_param(details)}


def _values(
    *, action: str, outcome: str, actor: Any = None, actor_role: str = "", actor_unit: str = "",
    patient_id: int | None = None, category: str = "", resource_type: str = "", resource_id: str | int = "",
    basis: str = "", reason: str = "", details: dict[str, Any] | None = None,
) -> list[Any]:
    """The event's column values in ``EVENT_COLUMNS`` order (``details`` as a dict)."""
    ctx = context.current()
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    username = getattr(actor, "username", "") if actor is not None else ""
    return [
        actor_id, username or "", actor_role[:100], actor_unit[:100], patient_id, category, resource_type,
        str(resource_id)[:64], action, outcome, basis[:40], reason[:300], ctx.channel, ctx.request_id, ctx.ip,
        ctx.user_agent, details or {},
    ]


def _event(**fields: Any) -> AccessEvent:
    return AccessEvent(**{name: value for (name, _), value in zip(EVENT_COLUMNS, _values(**fields), strict=True)})


def _insert_params(values: list[Any]) -> list[Any]:
    return [*values[:-1], _details_param(values[-1])]


def _details_param(details: dict[str, Any] | None) -> str:
    return json.dumps(details, cls=DjangoJSONEncoder, separators=(",", ":")) if details else "{}"


_INSERT = (
    "INSERT INTO audit_accessevent (actor_id, actor_username, actor_role, actor_unit, patient_id, category, "
    "resource_type, resource_id, action, outcome, basis, reason, channel, request_id, ip, user_agent, details) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s::jsonb) "
    "RETURNING id, occurred_at"
)


def rights_change_record(
    actor: Any, subject_user: Any, what: str, details: dict[str, Any] | None = None, *,
    actor_role: str = "", actor_unit: str = "",
) -> AccessEvent:
    """Record a change of who may reach patient data (role granted, membership added, account disabled...).

    ``what`` names the change (``role_grant``, ``membership_add``, ``account_disable``...) and is stored as the
    event's basis; ``details`` holds old and new values. Recorded in the caller's transaction.
    """
    extra = {"subject_user_id": getattr(subject_user, "pk", None),
             "subject_username": getattr(subject_user, "username", ""), "what": what}
    extra.update(details or {})
    return event_record(
        action=AccessEvent.Action.PERMISSION_CHANGE, outcome=AccessEvent.Outcome.ALLOWED, actor=actor,
        actor_role=actor_role, actor_unit=actor_unit, resource_type="user",
        resource_id=getattr(subject_user, "pk", "") or "", basis=what, details=extra,
    )


# --- the hash chain ---------------------------------------------------------------------------------------
def chain_seal(*, max_events: int = 1_000_000) -> int:
    """Chain the events queued while the chain lock was busy; returns the head's sequence number."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT audit_chain_seal(%s)", [max_events])
        return int(cur.fetchone()[0])


def chain_head() -> tuple[int, bytes]:
    """(seq, hash) of the last link; (0, GENESIS) for an empty chain."""
    with connection.cursor() as cur:
        cur.execute("SELECT seq, hash FROM audit_chainlink ORDER BY seq DESC LIMIT 1")
        row = cur.fetchone()
    return (int(row[0]), bytes(row[1])) if row else (0, GENESIS)


CHECKPOINT_LOCK = 7391004413  # pg advisory lock key: one checkpoint signer at a time


def checkpoint_sign(
    *, kind: str = AuditCheckpoint.Kind.PERIODIC, seq: int | None = None, head_hash: bytes | None = None,
    retention_cutoff: datetime | None = None, removed: tuple[int, int] | None = None,
) -> AuditCheckpoint:
    """Sign the chain head (or the given link) with the current audit-signing key, as the next checkpoint of
    the checkpoint chain, then write it to the witnesses outside the database (audit.witness).

    A periodic checkpoint is signed every period even when no event arrived: its age is what proves that
    signing did not stop (``verify_audit`` fails when the newest is older than twice the period). A
    retention checkpoint names the links it removes (``removed``: first and last seq, inclusive).
    """
    from audit import witness

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [CHECKPOINT_LOCK])
        if seq is None:
            seq, head_hash = chain_head()
        assert head_hash is not None and len(head_hash) == 32
        last = AuditCheckpoint.objects.order_by("-number").first()
        version, key = signing_key()
        cp = AuditCheckpoint(
            number=(last.number + 1) if last else 1, format=2, seq=seq, head_hash=bytes(head_hash),
            prev_digest=checkpoint_digest(last) if last else GENESIS, signed_at=timezone.now(), kind=kind,
            retention_cutoff=retention_cutoff, key_version=version,
            removed_first_seq=removed[0] if removed else None, removed_last_seq=removed[1] if removed else None,
        )
        cp.signature = key.sign(checkpoint_message(cp))
        cp.save(force_insert=True)
    # After the commit (unless a caller's transaction encloses this one): a checkpoint the database does
    # not keep is never witnessed; one committed but not yet written is caught up by the next signature.
    cp.witness_status = witness.checkpoint_witness(cp)
    return cp


RUN_LOCK = 7391004414  # pg advisory lock key: one verification run numbered at a time


def verification_run_store(run: VerificationRun) -> VerificationRun:
    """Save a verification run as the next of the runs' chain, signed with the audit-signing key, then write
    it to the witness file: what the DPO is shown of a verification cannot be edited or removed unseen."""
    from audit import witness

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [RUN_LOCK])
        try:
            version, key = signing_key()
        except KeyringError:
            # Recorded unsigned: shown as broken (an unsigned run is never believed intact), and it is one.
            log.exception("audit verification: the run cannot be signed (keyring)")
            run.save(force_insert=True)
            return run
        last = VerificationRun.objects.filter(number__isnull=False).order_by("-number").first()
        run.number = (last.number + 1) if last else 1
        run.prev_digest = run_digest(last) if last else GENESIS
        run.key_version = version
        run.signature = key.sign(run_message(run))
        run.save(force_insert=True)
    witness.run_witness(run)
    return run


# --- partitions and retention -----------------------------------------------------------------------------
def partitions_ensure(*, months_ahead: int = 3) -> int:
    """Create this month's partition and the next ``months_ahead`` ones; returns how many were created."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT audit_ensure_partitions(date_trunc('month', now() AT TIME ZONE 'UTC')::date, %s)",
                    [months_ahead + 1])
        return int(cur.fetchone()[0])


def retention_cutoff(months: int, now: datetime | None = None) -> datetime:
    """The first instant kept: the start (UTC) of the month ``months`` months before the current one."""
    now = (now or timezone.now()).astimezone(UTC)
    index = now.year * 12 + now.month - 1 - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


class RetentionRefused(Exception):
    pass


def partitions_drop_older_than(months: int | None = None, *, purge_batch: int = 50_000) -> list[str]:
    """Drop the monthly partitions that end before the retention cutoff (``DPI_AUDIT_RETENTION_MONTHS``).

    Called by the retention worker. Before anything is removed, a *retention checkpoint* is signed: it
    anchors the first link that stays, so ``verify_audit`` can still prove the remaining chain. Refused
    while the last verification found the trail broken: the evidence is kept for the investigation.
    Returns the names of the dropped partitions.
    """
    months = settings.DPI_AUDIT_RETENTION_MONTHS if months is None else months
    cutoff = retention_cutoff(months)
    from audit.selectors import last_verification

    last_run = last_verification()  # checked against its signature and the witness (an edited run is broken)
    if last_run is not None and not last_run.ok:
        raise RetentionRefused(f"the last audit verification failed ({last_run.message}); traces are kept")
    chain_seal()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT min(seq), max(seq) FROM audit_chainlink")
        first, last = cur.fetchone()
        if last is None:
            boundary, anchor = 1, GENESIS
        else:
            # The first link that stays: the first one of an event kept (every link before it is of an
            # event older than the cutoff), and at worst the head link.
            cur.execute("SELECT coalesce(min(seq), %s) FROM audit_chainlink WHERE event_occurred_at >= %s",
                        [last, cutoff])
            boundary = int(cur.fetchone()[0])
            cur.execute("SELECT prev_hash FROM audit_chainlink WHERE seq = %s", [boundary])
            anchor = bytes(cur.fetchone()[0])
        cur.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'audit_accessevent'::regclass AND c.relname ~ '^audit_accessevent_[0-9]{4}_[0-9]{2}$' "
            "AND (to_date(right(c.relname, 7), 'YYYY_MM') + interval '1 month')::timestamp AT TIME ZONE 'UTC' <= %s",
            [cutoff])
        partitions_due = int(cur.fetchone()[0])
    removed_first = first if first is not None else 1
    if partitions_due == 0 and boundary <= removed_first:
        return []  # nothing to remove: no retention checkpoint either
    # Signed (and witnessed) before anything is removed; it records exactly the links it removes.
    checkpoint_sign(kind=AuditCheckpoint.Kind.RETENTION, seq=boundary - 1, head_hash=anchor,
                    retention_cutoff=cutoff, removed=(removed_first, boundary - 1))
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT audit_drop_partitions_before(%s)", [cutoff])
        dropped = [row[0] for row in cur.fetchall()]
    if first is not None:
        for upto in range(first + purge_batch, boundary + purge_batch, purge_batch):
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute("SELECT audit_purge_links_before(%s)", [min(upto, boundary)])
    if dropped:
        log.info("audit retention: dropped %s (cutoff %s)", ", ".join(dropped), cutoff.isoformat())
    return dropped

