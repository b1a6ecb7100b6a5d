"""The tamper suite (issue #14): an insider with the database's superuser rights rewrites the trail and
recomputes every hash of the chain after the change (no secret is needed for that). Each attack must be
detected and named by ``verify_audit``, with the witness file present; ``cover_up`` adds the strongest
follow-up a database superuser has: emptying the checkpoint table so that no contradicting signature is
left in the database. The same attacks with the witness also tampered are listed in docs/audit.md.

One small trail per test (19 events, 3 signed checkpoints), rolled back with it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit import witness
from audit.models import AccessEvent, AuditCheckpoint
from audit.services import checkpoint_sign, retention_cutoff
from audit.verification import chain_verify
from tests.test_audit_support import chain_now, fresh_trail, record, sql, triggers_off

pytestmark = pytest.mark.django_db

GENESIS_SQL = "'\\x" + "00" * 32 + "'::bytea"


# --- the trail and the attacker's tools ---------------------------------------------------------------------------
class Trail:
    """links 1-4: events of last month (own partition); checkpoint #1 at link 4; links 5-10, #2 at 10;
    links 11-16, #3 at 16; links 17-19 after the last checkpoint."""

    def __init__(self):
        fresh_trail()
        self.old_month = retention_cutoff(1)  # the first instant of last month (UTC)
        self.partition = f"audit_accessevent_{self.old_month:%Y_%m}"
        sql("SELECT audit_ensure_partitions(%s::date, 1)", [self.old_month.date()])
        for i in range(4):
            AccessEvent(occurred_at=self.old_month + timedelta(days=3, hours=i), action="view", outcome="allowed",
                        actor_username="dr.old", patient_id=11).save(force_insert=True)
        chain_now()
        checkpoint_sign()
        record(6, patient_id=12, reason="dr.martin")
        chain_now()
        checkpoint_sign()
        record(6, patient_id=13, reason="dr.durand")
        chain_now()
        checkpoint_sign()
        record(3, patient_id=14, reason="dr.petit")
        chain_now()
        assert sql("SELECT min(seq), max(seq) FROM audit_chainlink")[0] == (1, 19)

    def event_at(self, seq: int) -> tuple[int, datetime]:
        return sql("SELECT event_id, event_occurred_at FROM audit_chainlink WHERE seq = %s", [seq])[0]


def recompute(from_seq: int = 1) -> None:
    """What the attacker does after a change: every link from ``from_seq`` on rehashed, so the chain is
    internally consistent again (links follow the events by id and date)."""
    sql(f"""
        DO $$ DECLARE r record; h bytea; BEGIN
          h := coalesce((SELECT hash FROM audit_chainlink WHERE seq = {int(from_seq) - 1}), {GENESIS_SQL});
          FOR r IN SELECT l.seq, audit_event_canonical(e) AS c FROM audit_chainlink l
                   JOIN audit_accessevent e ON e.id = l.event_id AND e.occurred_at = l.event_occurred_at
                   WHERE l.seq >= {int(from_seq)} ORDER BY l.seq LOOP
            UPDATE audit_chainlink SET prev_hash = h, hash = sha256(h || r.c) WHERE seq = r.seq RETURNING hash INTO h;
          END LOOP; END $$""")  # noqa: S608


def renumber(after_seq: int, delta: int) -> None:
    sql("UPDATE audit_chainlink SET seq = seq + 1000000 WHERE seq > %s", [after_seq])
    sql("UPDATE audit_chainlink SET seq = seq - 1000000 + %s WHERE seq > 1000000", [delta])


def forged_copy(event_id: int, occurred_at: datetime, who: str = "dr.forged") -> None:
    """A row reusing ``event_id`` (the primary key is (id, occurred_at): another date is another row)."""
    sql("INSERT INTO audit_accessevent (id, occurred_at, actor_username, patient_id, action, outcome, category) "
        "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, 13, 'view', 'allowed', 'medical')", [event_id, occurred_at, who])


