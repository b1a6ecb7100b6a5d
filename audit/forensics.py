"""Naming what a recomputed chain hides (``verify_audit``, after the scan).

An insider who rewrites the trail recomputes every hash after the change, so the links agree with each other and
only the signed checkpoints (kept in the database and in the witnesses) contradict them: the scan can say "the chain
between links a and b was rewritten after checkpoint #n signed it", no more. This module goes further, with the
signed heads as the only oracle: each hypothesis rebuilds the original links from the rows still there and is
accepted only if it reproduces a signed head exactly (SHA-256: no false positive is possible in practice).

Walking the signed heads in order, with the offset between original and current link numbers (renumbering
shifts it), each segment between two signed heads is:
- intact: its current rows reproduce the next signed head (possibly shifted by an earlier insertion or deletion);
- one row inserted: without link j, the segment reproduces the signed head (the row is named by id and link);
- two rows swapped: swapped back, it does (the pair is named);
- rows deleted: the *next* segment reproduces its signed head once shifted back by k links, so exactly k links
  were removed from this one; the deleted rows are named by the event ids missing from the segment's id range
  (ids are given by the database in increasing order; an id consumed by a rolled-back request is also missing,
  hence "candidates" when there are more missing ids than deleted links);
- altered (a row's content changed): the next segment is intact with no shift, so the number of links did not
  change; which row changed cannot be told from a hash (its original bytes are gone).
A deletion inside the last signed segment has no next signed head to measure the shift: the missing ids are then
reported as candidates only. Cost: nothing when the chain agrees with the signatures; bounded otherwise.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.db import connection

from audit.signing import GENESIS

MAX_LINKS = 400_000          # links read for the analysis at most (beyond: the scan's coarser report stands)
MAX_SHIFT = 16               # insertions or deletions per segment measured by shifting
EXHAUSTIVE = 2_048           # up to this many links in a segment, every link is tried as the inserted one
MAX_PAIRS = 400              # swap hypotheses tried per segment


class _Links:
    """Current links by seq, each with the canonical bytes of the row it covers (the genuine copy when the scan
    found that the link was pointed at a forged copy of a reused id)."""

    def __init__(self, forged: dict[int, datetime]):
        self.rows: dict[int, tuple[int, datetime | None, bytes | None]] = {}
        self.forged = forged
        self.spans: list[tuple[int, int]] = []

    def load(self, lo: int, hi: int) -> bool:
        from audit.verification import CANONICAL_SQL

        lo = max(lo, 1)
        if hi < lo or any(a <= lo and hi <= b for a, b in self.spans):
            return True
        if len(self.rows) + (hi - lo + 1) > MAX_LINKS:
            return False
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT l.seq, l.event_id, e.occurred_at, {CANONICAL_SQL} FROM audit_chainlink l "  # noqa: S608
                "LEFT JOIN audit_accessevent e ON e.id = l.event_id AND e.occurred_at = l.event_occurred_at "
                "WHERE l.seq BETWEEN %s AND %s", [lo, hi])
            for seq, event_id, at, canonical in cur.fetchall():
                self.rows[seq] = (event_id, at, bytes(canonical) if canonical is not None else None)
            for seq, genuine_at in self.forged.items():
                if lo <= seq <= hi and seq in self.rows:
                    event_id = self.rows[seq][0]
                    cur.execute(f"SELECT {CANONICAL_SQL} FROM audit_accessevent e "  # noqa: S608
                                "WHERE e.id = %s AND e.occurred_at = %s", [event_id, genuine_at])
                    row = cur.fetchone()
                    if row:
                        self.rows[seq] = (event_id, genuine_at, bytes(row[0]))
        self.spans.append((lo, hi))
        return True

    def canonicals(self, lo: int, hi: int) -> list[bytes] | None:
        """Canonical bytes of links lo..hi (None when one of them is missing or has no row)."""
        if lo < 1 and hi >= lo:
            return None
        out = []
        for seq in range(lo, hi + 1):
            row = self.rows.get(seq)
            if row is None or row[2] is None:
                return None
            out.append(row[2])
        return out

    def event_id(self, seq: int) -> int | None:
        row = self.rows.get(seq)
        return row[0] if row else None

    def occurred(self, seq: int) -> datetime | None:
        row = self.rows.get(seq)
        return row[1] if row else None


def _chain(start: bytes, canonicals: list[bytes]) -> bytes:
    sha256 = hashlib.sha256
    h = start
    for c in canonicals:
        h = sha256(h + c).digest()
    return h


def _anomalies(ids: list[int]) -> list[int]:
    """Positions whose event id is out of order with a neighbour (links normally follow the ids)."""
    found = []
    for i, event_id in enumerate(ids):
        before = ids[i - 1] if i > 0 else None
        after = ids[i + 1] if i + 1 < len(ids) else None
        if (before is not None and event_id < before) or (after is not None and event_id > after):
            found.append(i)
    return found


def _inserted(start: bytes, rows: list[bytes], ids: list[int], head: bytes) -> int | None:
    """The position whose removal makes ``rows`` (one more than the segment held) reproduce ``head``."""
    odd = _anomalies(ids)
    order = odd + ([i for i in range(len(rows)) if i not in set(odd)] if len(rows) <= EXHAUSTIVE else [])
    prefix = [start]
    for c in rows:
        prefix.append(hashlib.sha256(prefix[-1] + c).digest())
    for i in order:
        if _chain(prefix[i], rows[i + 1:]) == head:
            return i
    return None


def _swapped(start: bytes, rows: list[bytes], ids: list[int], head: bytes) -> tuple[int, int] | None:
    odd = _anomalies(ids)
    pairs = [(i, i + 1) for i in range(len(ids) - 1) if ids[i] > ids[i + 1]]
    pairs += [(a, b) for n, a in enumerate(odd) for b in odd[n + 1:] if (a, b) not in pairs]
    if len(rows) <= 64:
        pairs += [(a, b) for a in range(len(rows)) for b in range(a + 1, len(rows)) if (a, b) not in pairs]
    prefix = [start]
    for c in rows:
        prefix.append(hashlib.sha256(prefix[-1] + c).digest())
    for a, b in pairs[:MAX_PAIRS]:
        trial = rows[a:b + 1]
        trial[0], trial[-1] = trial[-1], trial[0]
        if _chain(_chain(prefix[a], trial), rows[b + 1:]) == head:
            return a, b
    return None


def _missing_ids(ids: list[int], limit: int = 20) -> list[int]:
    """Ids inside the segment's id range that no link covers and no row holds (deleted, or never committed)."""
    present = set(ids)
    if not ids:
        return []
    lo, hi = min(ids), max(ids)
    if hi - lo > 100_000:
        return []
    gaps = [i for i in range(lo, hi + 1) if i not in present]
    if not gaps:
        return []
    with connection.cursor() as cur:
        cur.execute("SELECT DISTINCT id FROM audit_accessevent WHERE id = ANY(%s)", [gaps])
        exist = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT event_id FROM audit_chainlink WHERE event_id = ANY(%s)", [gaps])
        exist |= {row[0] for row in cur.fetchall()}
    return [i for i in gaps if i not in exist][:limit]


