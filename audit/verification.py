"""Proving the trail: every link recomputed, every checkpoint checked against its signature, the checkpoint
chain and the witnesses outside the database (``manage.py verify_audit``).

The verifier reads one consistent snapshot (REPEATABLE READ) with two server-side cursors: the links in
chain order and the events in id order, merged in Python. The database only serialises each event with
built-in functions (``record_send``, the same bytes as ``audit_event_canonical()``, written out here so
that a replaced database function cannot fool the check); SHA-256 is recomputed here with hashlib.

What it proves (docs/audit.md, section 4):
- each link's hash is ``sha256(prev_hash || canonical(event))``: an altered event is named;
- the links follow each other (``prev_hash``, no gap in ``seq``);
- checkpoints: each signature is valid, numbers have no gap, each one signs the digest of the previous one,
  and the database agrees with the witness file (a checkpoint deleted or edited in the database is named
  from the witness; the witness's checkpoints count as signed heads even when the database lost them);
- every signed head matches the link it covers (a rewritten chain contradicts it), none lies beyond the last
  link (a cut tail), and the newest checkpoint is no older than twice the signing period (signing stopped,
  or recent checkpoints were removed everywhere);
- the first remaining link is anchored by genesis or by signed retention checkpoints that removed exactly
  the links before it (a periodic checkpoint never anchors a cut head);
- event ids are unique: a row reusing an id is named (id and date) as an insertion, also when the chain was
  recomputed to cover it; rows the chain quarantined at commit are reported;
- no event is outside the chain, apart from events still queued and events older than a retention cutoff.

It never crashes: whatever goes wrong is recorded as a failed run with its reason.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import witness
from audit.models import AuditCheckpoint, VerificationRun
from audit.services import chain_seal, verification_run_store
from audit.signing import GENESIS, checkpoint_digest, checkpoint_signature_valid, run_digest, run_signature_valid

log = logging.getLogger(__name__)

# Must produce the same bytes as the SQL function audit_event_canonical() (migration 0003).
CANONICAL_SQL = (
    "pg_catalog.record_send(ROW(e.id, e.occurred_at, e.actor_id, e.actor_username, e.actor_role, e.actor_unit, "
    "e.patient_id, e.category, e.resource_type, e.resource_id, e.action, e.outcome, e.basis, e.reason, "
    "e.channel, e.request_id, e.ip, e.user_agent, e.details))"
)
MAX_BREAKS_KEPT = 100
# How long before a periodic checkpoint an event chained after it may have occurred: the longest transaction
# (an event's date is its statement's, its link is written at COMMIT).
BACKDATE_TOLERANCE = timedelta(hours=24)
# Records kept outside the trail that must agree with the chained events written when they changed (a
# break-the-glass and its review, a detection alert's review): each app that keeps one registers a check when
# it starts (audit holds no access policy); a check yields what disagrees, in words.
record_checks: list[Callable[[], Iterable[str]]] = []
# Rows come in index order (ids follow the heap): never let the planner sort the serialised rows instead (with
# stale statistics it does, and spills them to disk).
NO_SORT = "SET LOCAL enable_sort = off"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def occurred_micros(canonical: bytes) -> int:
    """``occurred_at`` of a canonical record (record_send: count, then per column oid, length, value)."""
    return int.from_bytes(canonical[28:36], "big", signed=True)


def _micros(value: datetime) -> int:
    return (value - PG_EPOCH) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=value)


@dataclass(order=True)
class Break:
    sort_key: tuple = field(repr=False)
    seq: int | None = field(compare=False)
    event_id: int | None = field(compare=False)
    reason: str = field(compare=False)
    kind: str = field(compare=False, default="")
    occurred_at: datetime | None = field(compare=False, default=None)


@dataclass
class Result:
    ok: bool = True
    completed: bool = True
    events_checked: int = 0
    checkpoints_checked: int = 0
    witness_checked: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_checkpoint: object = None
    breaks: list[Break] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    break_count: int = 0

    def add(self, seq: int | None, event_id: int | None, reason: str, *, kind: str = "",
            occurred_at: datetime | None = None) -> None:
        self.ok = False
        self.break_count += 1
        key = (seq if seq is not None else float("inf"), event_id if event_id is not None else -1)
        if len(self.breaks) < MAX_BREAKS_KEPT:
            self.breaks.append(Break(key, seq, event_id, reason, kind, occurred_at))

    @property
    def first(self) -> Break | None:
        return min(self.breaks) if self.breaks else None

    @property
    def message(self) -> str:
        first = self.first
        if first is None:
            return (f"{self.events_checked} events and {self.checkpoints_checked} checkpoints verified"
                    + (f" (links {self.first_seq} to {self.last_seq})" if self.first_seq else "")
                    + (f", {self.witness_checked} witness entries reconciled" if self.witness_checked else ""))
        more = f" ({self.break_count} problems in all)" if self.break_count > 1 else ""
        return first.reason + more


def chain_verify(*, seal: bool = True, record: bool = True, batch: int = 20_000, now: datetime | None = None,
                 witness_file: Path | None = None, alert: bool = True) -> VerificationRun:
    """Verify the whole remaining trail; store and return a ``VerificationRun`` (also when it cannot finish)."""
    started = timezone.now()
    result = Result()
    try:
        _verify(result, seal=seal, batch=batch, now=now or started, witness_file=witness_file)
    except Exception as exc:  # noqa: BLE001 - a verification that cannot finish is a failed run, never a crash
        log.exception("audit verification could not complete")
        result.completed = False
        result.add(None, None, f"the verification could not complete: {exc.__class__.__name__}: {exc}"[:1000],
                   kind="error")
    first = result.first
    last_cp = result.last_checkpoint
    run = VerificationRun(
        started_at=started, finished_at=timezone.now(), ok=result.ok, completed=result.completed,
        events_checked=result.events_checked, checkpoints_checked=result.checkpoints_checked,
        witness_checked=result.witness_checked, first_seq=result.first_seq, last_seq=result.last_seq,
        first_broken_id=first.event_id if first else None, first_broken_seq=first.seq if first else None,
        first_broken_occurred_at=first.occurred_at if first else None, message=result.message[:2000],
        problems=[{"kind": b.kind, "seq": b.seq, "event_id": b.event_id, "reason": b.reason[:500],
                   "occurred_at": b.occurred_at.isoformat() if b.occurred_at else None}
                  for b in sorted(result.breaks)],
        last_checkpoint_number=getattr(last_cp, "number", None), last_checkpoint_at=getattr(last_cp, "signed_at", None),
    )
    if record:
        try:
            verification_run_store(run)  # signed, numbered, chained and witnessed
        except Exception as exc:  # noqa: BLE001 - reported by the caller (the command exits non-zero)
            log.exception("audit verification: the run could not be recorded")
            run.save_error = str(exc)
    run.result = result  # for the command's report
    if not run.ok and alert:
        _alert_dpo(run)
    return run


def _alert_dpo(run: VerificationRun) -> None:
    """Loudly: an error log (monitoring) and an e-mail to the DPO (DPI_DPO_EMAILS); never raises."""
    log.critical("AUDIT TRAIL VERIFICATION FAILED: %s", run.message)
    recipients = list(getattr(settings, "DPI_DPO_EMAILS", []) or [])
    if not recipients:
        return
    from django.core.mail import send_mail

    try:
        send_mail(
            "[dpi] Vérification de la traçabilité en échec / audit trail verification failed",
            "La vérification de la traçabilité des accès a échoué (tableau de bord DPO, /dpo/).\n"
            "The verification of the access trail failed (DPO dashboard, /dpo/).\n\n"
            f"{run.message}\n", settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:  # noqa: BLE001 - the failed run is recorded and logged anyway
        log.exception("audit verification: the DPO could not be e-mailed")


# --- checkpoints and witnesses ---------------------------------------------------------------------------------
def _describe(cp) -> str:
    return f"checkpoint #{cp.number} ({cp.kind}, link {cp.seq}, signed {cp.signed_at:%Y-%m-%d %H:%M:%S})"


def _check_runs(result: Result, wl) -> None:
    """The earlier verification runs: each signed, numbered without gap, chained to the previous one, and as
    the witness file recorded it. A run edited, deleted or inserted in the database is named."""
    runs = list(VerificationRun.objects.filter(number__isnull=False).order_by("number"))
    by_number = {r.number: r for r in runs}
    expected = 1
    for r in runs:
        if r.number > expected:
            result.add(None, None, f"verification #{expected} to #{r.number - 1} are missing from the database: "
                                   f"deleted", kind="verification_deleted")
        expected = r.number + 1
        prev = by_number.get(r.number - 1)
        if not run_signature_valid(r) or (prev is not None and bytes(r.prev_digest) != run_digest(prev)):
            result.add(None, None, f"the record of verification #{r.number} (finished "
                                   f"{r.finished_at:%Y-%m-%d %H:%M:%S}) has an invalid signature: altered in the "
                                   f"database", kind="verification_altered")
    first_numbered = runs[0].pk if runs else None
    if first_numbered is not None:
        for r in VerificationRun.objects.filter(number__isnull=True, pk__gt=first_numbered, ok=True):
            result.add(None, None, f"an unsigned verification record says intact (finished "
                                   f"{r.finished_at:%Y-%m-%d %H:%M:%S}): inserted in the database",
                       kind="verification_altered")
    for number, lines in sorted(wl.verifications.items()):
        r = by_number.get(number)
        if r is None:
            entry = lines[-1][1]
            result.add(None, None, f"verification #{number} (finished {entry.get('finished_at')}, "
                                   f"{'intact' if entry.get('ok') else 'BROKEN'}) is in the witness but missing "
                                   f"from the database: deleted", kind="verification_deleted")
        elif any(entry.get("digest") != run_digest(r).hex() for _, entry in lines):
            result.add(None, None, f"the record of verification #{number} differs from its witness: altered in "
                                   f"the database", kind="verification_altered")


def _check_checkpoints(result: Result, wl) -> list:
    """Signatures, numbering, the checkpoint chain and the witness; returns the trusted checkpoints (validly
    signed, from the database and from the witness, one per number) in number order."""
    db = list(AuditCheckpoint.objects.order_by("number"))
    result.checkpoints_checked = len(db)
    trusted: dict[int, object] = {}
    for cp in db:
        if checkpoint_signature_valid(cp):
            trusted[cp.number] = cp
        else:
            result.add(cp.seq, None, f"checkpoint #{cp.number} (link {cp.seq}) has an invalid signature: forged or "
                                     f"altered in the database", kind="checkpoint_forged")
    numbers = [cp.number for cp in db]
    expected = 1
    for n in numbers:
        if n > expected:
            result.add(None, None, f"checkpoints #{expected} to #{n - 1} are missing from the database: deleted",
                       kind="checkpoint_deleted")
        expected = n + 1
    by_number = {cp.number: cp for cp in db}
    for cp in db:
        prev = by_number.get(cp.number - 1)
        want = checkpoint_digest(prev) if prev is not None else (GENESIS if cp.number == 1 else None)
        if want is not None and bytes(cp.prev_digest) != want:
            result.add(cp.seq, None, f"checkpoint #{cp.number} does not follow checkpoint #{cp.number - 1}: the "
                                     f"checkpoint chain was altered", kind="checkpoint_chain")

    if wl.path is None:
        result.notes.append("no witness file configured (DPI_AUDIT_WITNESS_FILE)")
        return [trusted[n] for n in sorted(trusted)]
    if not wl.exists:
        if db:
            result.add(None, None, f"the witness file {wl.path} is missing although the database holds "
                                   f"{len(db)} checkpoints", kind="witness_missing")
        return [trusted[n] for n in sorted(trusted)]
    for lineno in wl.unreadable:
        result.add(None, None, f"witness line {lineno} is unreadable: the witness file was altered",
                   kind="witness_altered")
    witnessed: dict[int, object] = {}
    trusted_digests = {n: checkpoint_digest(cp) for n, cp in trusted.items()}
    for number, lines in sorted(wl.checkpoints.items()):
        result.witness_checked += 1
        digests = set()
        for lineno, entry in lines:
            try:
                w = witness.checkpoint_of(entry)
            except (KeyError, TypeError, ValueError):
                result.add(None, None, f"witness line {lineno} is unreadable: the witness file was altered",
                           kind="witness_altered")
                continue
            digest = checkpoint_digest(w)
            # The same bytes as a database checkpoint whose signature was checked above need no second check.
            same = number in trusted_digests and trusted_digests[number] == digest
            if entry.get("digest") not in (None, digest.hex()) or not (same or checkpoint_signature_valid(w)):
                result.add(w.seq, None, f"witness line {lineno} (checkpoint #{number}) has an invalid signature: "
                                        f"the witness file was altered", kind="witness_altered")
                continue
            digests.add(digest)
            witnessed.setdefault(number, w)
        if len(digests) > 1:
            result.add(None, None, f"the witness holds two different signed checkpoints #{number}: checkpoints "
                                   f"were deleted and signed again", kind="checkpoint_deleted")
    for number, w in sorted(witnessed.items()):
        cp = by_number.get(number)
        if cp is None:
            result.add(w.seq, None, f"{_describe(w)} is in the witness but missing from the database: deleted",
                       kind="checkpoint_deleted")
        elif trusted_digests.get(number, checkpoint_digest(cp)) != checkpoint_digest(w):
            result.add(w.seq, None, f"checkpoint #{number} in the database differs from its witness "
                                    f"({_describe(w)}): altered", kind="checkpoint_altered")
        trusted.setdefault(number, w)
    if witnessed:
        first_w, last_w = min(witnessed), max(witnessed)
        for number in range(first_w, last_w + 1):
            if number not in wl.checkpoints:
                result.add(None, None, f"checkpoint #{number} is missing from the witness file between #{first_w} "
                                       f"and #{last_w}: the witness file was altered", kind="witness_altered")
        unwitnessed = [n for n in by_number if n > last_w]
        if unwitnessed:
            result.notes.append(f"checkpoints #{min(unwitnessed)} to #{max(unwitnessed)} are not in the witness "
                                f"yet (written after their commit; the next checkpoint copies them)")
    elif db:
        result.add(None, None, f"the witness file {wl.path} holds none of the {len(db)} checkpoints of the database",
                   kind="witness_missing")
    _check_timestamps(result, wl, trusted)
    return [trusted[n] for n in sorted(trusted)]


def _check_timestamps(result: Result, wl, trusted: dict) -> None:
    """RFC 3161 tokens kept in the witness: each must time-stamp its checkpoint's digest (audit.timestamp)."""
    if not wl.timestamps:
        return
    from audit import timestamp

    good = 0
    for number, entries in sorted(wl.timestamps.items()):
        cp = trusted.get(number)
        for entry in entries:
            try:
                if cp is None:
                    raise timestamp.TimestampError("no signed checkpoint has that number")
                timestamp.check(base64.b64decode(entry["token"]), checkpoint_digest(cp))
                good += 1
            except (timestamp.TimestampError, KeyError, TypeError, ValueError, OSError) as exc:
                result.add(None, None, f"the RFC 3161 time-stamp of checkpoint #{number} in the witness is not "
                                       f"valid ({exc}): the witness file was altered", kind="timestamp_invalid")
    result.notes.append(f"{good} RFC 3161 time-stamp(s) checked")