# --- attacks on the chain ---------------------------------------------------------------------------------------
# Each returns what the verifier must say: the problem kinds, texts that must appear, and ``exact``: problems
# (kind, link, event id) naming the affected rows precisely.
def edit(t: Trail) -> dict:
    event_id, _ = t.event_at(8)
    sql("UPDATE audit_accessevent SET actor_username = 'someone.else' WHERE id = %s", [event_id])
    recompute(8)
    # Which row changed cannot be told from a hash: the segment is named, and that the count of links is unchanged.
    return {"kinds": {"chain_rewritten", "segment_altered"},
            "says": ["between links 5 and 10", "an event among links 5 to 10 was altered"],
            "exact": [("segment_altered", 5, None)]}


def delete(t: Trail) -> dict:
    event_id, _ = t.event_at(8)
    sql("DELETE FROM audit_accessevent WHERE id = %s", [event_id])
    sql("DELETE FROM audit_chainlink WHERE seq = 8")
    renumber(8, -1)
    recompute(8)
    return {"kinds": {"chain_rewritten", "links_deleted"},
            "says": ["1 link(s) were deleted from links 5 to 10", f"the deleted event(s): id {event_id} (link 8)",
                     "links 11 to 16 (now 10 to 15, renumbered by -1) are intact"],
            "exact": [("links_deleted", 5, None)]}


def delete_in_the_last_signed_segment(t: Trail) -> dict:
    """No later signed head measures the shift: the missing id is named as what was deleted."""
    event_id, _ = t.event_at(12)
    sql("DELETE FROM audit_accessevent WHERE id = %s", [event_id])
    sql("DELETE FROM audit_chainlink WHERE seq = 12")
    renumber(12, -1)
    recompute(12)
    return {"kinds": {"chain_rewritten", "links_deleted"},
            "says": ["between links 11 and 16", f"event id(s) {event_id} are missing from that range"],
            "exact": [("links_deleted", 11, None)]}


def swap(t: Trail) -> dict:
    (a, a_at), (b, b_at) = t.event_at(6), t.event_at(7)
    sql("UPDATE audit_chainlink SET event_id = -1 WHERE seq = 6")
    sql("UPDATE audit_chainlink SET event_id = %s, event_occurred_at = %s WHERE seq = 7", [a, a_at])
    sql("UPDATE audit_chainlink SET event_id = %s, event_occurred_at = %s WHERE seq = 6", [b, b_at])
    recompute(6)
    return {"kinds": {"chain_rewritten", "links_swapped"},
            "says": [f"events {b} and {a} (links 6 and 7) were swapped"], "exact": [("links_swapped", 6, b)]}


def insert(t: Trail) -> dict:
    new_id, at = sql("INSERT INTO audit_accessevent (actor_username, patient_id, action, outcome) "
                     "VALUES ('dr.ghost', 12, 'view', 'allowed') RETURNING id, occurred_at")[0]
    renumber(7, 1)
    sql("INSERT INTO audit_chainlink VALUES (8, %s, %s, %s, %s)", [new_id, at, bytes(32), bytes(32)])
    recompute(8)
    # The later segment (links 11 to 16, now 12 to 17) is intact: said so, not blamed.
    return {"kinds": {"chain_rewritten", "link_inserted"},
            "says": [f"event {new_id} (link 8) was inserted",
                     "links 11 to 16 (now 12 to 17, renumbered by +1) are intact"],
            "exact": [("link_inserted", 8, new_id)]}


def _duplicate(t: Trail, offset: timedelta) -> dict:
    event_id, genuine_at = t.event_at(9)
    forged_at = genuine_at + offset
    forged_copy(event_id, forged_at)
    # The attacker points the link at the forged row and recomputes: the chain now "covers" the forgery.
    sql("UPDATE audit_chainlink SET event_occurred_at = %s WHERE seq = 9", [forged_at])
    recompute(9)
    return {"kinds": {"chain_rewritten", "duplicate_id"}, "named": (event_id, forged_at), "genuine": genuine_at,
            "says": ["pointed back at the genuine row of its event id, link(s) 9"]}