def localize(result, scan, trusted: list, first: int | None, last: int | None) -> None:
    """Add precise problems (kinds ``link_inserted``, ``links_swapped``, ``links_deleted``, ``segment_altered``)
    for the segments the scan found rewritten, and say which later segments are intact."""
    if first is None or last is None or not scan.rewritten:
        return
    heads: dict[int, tuple[bytes, object]] = {}
    for cp in sorted(trusted, key=lambda c: c.number):
        heads.setdefault(cp.seq, (bytes(cp.head_hash), cp))
    start_seq = min(start for start, _ in scan.rewritten) - 1
    if start_seq in heads:
        start_hash = heads[start_seq][0]
    elif start_seq == 0:
        start_hash = GENESIS
    else:
        with connection.cursor() as cur:
            cur.execute("SELECT hash FROM audit_chainlink WHERE seq = %s", [start_seq])
            row = cur.fetchone()
        if row is None:
            return
        start_hash = bytes(row[0])
    points = [(seq, *heads[seq]) for seq in sorted(heads) if seq > start_seq]
    links = _Links(scan.forged)
    rewritten_breaks = {b.seq: b for b in result.breaks if b.kind == "chain_rewritten"}
    p, h_p, offset = start_seq, start_hash, 0
    for index, (q, h_q, cp) in enumerate(points):
        n = q - p
        lo, hi = p + offset + 1, q + offset
        nxt = points[index + 1] if index + 1 < len(points) else None
        if not links.load(lo - MAX_SHIFT, hi + MAX_SHIFT + 1):
            result.notes.append("the rewritten segments are too long to be analysed link by link")
            return
        rows = links.canonicals(lo, hi)
        label = f"checkpoint #{cp.number} (link {q})"
        if rows is not None and _chain(h_p, rows) == h_q:
            brk = rewritten_breaks.get(q)
            forged = sorted(s for s in scan.forged if lo <= s <= hi)
            if brk is not None and forged:
                brk.reason += (f"; pointed back at the genuine row of its event id, link(s) "
                               f"{', '.join(map(str, forged))} make links {lo} to {hi} reproduce the head signed by "
                               f"{label}")
            elif brk is not None:
                now = f" (now {lo} to {hi}, renumbered by {offset:+d})" if offset else ""
                brk.reason += (f"; links {p + 1} to {q}{now} are intact: from the previous signed head they "
                               f"reproduce the head signed by {label}, the change is earlier")
            p, h_p = q, h_q
            continue
        # One row inserted?
        more = links.canonicals(lo, hi + 1)
        if more is not None:
            ids = [links.event_id(s) for s in range(lo, hi + 2)]
            i = _inserted(h_p, more, ids, h_q)
            if i is not None:
                seq = lo + i
                result.add(seq, ids[i], f"event {ids[i]} (link {seq}) was inserted into the chain and the chain "
                                        f"recomputed: without it, links {lo} to {hi + 1} reproduce the head signed by "
                                        f"{label}", kind="link_inserted", occurred_at=links.occurred(seq))
                p, h_p, offset = q, h_q, offset + 1
                continue
        # Two rows swapped?
        if rows is not None:
            ids = [links.event_id(s) for s in range(lo, hi + 1)]
            pair = _swapped(h_p, rows, ids, h_q)
            if pair is not None:
                a, b = lo + pair[0], lo + pair[1]
                result.add(a, ids[pair[0]], f"events {ids[pair[0]]} and {ids[pair[1]]} (links {a} and {b}) were "
                                            f"swapped and the chain recomputed: swapped back, links {lo} to {hi} "
                                            f"reproduce the head signed by {label}", kind="links_swapped",
                           occurred_at=links.occurred(a))
                p, h_p = q, h_q
                continue
        # Rows deleted, or a row altered: measured on the next signed segment, which must be intact once shifted.
        shift = _shift(links, h_q, q, nxt, offset, n) if nxt is not None else None
        seg_ids = [i for i in (links.event_id(s) for s in range(lo, hi + 1)) if i is not None]
        if shift is None:
            missing = _missing_ids(seg_ids)
            if missing:
                result.add(p + 1, None, f"links {p + 1} to {q} were rewritten after {label} signed them; event "
                                        f"id(s) {', '.join(map(str, missing))} are missing from that range (deleted "
                                        f"rows, or ids of requests that were rolled back)", kind="links_deleted")
            return  # the offset is lost: later segments cannot be aligned
        delta = shift - offset
        if delta < 0:
            k = -delta
            kept = [links.event_id(s) for s in range(lo - 1, hi + delta + 2)]
            missing = _missing_ids([i for i in kept if i is not None])
            where = (f"links {p + 1} to {q} (all {k}) were deleted" if k == n else
                     f"{k} link(s) were deleted from links {p + 1} to {q}")
            named = ""
            if missing and len(missing) == k:
                seqs = [_original_seq(links, lo, hi + delta, m, offset) for m in missing]
                named = "; the deleted event(s): " + ", ".join(
                    f"id {m} (link {s})" for m, s in zip(missing, seqs, strict=True))
            elif missing:
                named = f"; candidates (ids no row holds any more): {', '.join(map(str, missing))}"
            result.add(p + 1, None, f"{where} and the later links renumbered and recomputed: from the head signed "
                                    f"by {label}, links {q + shift + 1} to {nxt[0] + shift} reproduce the head "
                                    f"signed by checkpoint #{nxt[2].number}" + named, kind="links_deleted")
        elif delta > 0:
            odd = [lo + i for i in _anomalies([links.event_id(s) or 0 for s in range(lo, hi + delta + 1)])]
            result.add(p + 1, None, f"{delta} link(s) were inserted among links {p + 1} to {q} and the chain recomputed"
                                    + (f" (out of id order: links {', '.join(map(str, odd[:20]))})" if odd else ""),
                       kind="link_inserted")
        else:
            result.add(p + 1, None, f"an event among links {p + 1} to {q} was altered and the chain recomputed: the "
                                    f"number of links is unchanged (links {q + 1} to {nxt[0]} reproduce the head "
                                    f"signed by checkpoint #{nxt[2].number}); which row changed cannot be told from "
                                    f"a hash", kind="segment_altered")
        p, h_p, offset = q, h_q, shift


def _shift(links: _Links, h_q: bytes, q: int, nxt, offset: int, n: int) -> int | None:
    """The offset (current seq minus original seq) after link ``q``: the one that makes the next signed segment
    reproduce its head from ``h_q``."""
    r, h_r, _ = nxt
    m = r - q
    for delta in [0, *(d for k in range(1, MAX_SHIFT + 1) for d in (-k, k)), -n]:
        o = offset + delta
        if not links.load(q + o + 1, r + o):
            return None
        rows = links.canonicals(q + o + 1, q + o + m)
        if rows is not None and _chain(h_q, rows) == h_r:
            return o
    return None


def _original_seq(links: _Links, lo: int, hi: int, missing_id: int, offset: int) -> int | None:
    """Where a deleted event stood: before the first remaining link of the segment with a higher id."""
    for seq in range(lo, hi + 1):
        event_id = links.event_id(seq)
        if event_id is not None and event_id > missing_id:
            return seq - offset
    return hi + 1 - offset
