"""Issue #14: a trail that the database's superuser cannot rewrite unseen, and that no insert can wedge.

1. Event ids are always assigned by the database: ``id`` becomes ``GENERATED ALWAYS``, and a guard refuses an
   id above the session's last generated one (``OVERRIDING SYSTEM VALUE`` cannot claim a future id, so a
   forger cannot make a genuine event collide with it later).
2. The chain cannot be wedged: an event whose id is already chained or queued (a reused id) is set aside in
   ``audit_chainquarantine`` (append-only) instead of failing its commit and every later one; verify_audit
   reports it, naming the inserted row.
3. Checkpoints form their own chain: ``number`` without gap (the next number or nothing), ``prev_digest``
   (signed: the digest of the previous checkpoint), and for retention checkpoints the exact range of links
   removed. Checkpoints signed before this migration are kept as format 1 and chained here by digest (the
   first format-2 checkpoint signs the last of them). UPDATE, DELETE and TRUNCATE are refused; the table
   leaves Django's management (a test flush does not truncate it, like the events and links).

See docs/audit.md (threat model, witnesses).
"""

import importlib
from datetime import UTC

from django.db import migrations, models

ID_GUARD = """
ALTER TABLE audit_accessevent ALTER COLUMN id SET GENERATED ALWAYS;

-- OVERRIDING SYSTEM VALUE is allowed to anyone who may INSERT: refuse an id the sequence has not given this
-- session yet (currval is per session; it fails when the session never drew one).
CREATE OR REPLACE FUNCTION audit_event_id_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id > pg_catalog.currval('SEQ') THEN
        RAISE EXCEPTION 'audit event ids are assigned by the database: id % refused', NEW.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_event_id_guard BEFORE INSERT ON audit_accessevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_id_guard();
"""

QUARANTINE = """
CREATE TABLE audit_chainquarantine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id bigint NOT NULL,
    event_occurred_at timestamptz NOT NULL,
    canonical bytea NOT NULL,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_chainquarantine
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_chainquarantine
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();

-- Chain the queued events (lowest id first) after (h_seq, h_hash); an event whose id is already chained is
-- quarantined, never allowed to fail the drain (and with it every committer). The caller holds the lock.
CREATE OR REPLACE FUNCTION audit_chain_drain(INOUT h_seq bigint, INOUT h_hash bytea, max_events integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    r record;
    next_hash bytea;
BEGIN
    FOR r IN
        WITH taken AS (
            DELETE FROM public.audit_chainpending
            WHERE event_id IN (SELECT event_id FROM public.audit_chainpending ORDER BY event_id LIMIT max_events)
            RETURNING event_id, event_occurred_at, canonical
        )
        SELECT * FROM taken ORDER BY event_id
    LOOP
        next_hash := sha256(h_hash || r.canonical);
        INSERT INTO public.audit_chainlink (seq, event_id, event_occurred_at, prev_hash, hash)
            VALUES (h_seq + 1, r.event_id, r.event_occurred_at, h_hash, next_hash)
            ON CONFLICT (event_id) DO NOTHING;
        IF FOUND THEN
            h_seq := h_seq + 1;
            h_hash := next_hash;
        ELSE
            INSERT INTO public.audit_chainquarantine (event_id, event_occurred_at, canonical, reason)
                VALUES (r.event_id, r.event_occurred_at, r.canonical, 'id already in the chain');
        END IF;
    END LOOP;
END $$;
REVOKE EXECUTE ON FUNCTION audit_chain_drain(bigint, bytea, integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION audit_chain_link() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET client_encoding = 'UTF8' AS $$
DECLARE
    h_seq bigint;
    h_hash bytea;
    canonical bytea;
BEGIN
    canonical := pg_catalog.record_send(ROW(ROW_NEW));  -- = audit_event_canonical(NEW)
    IF current_setting('transaction_isolation') <> 'read committed'
       OR NOT pg_try_advisory_xact_lock(CHAIN_LOCK) THEN
        INSERT INTO public.audit_chainpending (event_id, event_occurred_at, canonical)
            VALUES (NEW.id, NEW.occurred_at, canonical) ON CONFLICT (event_id) DO NOTHING;
        IF NOT FOUND THEN
            INSERT INTO public.audit_chainquarantine (event_id, event_occurred_at, canonical, reason)
                VALUES (NEW.id, NEW.occurred_at, canonical, 'id already queued for the chain');
        END IF;
        RETURN NULL;
    END IF;
    SELECT l.seq, l.hash INTO h_seq, h_hash FROM public.audit_chainlink l ORDER BY l.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        h_seq := 0;
        h_hash := GENESIS;
    END IF;
    IF EXISTS (SELECT 1 FROM public.audit_chainpending) THEN
        SELECT d.h_seq, d.h_hash INTO h_seq, h_hash FROM public.audit_chain_drain(h_seq, h_hash, 1000) d;
    END IF;
    INSERT INTO public.audit_chainlink (seq, event_id, event_occurred_at, prev_hash, hash)
        VALUES (h_seq + 1, NEW.id, NEW.occurred_at, h_hash, sha256(h_hash || canonical))
        ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        INSERT INTO public.audit_chainquarantine (event_id, event_occurred_at, canonical, reason)
            VALUES (NEW.id, NEW.occurred_at, canonical, 'id already in the chain');
    END IF;
    RETURN NULL;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dpi_app_audit') THEN
        GRANT SELECT ON audit_chainquarantine TO dpi_app_audit;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'grant to dpi_app_audit not made (%); see docs/audit.md', SQLERRM;
END $$;
"""