def duplicate_id_earlier(t: Trail) -> dict:
    return _duplicate(t, -timedelta(days=20))  # lands in last month's partition


def duplicate_id_later(t: Trail) -> dict:
    return _duplicate(t, timedelta(minutes=7))


def tail_cut(t: Trail) -> dict:
    sql("DELETE FROM audit_accessevent WHERE id IN (SELECT event_id FROM audit_chainlink WHERE seq > 10)")
    sql("DELETE FROM audit_chainlink WHERE seq > 10")
    return {"kinds": {"tail_cut"}, "says": ["links 11 to 16 were cut off"], "exact": [("tail_cut", 11, None)]}


def head_cut_to_a_periodic_checkpoint(t: Trail) -> dict:
    sql("DELETE FROM audit_accessevent WHERE id IN (SELECT event_id FROM audit_chainlink WHERE seq <= 4)")
    sql("DELETE FROM audit_chainlink WHERE seq <= 4")
    return {"kinds": {"head_cut"}, "says": ["removed links 1 to 4"], "exact": [("head_cut", 5, None)]}


def partition_drop_with_renumbering(t: Trail) -> dict:
    sql(f"ALTER TABLE audit_accessevent DETACH PARTITION {t.partition}")
    sql(f"DROP TABLE {t.partition}")
    sql("DELETE FROM audit_chainlink WHERE seq <= 4")
    renumber(4, -4)
    recompute(1)
    return {"kinds": {"chain_rewritten", "links_deleted"},
            "says": ["rewritten after checkpoint", "links 1 to 4 (all 4) were deleted"],
            "exact": [("links_deleted", 1, None)]}


CHAIN_ATTACKS = [edit, delete, delete_in_the_last_signed_segment, swap, insert, duplicate_id_earlier,
                 duplicate_id_later, tail_cut, head_cut_to_a_periodic_checkpoint, partition_drop_with_renumbering]


@pytest.fixture
def trail() -> Trail:
    return Trail()


def _problems(run) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for p in run.problems:
        found.setdefault(p["kind"], []).append(p)
    return found


@pytest.mark.parametrize("cover_up", [False, True], ids=["checkpoints-kept", "checkpoints-truncated"])
@pytest.mark.parametrize("attack", CHAIN_ATTACKS, ids=[a.__name__ for a in CHAIN_ATTACKS])
def test_a_rewritten_trail_is_detected_and_named(trail, attack, cover_up):
    assert chain_verify(alert=False).ok  # intact before
    with triggers_off():
        expected = attack(trail)
        if cover_up:
            sql("TRUNCATE audit_auditcheckpoint")
    run = chain_verify()
    problems = _problems(run)
    assert not run.ok and run.completed, run.message
    assert expected["kinds"] <= problems.keys(), (run.message, run.problems)
    for text in expected.get("says", []):
        assert any(text in p["reason"] for p in run.problems), (text, run.problems)
    for kind, seq, event_id in expected.get("exact", []):
        assert [(p["seq"], p["event_id"]) for p in problems[kind]] == [(seq, event_id)], (kind, run.problems)
    if "named" in expected:  # the inserted row is named by id and date; the genuine row is not blamed
        event_id, forged_at = expected["named"]
        dup = problems["duplicate_id"]
        assert [(p["event_id"], p["occurred_at"]) for p in dup] == [(event_id, forged_at.isoformat())]
        assert "the chain was recomputed to cover it" in dup[0]["reason"]
    if cover_up:  # the witness names the checkpoints that were deleted
        assert "checkpoint_deleted" in problems
        assert any("in the witness but missing from the database" in p["reason"] for p in run.problems)