def _check_freshness(result: Result, trusted: list, now: datetime, first_link_at: datetime | None) -> None:
    period = timedelta(seconds=settings.DPI_AUDIT_CHECKPOINT_SECONDS)
    newest = max(trusted, key=lambda c: c.signed_at, default=None)
    result.last_checkpoint = newest
    if newest is not None:
        if newest.signed_at < now - 2 * period:
            age = now - newest.signed_at
            result.add(None, None, f"the newest checkpoint #{newest.number} was signed {age.total_seconds() / 60:.0f} "
                                   f"minutes ago, more than twice the signing period ({period.total_seconds():.0f} s): "
                                   f"checkpoint signing stopped, or recent checkpoints were deleted",
                       kind="checkpoint_stale")
    elif first_link_at is not None and first_link_at < now - 2 * period:
        result.add(None, None, f"no signed checkpoint covers the chain, whose first link dates from "
                               f"{first_link_at:%Y-%m-%d %H:%M:%S}: checkpoint signing never ran, or every "
                               f"checkpoint was deleted", kind="checkpoint_stale")


# --- the chain ---------------------------------------------------------------------------------------------------
def _verify(result: Result, *, seal: bool, batch: int, now: datetime, witness_file: Path | None) -> None:
    if seal:
        try:
            chain_seal()
        except Exception as exc:  # noqa: BLE001 - reported, and the trail is still read as it is
            result.add(None, None, f"queued events could not be chained: {exc}"[:500], kind="error")
    wl = witness.read(witness_file)
    trusted = _check_checkpoints(result, wl)
    _check_runs(result, wl)
    by_seq: dict[int, list] = defaultdict(list)
    for cp in trusted:
        by_seq[cp.seq].append(cp)
    retention = [cp for cp in trusted if cp.kind == AuditCheckpoint.Kind.RETENTION]
    purged_before = max((cp.retention_cutoff for cp in retention if cp.retention_cutoff), default=None)
    # What retention removed is the signed range of its checkpoints, never a date a link or a row carries (a
    # link's date is not hashed, a forged row's date is the forger's).
    removed_upto = max((cp.removed_last_seq if cp.removed_last_seq is not None else cp.seq for cp in retention),
                       default=0)

    outer = connection.in_atomic_block
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cur:
            if not outer:  # one snapshot for links and events (inside a caller's transaction: its own)
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SET LOCAL client_encoding = 'UTF8'")
            cur.execute(NO_SORT)
            cur.execute("SELECT min(seq), max(seq) FROM audit_chainlink")
            first, last = cur.fetchone()
            first_link_at = first_event_id = None
            if first is not None:
                cur.execute("SELECT event_occurred_at, event_id FROM audit_chainlink WHERE seq = %s", [first])
                first_link_at, first_event_id = cur.fetchone()
            cur.execute("SELECT event_id FROM audit_chainpending")
            pending = {row[0] for row in cur.fetchall()}
            cur.execute("SELECT event_id, event_occurred_at, reason, quarantined_at FROM audit_chainquarantine "
                        "ORDER BY id")
            quarantined = cur.fetchall()
            snapshot = None
            if not outer:
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
        result.first_seq, result.last_seq = first, last
        _check_freshness(result, trusted, now, first_link_at)
        scan = _scan(result, by_seq, retention, first, batch, snapshot)
        _explain(result, scan, pending, purged_before, quarantined, by_seq, removed_upto=removed_upto,
                 first_event_id=first_event_id)
        if scan.rewritten:
            from audit.forensics import localize

            try:
                localize(result, scan, trusted, first, last)
            except Exception as exc:  # noqa: BLE001 - naming the rows is a refinement: the breaks above stand
                log.exception("audit verification: the rewritten rows could not be named")
                result.notes.append(f"the rewritten rows could not be named: {exc.__class__.__name__}: {exc}")

    _check_records(result)
    _check_guards(result)

    if last is None:
        for cp in trusted:
            if cp.seq > 0 and cp.kind != AuditCheckpoint.Kind.RETENTION:
                result.add(cp.seq, None, f"the chain is empty but {_describe(cp)} signed {cp.seq} links: "
                                         f"links were removed", kind="tail_cut")
    else:
        beyond = [cp for cp in trusted if cp.seq > last]
        if beyond:
            cp = max(beyond, key=lambda c: c.seq)
            result.add(last + 1, None, f"the chain ends at link {last} but {_describe(cp)} covers link {cp.seq}: "
                                       f"links {last + 1} to {cp.seq} were cut off", kind="tail_cut")