CHECKPOINT_COLUMNS = """
ALTER TABLE audit_auditcheckpoint
    ADD COLUMN number bigint,
    ADD COLUMN format smallint NOT NULL DEFAULT 2 CHECK (format IN (1, 2)),
    ADD COLUMN prev_digest bytea NOT NULL DEFAULT '\\x'::bytea,
    ADD COLUMN removed_first_seq bigint NULL,
    ADD COLUMN removed_last_seq bigint NULL;
"""

CHECKPOINT_GUARDS = """
ALTER TABLE audit_auditcheckpoint ALTER COLUMN number SET NOT NULL,
    ALTER COLUMN prev_digest DROP DEFAULT,
    ADD CONSTRAINT audit_checkpoint_number_uniq UNIQUE (number),
    ADD CONSTRAINT audit_checkpoint_prev_digest_len CHECK (length(prev_digest) = 32),
    ADD CONSTRAINT audit_checkpoint_removed_range CHECK (
        (format = 1 OR (kind = 'retention') = (removed_last_seq IS NOT NULL))
        AND (removed_first_seq IS NULL OR removed_first_seq <= removed_last_seq + 1));
DROP INDEX IF EXISTS audit_checkpoint_kind_seq;
CREATE INDEX audit_checkpoint_kind_seq ON audit_auditcheckpoint (kind, seq);

-- No gap: a new checkpoint takes the next number, or nothing. (Concurrent signers: the unique number
-- decides; audit.services also serialises them.)
CREATE OR REPLACE FUNCTION audit_checkpoint_next() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    SELECT max(number) INTO last FROM public.audit_auditcheckpoint;
    IF NEW.number <> coalesce(last, 0) + 1 THEN
        RAISE EXCEPTION 'audit checkpoints are numbered without gap: % refused after %', NEW.number, last
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_checkpoint_next BEFORE INSERT ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_next();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
"""

REVERSE = """
DROP TRIGGER IF EXISTS audit_no_truncate ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_next ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_checkpoint_next();
ALTER TABLE audit_auditcheckpoint DROP CONSTRAINT IF EXISTS audit_checkpoint_number_uniq,
    DROP CONSTRAINT IF EXISTS audit_checkpoint_prev_digest_len, DROP CONSTRAINT IF EXISTS audit_checkpoint_removed_range,
    DROP COLUMN IF EXISTS number, DROP COLUMN IF EXISTS format, DROP COLUMN IF EXISTS prev_digest,
    DROP COLUMN IF EXISTS removed_first_seq, DROP COLUMN IF EXISTS removed_last_seq;
DROP TRIGGER IF EXISTS audit_event_id_guard ON audit_accessevent;
DROP FUNCTION IF EXISTS audit_event_id_guard();
ALTER TABLE audit_accessevent ALTER COLUMN id SET GENERATED BY DEFAULT;
DROP TABLE IF EXISTS audit_chainquarantine;
"""