@pytest.mark.parametrize("batch", [20_000, 2, 3], ids=["one-batch", "batches-of-2", "batches-of-3"])
@pytest.mark.parametrize("offset", [timedelta(seconds=1), -timedelta(days=20)], ids=["later", "earlier"])
def test_a_duplicate_id_without_a_recomputed_chain_names_the_inserted_row(trail, batch, offset):
    """Also when the two rows of the id fall in different batches of the verifier's event stream."""
    event_id, genuine_at = trail.event_at(3)
    forged_at = genuine_at + offset
    with triggers_off():
        forged_copy(event_id, forged_at)
    run = chain_verify(batch=batch)
    dup = _problems(run)["duplicate_id"]
    assert [(p["event_id"], p["occurred_at"]) for p in dup] == [(event_id, forged_at.isoformat())]
    assert run.first_broken_id == event_id and run.first_broken_occurred_at == forged_at


# --- attacks on the checkpoints ---------------------------------------------------------------------------------
def _edit_and_recompute(trail: Trail) -> None:
    event_id, _ = trail.event_at(13)
    sql("UPDATE audit_accessevent SET patient_id = 99 WHERE id = %s", [event_id])
    recompute(13)


def test_a_deleted_middle_checkpoint_is_named(trail):
    with triggers_off():
        _edit_and_recompute(trail)
        sql("DELETE FROM audit_auditcheckpoint WHERE number = 3")
    run = chain_verify()
    reasons = " | ".join(p["reason"] for p in run.problems)
    assert not run.ok
    assert "checkpoint #3 (periodic, link 16" in reasons and "missing from the database" in reasons
    assert "between links 11 and 16 was rewritten after checkpoint #3" in reasons  # from the witness's copy


def test_a_checkpoint_gap_is_named_even_without_the_witness(trail, settings):
    settings.DPI_AUDIT_WITNESS_FILE = None
    with triggers_off():
        sql("DELETE FROM audit_auditcheckpoint WHERE number = 2")
    run = chain_verify()
    assert not run.ok and "checkpoints #2 to #2 are missing from the database" in run.message


def test_a_truncated_checkpoint_table_is_named(trail):
    with triggers_off():
        _edit_and_recompute(trail)
        sql("TRUNCATE audit_auditcheckpoint")
    run = chain_verify()
    problems = _problems(run)
    assert len(problems["checkpoint_deleted"]) == 3 and "chain_rewritten" in problems


def test_an_edited_checkpoint_is_named(trail):
    with triggers_off():
        _edit_and_recompute(trail)
        head = sql("SELECT hash FROM audit_chainlink WHERE seq = 16")[0][0]
        sql("UPDATE audit_auditcheckpoint SET head_hash = %s WHERE number = 3", [head])  # "agree" with the rewrite
    run = chain_verify()
    problems = _problems(run)
    assert {"checkpoint_forged", "checkpoint_altered", "chain_rewritten"} <= problems.keys(), run.problems


def test_checkpoints_form_a_chain(trail):
    cps = list(AuditCheckpoint.objects.order_by("number"))
    assert [c.number for c in cps] == [1, 2, 3]
    from audit.signing import GENESIS, checkpoint_digest

    assert bytes(cps[0].prev_digest) == GENESIS
    assert [bytes(c.prev_digest) for c in cps[1:]] == [checkpoint_digest(c) for c in cps[:-1]]


# --- the witness itself -----------------------------------------------------------------------------------------
def test_the_witness_holds_every_checkpoint_signed(trail, settings):
    wl = witness.read()
    assert sorted(wl.checkpoints) == [1, 2, 3] and not wl.unreadable
    lines = settings.DPI_AUDIT_WITNESS_FILE.read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [4, 10, 16]
    run = chain_verify()
    assert run.ok and run.witness_checked == 3, run.message


def test_an_edited_witness_line_is_named(trail, settings):
    path = settings.DPI_AUDIT_WITNESS_FILE
    lines = path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["seq"] = 9
    lines[1] = witness.line_of(entry)
    path.write_text("\n".join(lines) + "\n")
    run = chain_verify()
    assert not run.ok and "witness line 2 (checkpoint #2) has an invalid signature" in run.message