# The guards migrations install (trigger name -> function), per table; partitions of the trail carry the same as
# their parent. Triggers do not stop a superuser, but one left disabled, dropped, or added (a BEFORE INSERT that
# drops refusals, a rule that does it INSTEAD, row-level security that hides rows from this verifier) is a
# lasting change of the trail's defences, and is named.
EVENT_GUARDS = {"audit_append_only": "audit_reject_change", "audit_chain": "audit_chain_link",
                "audit_event_id_guard": "audit_event_id_guard", "audit_no_truncate": "audit_reject_change"}
GUARDS = {
    "audit_accessevent": EVENT_GUARDS,
    "audit_chainlink": {"audit_append_only": "audit_chainlink_guard", "audit_no_truncate": "audit_reject_change"},
    "audit_auditcheckpoint": {"audit_append_only": "audit_reject_change", "audit_checkpoint_next":
                              "audit_checkpoint_next", "audit_no_truncate": "audit_reject_change"},
    "audit_chainquarantine": {"audit_append_only": "audit_reject_change", "audit_no_truncate": "audit_reject_change"},
    "audit_chainpending": {},
    "audit_verificationrun": {"audit_append_only": "audit_reject_change"},
}


def _check_guards(result: Result) -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'public.audit_accessevent'::regclass")
        expected = dict(GUARDS) | {row[0]: EVENT_GUARDS for row in cur.fetchall()}
        tables = list(expected)
        cur.execute("SELECT c.relname, t.tgname, t.tgenabled, p.proname FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "JOIN pg_proc p ON p.oid = t.tgfoid "
                    "WHERE n.nspname = 'public' AND c.relname = ANY(%s) AND NOT t.tgisinternal", [tables])
        found: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
        for table, name, enabled, function in cur.fetchall():
            found[table][name] = (enabled, function)
        cur.execute("SELECT tablename, rulename FROM pg_rules WHERE schemaname = 'public' AND tablename = ANY(%s)",
                    [tables])
        rules = cur.fetchall()
        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relname = ANY(%s) "
                    "AND (c.relrowsecurity OR c.relforcerowsecurity)",
                    [tables])
        secured = [row[0] for row in cur.fetchall()]
    for table in sorted(expected):
        for name, function in sorted(expected[table].items()):
            state = found[table].get(name)
            if state is None:
                result.add(None, None, f"the trigger {name} on {table} was dropped: the trail's guards were "
                                       f"removed in the database", kind="guard_removed")
            elif state[1] != function:
                result.add(None, None, f"the trigger {name} on {table} runs {state[1]}() instead of {function}(): "
                                       f"replaced in the database", kind="guard_removed")
            elif state[0] in ("D", "R"):
                result.add(None, None, f"the trigger {name} on {table} is disabled: the trail's guards were turned "
                                       f"off in the database", kind="guard_removed")
        for name, (_, function) in sorted(found[table].items()):
            if name not in expected[table]:
                result.add(None, None, f"an unexpected trigger {name} ({function}()) is on {table}: added in the "
                                       f"database, it can change or drop what is recorded", kind="guard_added")
    for table, name in rules:
        result.add(None, None, f"a rule {name} rewrites statements on {table}: added in the database, it can drop or "
                               f"redirect what is recorded", kind="guard_added")
    for table in secured:
        result.add(None, None, f"row-level security is enabled on {table}: rows can be hidden from the verification "
                               f"and the reports", kind="guard_added")