def _legacy_chain(apps, schema_editor):
    """Number the checkpoints signed before (format 1) in id order and chain them by digest."""
    from audit.signing import GENESIS, checkpoint_digest

    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT id, seq, head_hash, signed_at, kind, retention_cutoff, key_version, signature "
                    "FROM audit_auditcheckpoint ORDER BY id")
        rows = cur.fetchall()
        if not rows:
            return
        cur.execute("ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER audit_append_only")
        cur.execute("UPDATE audit_auditcheckpoint SET format = 1")  # signed before this migration
        prev, last_removed = GENESIS, 0

        class Row:
            format = 1

        for number, (pk, seq, head, signed_at, kind, cutoff, version, signature) in enumerate(rows, start=1):
            row = Row()
            row.number, row.seq, row.head_hash, row.signed_at = number, seq, bytes(head), signed_at.astimezone(UTC)
            row.kind, row.retention_cutoff, row.key_version, row.signature = kind, cutoff, version, bytes(signature)
            row.prev_digest = prev
            removed = (last_removed + 1, seq) if kind == "retention" else (None, None)
            if kind == "retention":
                last_removed = seq
            cur.execute("UPDATE audit_auditcheckpoint SET number = %s, prev_digest = %s, removed_first_seq = %s, "
                        "removed_last_seq = %s WHERE id = %s", [number, prev, removed[0], removed[1], pk])
            prev = checkpoint_digest(row)
        cur.execute("ALTER TABLE audit_auditcheckpoint ENABLE TRIGGER audit_append_only")


CHECKPOINT_STATE = [
    migrations.RemoveIndex(model_name="auditcheckpoint", name="audit_checkpoint_kind_seq"),
    migrations.AlterModelOptions(name="auditcheckpoint", options={"managed": False, "ordering": ["number"]}),
    migrations.AlterModelTable(name="auditcheckpoint", table="audit_auditcheckpoint"),
    migrations.AddField("auditcheckpoint", "number", models.BigIntegerField(unique=True, default=0),
                        preserve_default=False),
    migrations.AddField("auditcheckpoint", "format", models.PositiveSmallIntegerField(default=2)),
    migrations.AddField("auditcheckpoint", "prev_digest", models.BinaryField(max_length=32, default=b""),
                        preserve_default=False),
    migrations.AddField("auditcheckpoint", "removed_first_seq", models.BigIntegerField(null=True, blank=True)),
    migrations.AddField("auditcheckpoint", "removed_last_seq", models.BigIntegerField(null=True, blank=True)),
    migrations.CreateModel(
        name="ChainQuarantine",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("event_id", models.BigIntegerField()),
            ("event_occurred_at", models.DateTimeField()),
            ("canonical", models.BinaryField()),
            ("reason", models.TextField()),
            ("quarantined_at", models.DateTimeField()),
        ],
        options={"db_table": "audit_chainquarantine", "ordering": ["id"], "managed": False},
    ),
]


def _sql(text: str) -> str:
    chain = importlib.import_module("audit.migrations.0003_append_only_chain")
    return (text.replace("ROW_NEW", chain._row("NEW")).replace("CHAIN_LOCK", chain.CHAIN_LOCK)
            .replace("GENESIS", chain.GENESIS).replace("SEQ", "public.audit_accessevent_id_seq"))


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_app_role")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(CHECKPOINT_COLUMNS, migrations.RunSQL.noop),
                migrations.RunPython(_legacy_chain, migrations.RunPython.noop),
                migrations.RunSQL(CHECKPOINT_GUARDS, REVERSE),
                migrations.RunSQL(_sql(ID_GUARD), migrations.RunSQL.noop),
                migrations.RunSQL(_sql(QUARANTINE), migrations.RunSQL.noop),
            ],
            state_operations=CHECKPOINT_STATE,
        ),
        migrations.AddField("verificationrun", "first_broken_occurred_at",
                            models.DateTimeField(null=True, help_text="date of that row (ids may be reused)")),
        migrations.AddField("verificationrun", "problems",
                            models.JSONField(default=list, blank=True, help_text="every problem found (at most 100)")),
        migrations.AddField("verificationrun", "completed",
                            models.BooleanField(default=True,
                                                help_text="false: the verification itself failed (see message)")),
        migrations.AddField("verificationrun", "last_checkpoint_number", models.BigIntegerField(null=True)),
        migrations.AddField("verificationrun", "last_checkpoint_at", models.DateTimeField(null=True)),
        migrations.AddField("verificationrun", "witness_checked",
                            models.IntegerField(default=0, help_text="witness entries reconciled with the database")),
    ]