def test_a_collector_copy_catches_a_trail_rebuilt_with_the_witness_file(trail, settings, tmp_path):
    """Witness file *and* database wiped, new checkpoints signed over a rebuilt trail: the syslog collector's
    copy (reconciled with --witness) still holds the first #1, #2, #3."""
    collector = tmp_path / "collector.log"
    collector.write_text("".join(f"Dec  2 10:00:00 dpi-host dpi[1]: {line}\n"
                                 for line in settings.DPI_AUDIT_WITNESS_FILE.read_text().splitlines()))
    with triggers_off():
        _edit_and_recompute(trail)
        sql("TRUNCATE audit_auditcheckpoint")
    settings.DPI_AUDIT_WITNESS_FILE.unlink()
    checkpoint_sign()  # beat signs on: a new #1 over the rewritten head
    assert chain_verify(alert=False).ok  # database and (new) witness file agree with each other...
    run = chain_verify(witness_file=collector)  # ...not with the collector
    assert not run.ok and "chain_rewritten" in _problems(run), run.problems


# --- freshness, and a verifier that never crashes ---------------------------------------------------------------
def test_a_stale_last_checkpoint_fails_loudly_and_alerts_the_dpo(trail, settings):
    settings.DPI_DPO_EMAILS = ["dpo@hopital.example"]
    later = timezone.now() + timedelta(seconds=2 * settings.DPI_AUDIT_CHECKPOINT_SECONDS + 60)
    run = chain_verify(now=later)
    assert not run.ok and "checkpoint_stale" in _problems(run)
    assert "more than twice the signing period" in run.message
    assert len(mail.outbox) == 1 and "dpo@hopital.example" in mail.outbox[0].to
    assert run.message in mail.outbox[0].body


def test_a_verifier_that_cannot_finish_records_a_failed_run(trail, monkeypatch):
    from audit import selectors, verification

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(verification, "_scan", broken)
    run = chain_verify()
    assert not run.ok and not run.completed
    stored = selectors.last_verification()
    assert stored.pk == run.pk and not stored.ok and "disk on fire" in stored.message


def test_verify_audit_names_a_cut_tail_by_link(trail):
    import io

    from django.core.management import CommandError, call_command

    with triggers_off():
        tail_cut(trail)
    out = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("verify_audit", stdout=out)
    assert "None" not in str(exc.value) and "link 11" in str(exc.value)


def test_a_retention_checkpoint_anchors_the_head_and_a_periodic_one_does_not(trail):
    """Retention (the legitimate way) keeps the trail verifiable: it records exactly links 1 to 4."""
    cutoff = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    anchor = sql("SELECT hash FROM audit_chainlink WHERE seq = 4")[0][0]
    checkpoint_sign(kind="retention", seq=4, head_hash=bytes(anchor), retention_cutoff=cutoff, removed=(1, 4))
    with triggers_off():
        sql(f"ALTER TABLE audit_accessevent DETACH PARTITION {trail.partition}")
        sql(f"DROP TABLE {trail.partition}")
    sql("SELECT audit_purge_links_before(5)")
    run = chain_verify()
    assert run.ok, run.message
    assert (run.first_seq, run.events_checked) == (5, 15)


@pytest.mark.parametrize("batch", [2, 3])
@pytest.mark.parametrize("attack", [duplicate_id_earlier, duplicate_id_later], ids=["earlier", "later"])
def test_a_recomputed_duplicate_is_named_across_batch_boundaries(trail, attack, batch):
    with triggers_off():
        expected = attack(trail)
    run = chain_verify(batch=batch)
    event_id, forged_at = expected["named"]
    dup = _problems(run)["duplicate_id"]
    assert [(p["event_id"], p["occurred_at"]) for p in dup] == [(event_id, forged_at.isoformat())], run.problems


def test_naming_the_rows_is_a_refinement_that_cannot_fail_the_run(trail, monkeypatch):
    from audit import forensics

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(forensics, "localize", broken)
    with triggers_off():
        insert(trail)
    run = chain_verify(alert=False)
    assert not run.ok and run.completed
    assert "chain_rewritten" in _problems(run) and "link_inserted" not in _problems(run)
    assert any("could not be named: RuntimeError" in note for note in run.result.notes)