def _check_records(result: Result) -> None:
    """Records outside the trail against the chain's events (``record_checks``). Only worth as much as the
    events: run after the chain itself was proven; a check that fails is a note, not a crash."""
    for check in record_checks:
        try:
            for problem in check():
                result.add(None, None, problem, kind="record_altered")
        except Exception as exc:  # noqa: BLE001 - the chain's own result stands
            log.exception("audit verification: record check %s failed", getattr(check, "__name__", check))
            result.notes.append(f"a record check could not run: {exc.__class__.__name__}: {exc}")


def _anchor(result: Result, retention: list, first: int) -> bytes | None:
    """The hash the first remaining link must follow: genesis, or the head of signed retention checkpoints
    that removed exactly the links before it. A periodic checkpoint never anchors a cut head."""
    if first == 1:
        return GENESIS
    ranges = sorted((cp.removed_first_seq or 1, cp.removed_last_seq if cp.removed_last_seq is not None else cp.seq)
                    for cp in retention)
    covered = 0
    for lo, hi in ranges:
        if lo > covered + 1:
            break
        covered = max(covered, hi)
    if covered < first - 1:
        result.add(first, None, f"the chain starts at link {first} but no signed retention checkpoint removed links "
                                f"{covered + 1} to {first - 1}: they were deleted (a head cut)", kind="head_cut")
        return None
    exact = [cp for cp in retention if cp.seq == first - 1]
    if exact:
        return bytes(exact[-1].head_hash)
    return None  # a purge stopped inside a removed range: the next signed head checks the links left


@dataclass
class _Scan:
    missing: list = field(default_factory=list)       # (seq, event_id): the link's event is gone
    leftovers: list = field(default_factory=list)     # event ids read but not linked
    duplicates: dict = field(default_factory=dict)    # event id -> [canonical, ...] (two rows or more)
    linked_copy: dict = field(default_factory=dict)   # event id -> (seq, occurred micros of the linked copy)
    rewritten: list = field(default_factory=list)     # (from seq, checkpoint) segments contradicting a signature
    forged: dict = field(default_factory=dict)        # seq -> date of the genuine row (the link covers a forged copy)


class _Producer:
    """Rows fetched by a background thread into a bounded queue, so that the database serialises the next batch
    while this process hashes the current one (psycopg releases the GIL while it waits for the server)."""

    def __init__(self, name: str, work):
        self.queue: queue.Queue = queue.Queue(maxsize=3)
        self.stop = threading.Event()
        self.work = work
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.work():
                if not self._put(item):
                    return
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(exc)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def _snapshot_connection(snapshot: str):
    """A second connection reading the verifier's snapshot (``pg_export_snapshot``)."""
    import psycopg

    conn = connection.get_new_connection(connection.get_connection_params())
    conn.cursor_factory = psycopg.Cursor  # server-side binding and binary results (Django sets ClientCursor)
    conn.autocommit = True  # the explicit BEGIN below opens the (only) transaction
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    conn.execute("SET client_encoding = 'UTF8'")
    conn.execute(NO_SORT)
    return conn


class _EventStream:
    """Events in id order with their canonical bytes, in batches.

    Inside a caller's transaction (tests): one server-side cursor on the verifier's connection. Otherwise the
    events are read by ``streams`` connections sharing the verifier's snapshot, each serialising every
    ``streams``-th slice of ids (``batch`` ids wide) at the same time as the others: the database's work, the
    larger part of a verification, is spread over that many server processes (cores), and the slices are
    consumed here in id order. A slice holds every row of its ids, so the rows of a reused id stay together.
    """

    def __init__(self, batch: int, snapshot: str | None, streams: int = 1):
        self.batch = batch
        events_sql = f"SELECT e.id, {CANONICAL_SQL} FROM audit_accessevent e"  # noqa: S608
        self.conns: list = []
        self.producers: list[_Producer] = []
        self.index = 0
        if snapshot is None or streams < 1:
            cursor = connection.connection.cursor("audit_verify_events", binary=True)
            cursor.execute(f"{events_sql} ORDER BY e.id, e.occurred_at")

            def one():
                try:
                    while rows := cursor.fetchmany(batch):
                        yield rows
                finally:
                    cursor.close()

            self.slices = None
            self.producers.append(_Producer("audit-verify-events", one))
            return
        self.conns = [_snapshot_connection(snapshot) for _ in range(streams)]
        low, high = self.conns[0].execute("SELECT min(id), max(id) FROM audit_accessevent").fetchone()
        bounds = list(range(low, high + 1, batch)) if low is not None else [0]
        self.slices = len(bounds)

        def slices(k: int, conn):
            cur = conn.cursor(binary=True)
            for i in range(k, len(bounds), streams):
                if i + 1 < len(bounds):
                    where, params = ("e.id >= %s AND e.id < %s", [bounds[i], bounds[i + 1]]) if i else (
                        "e.id < %s", [bounds[1]])
                else:
                    where, params = ("e.id >= %s", [bounds[i]]) if i else ("true", [])
                cur.execute(f"{events_sql} WHERE {where} ORDER BY e.id, e.occurred_at", params)  # noqa: S608
                yield cur.fetchall()

        for k, conn in enumerate(self.conns):
            self.producers.append(_Producer(f"audit-verify-events-{k}", lambda k=k, conn=conn: slices(k, conn)))

    def next_batch(self) -> list | None:
        """The next rows in id order (never an empty list), or None at the end."""
        while True:
            if self.slices is None:
                return self.producers[0].get()
            if self.index >= self.slices:
                return None
            rows = self.producers[self.index % len(self.producers)].get()
            self.index += 1
            if rows:
                return rows

    def close(self) -> None:
        for producer in self.producers:
            producer.close()
        for conn in self.conns:
            conn.close()


class _LinkStream:
    """Links in seq order: fetched by a background thread when the verifier owns its connection."""

    def __init__(self, batch: int, background: bool):
        self.cursor = connection.connection.cursor("audit_verify_links", binary=True)
        self.cursor.execute("SELECT seq, event_id, prev_hash, hash FROM audit_chainlink ORDER BY seq")
        self.batch = batch
        self.producer = None
        if background:
            def work():
                while rows := self.cursor.fetchmany(batch):
                    yield rows

            self.producer = _Producer("audit-verify-links", work)

    def next_batch(self) -> list | None:
        if self.producer is None:
            return self.cursor.fetchmany(self.batch) or None
        return self.producer.get()

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()
        self.cursor.close()


def _link_micros(seq: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT event_occurred_at FROM audit_chainlink WHERE seq = %s", [seq])
        return _micros(cur.fetchone()[0])


def _scan(result: Result, by_seq, retention: list, first: int | None, batch: int, snapshot: str | None) -> _Scan:
    """Merge links (by seq) with events (by id)."""
    scan = _Scan()
    expected_prev = GENESIS if first is None else _anchor(result, retention, first)
    links = _LinkStream(batch, background=snapshot is not None)
    events = _EventStream(batch, snapshot, settings.DPI_AUDIT_VERIFY_STREAMS)
    new_sha256 = hashlib.sha256().copy  # copying a fresh hasher costs less than creating one (OpenSSL 3)
    ahead: dict[int, bytes] = {}
    pop = ahead.pop
    dups = scan.duplicates
    events_max = -1  # highest event id received so far
    events_done = False
    expected_seq = first
    checkpoint_seqs = by_seq.keys()
    last_ok_checkpoint = first - 1 if first else 0
    # An event chained after a periodic checkpoint occurred at most BACKDATE_TOLERANCE before it was signed (the
    # signer chains every queued event first): an older date is a row inserted after the fact and backdated. The
    # date is compared as record_send's big-endian int64 bytes (one slice per link; below b"\x80": not negative).
    not_before, not_before_cp = b"", None
    n = 0

    def take(more: list) -> None:
        first_id = more[0][0]
        prior = ahead.get(first_id)  # rows are in (id, date) order: only the first id can straddle batches
        size = len(ahead)
        ahead.update(more)
        if len(ahead) != size + len(more):  # an id read twice: keep every copy (rare, slow path)
            copies: dict[int, list] = defaultdict(list)
            if prior is not None:
                copies[first_id].append(prior)
            for event_id, canonical in more:
                copies[event_id].append(canonical)
            for event_id, found in copies.items():
                if len(found) > 1:
                    if event_id in dups:
                        dups[event_id].extend(found[1:] if prior is not None and event_id == first_id else found)
                    else:
                        dups[event_id] = found

    try:
        while True:
            rows = links.next_batch()
            if not rows:
                break
            for seq, event_id, prev, digest in rows:
                if seq != expected_seq:
                    result.add(seq, event_id, f"links {expected_seq} to {seq - 1} are missing before event {event_id}",
                               kind="links_missing")
                elif expected_prev is not None and prev != expected_prev:
                    result.add(seq, event_id, f"event {event_id} (link {seq}) does not follow link {seq - 1}: "
                                              f"a link was removed, inserted or rewritten", kind="link_order")
                canonical = pop(event_id, None)
                while canonical is None and not events_done and events_max < event_id:
                    more = events.next_batch()
                    if more is None:
                        events_done = True
                    else:
                        take(more)
                        events_max = more[-1][0]
                        canonical = pop(event_id, None)
                if dups and event_id in dups:
                    want = _link_micros(seq)
                    copies = dups[event_id]
                    canonical = next((c for c in copies if occurred_micros(c) == want), copies[0])
                    scan.linked_copy[event_id] = (seq, want)
                if canonical is None:
                    scan.missing.append((seq, event_id))
                else:
                    h = new_sha256()
                    h.update(prev)
                    h.update(canonical)
                    if h.digest() != digest:
                        result.add(seq, event_id, f"event {event_id} (link {seq}) was altered after it was recorded",
                                   kind="event_altered", occurred_at=_from_micros(occurred_micros(canonical)))
                    if not not_before <= canonical[28:36] < b"\x80":
                        at = _from_micros(occurred_micros(canonical))
                        after = (f"after {_describe(not_before_cp)}" if not_before_cp is not None
                                 else "although dated before 2000")
                        result.add(seq, event_id, f"event {event_id} (link {seq}) is dated {at:%Y-%m-%d %H:%M:%S} but "
                                                  f"was chained {after}: inserted after the fact and backdated",
                                   kind="event_backdated", occurred_at=at)
                if seq in checkpoint_seqs:
                    for cp in by_seq[seq]:
                        if cp.kind == AuditCheckpoint.Kind.PERIODIC:
                            bound = _micros(cp.signed_at - BACKDATE_TOLERANCE).to_bytes(8, "big", signed=True)
                            if bound > not_before:
                                not_before, not_before_cp = bound, cp
                        if bytes(cp.head_hash) != digest:
                            scan.rewritten.append((last_ok_checkpoint + 1, cp))
                            result.add(seq, event_id, f"the chain between links {last_ok_checkpoint + 1} and {seq} "
                                                      f"was rewritten after checkpoint #{cp.number} signed it "
                                                      f"({cp.signed_at:%Y-%m-%d %H:%M:%S})", kind="chain_rewritten")
                        else:
                            last_ok_checkpoint = seq
                expected_prev = digest
                expected_seq = seq + 1
            n += len(rows)
        scan.leftovers = list(ahead)
        while not events_done:
            more = events.next_batch()
            if more is None:
                events_done = True
            else:
                scan.leftovers.extend(event_id for event_id, _ in more)
    finally:
        events.close()
        links.close()
    result.events_checked = n
    return scan


def _explain(result: Result, scan: _Scan, pending: set[int], purged_before: datetime | None,
             quarantined: list, by_seq, *, removed_upto: int = 0, first_event_id: int | None = None) -> None:
    """Events gone, rows reusing an id (named by id and date), events outside the chain, quarantined rows."""
    if scan.missing:
        seqs = [seq for seq, _ in scan.missing]
        with connection.cursor() as cur:
            cur.execute("SELECT seq, event_occurred_at FROM audit_chainlink WHERE seq = ANY(%s)", [seqs])
            occurred = dict(cur.fetchall())
        for seq, event_id in scan.missing:
            if seq > removed_upto:  # a link retention did not sign away: its event was deleted
                result.add(seq, event_id, f"event {event_id} (link {seq}) is missing: it was deleted",
                           kind="event_deleted", occurred_at=occurred[seq])

    # Every row of an id that appears twice, and every unlinked id that has a link (its linked copy was read
    # in an earlier batch): the copies the chain does not cover are insertions.
    unlinked = [i for i in scan.leftovers if i not in pending]
    with connection.cursor() as cur:
        cur.execute("SELECT event_id, seq, event_occurred_at FROM audit_chainlink WHERE event_id = ANY(%s)",
                    [list(set(unlinked) | set(scan.duplicates))])
        linked = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        suspects = sorted(set(linked) | set(scan.duplicates))
        cur.execute("SELECT id, occurred_at FROM audit_accessevent WHERE id = ANY(%s) ORDER BY id, occurred_at",
                    [suspects])
        copies: dict[int, list[datetime]] = defaultdict(list)
        for event_id, at in cur.fetchall():
            copies[event_id].append(at)
    quarantine_at = {(q[0], q[1]): q for q in quarantined}
    named: set[tuple[int, datetime]] = set()
    rewritten_by_seq = scan.rewritten
    for event_id in suspects:
        rows = copies.get(event_id, [])
        if len(rows) < 2:
            continue
        seq, linked_at = linked.get(event_id, (None, None))
        genuine_at = linked_at
        forged_link = False
        if seq is not None and any(start <= seq <= cp.seq for start, cp in rewritten_by_seq):
            # The chain was recomputed over this id: the copy that makes the signed head match is genuine.
            for at in rows:
                if at != linked_at and _segment_matches(seq, event_id, at, rewritten_by_seq):
                    genuine_at, forged_link = at, True
                    scan.forged[seq] = at
                    break
        for at in rows:
            if at == genuine_at:
                continue
            named.add((event_id, at))
            how = ("and the chain was recomputed to cover it instead of the genuine row" if forged_link
                   else "quarantined at commit" if (event_id, at) in quarantine_at else "not covered by the chain")
            result.add(seq, event_id, f"event id {event_id} is used twice: the row dated {at:%Y-%m-%d %H:%M:%S.%f} "
                                      f"was inserted ({how}); the genuine row is dated "
                                      f"{genuine_at:%Y-%m-%d %H:%M:%S.%f}" if genuine_at else
                       f"event id {event_id} is used twice: the row dated {at:%Y-%m-%d %H:%M:%S.%f} was inserted",
                       kind="duplicate_id", occurred_at=at)
    for event_id, at, reason, when in quarantined:
        if (event_id, at) not in named:
            result.add(None, event_id, f"event {event_id} dated {at:%Y-%m-%d %H:%M:%S.%f} was quarantined at "
                                       f"{when:%Y-%m-%d %H:%M:%S} ({reason}): an insertion reusing an id",
                       kind="quarantined", occurred_at=at)
    really_unlinked = [i for i in unlinked if i not in linked]
    if really_unlinked:
        old = set()
        with connection.cursor() as cur:
            cur.execute("SELECT id, occurred_at FROM audit_accessevent WHERE id = ANY(%s)", [really_unlinked[:10_000]])
            dated = dict(cur.fetchall())
        if purged_before is not None:
            # A row whose link retention purged but which stayed (a month in the DEFAULT partition): older than the
            # cutoff *and* before the first remaining link's event. A forged row gets a new, higher id.
            old = {i for i, at in dated.items()
                   if at < purged_before and first_event_id is not None and i < first_event_id}
        quarantined_ids = {q[0] for q in quarantined}
        for event_id in really_unlinked:
            if event_id not in old and event_id not in quarantined_ids:
                result.add(None, event_id, f"event {event_id} is not in the chain: inserted with the chain "
                                           f"trigger disabled", kind="event_inserted", occurred_at=dated.get(event_id))


def _segment_matches(seq: int, event_id: int, at: datetime, rewritten: list) -> bool:
    """Would the chain reach the signed head if link ``seq`` covered the row of ``event_id`` dated ``at``?"""
    segment = next(((start, cp) for start, cp in rewritten if start <= seq <= cp.seq), None)
    if segment is None:
        return False
    start, cp = segment
    with connection.cursor() as cur:
        cur.execute("SELECT hash FROM audit_chainlink WHERE seq = %s", [seq - 1])
        row = cur.fetchone()
        h = bytes(row[0]) if row else (GENESIS if seq == 1 else None)
        if h is None:
            return False
        cur.execute(f"SELECT l.seq, l.event_id, e.occurred_at, {CANONICAL_SQL} FROM audit_chainlink l "  # noqa: S608
                    "JOIN audit_accessevent e ON e.id = l.event_id WHERE l.seq BETWEEN %s AND %s ORDER BY l.seq",
                    [seq, cp.seq])
        rows = cur.fetchall()
    by_seq: dict[int, dict] = defaultdict(dict)
    for s, _event_id, occurred, canonical in rows:
        by_seq[s][occurred] = bytes(canonical)
    for s in range(seq, cp.seq + 1):
        candidates = by_seq.get(s)
        if not candidates:
            return False
        canonical = candidates.get(at) if s == seq else None
        if canonical is None:
            if s == seq:
                return False
            canonical = next(iter(candidates.values())) if len(candidates) == 1 else None
            if canonical is None:
                return False
        h = hashlib.sha256(h + canonical).digest()
    return h == bytes(cp.head_hash)
