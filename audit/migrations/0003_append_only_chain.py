"""Append-only access trace and its hash chain, enforced by PostgreSQL itself.

1. Triggers refuse UPDATE, DELETE and TRUNCATE on ``audit_accessevent`` (row triggers on the partitioned
   parent are cloned onto every partition; TRUNCATE needs a statement trigger on each partition, which
   ``audit_ensure_partitions`` now adds). Old months leave whole, by ``audit_drop_partitions_before()``.
2. Each committed event gets one link in ``audit_chainlink``: ``hash = sha256(prev_hash || canonical)``,
   where ``canonical = audit_event_canonical(event)`` is PostgreSQL's binary record encoding
   (``record_send``) of the 19 event fields, text in UTF-8. The link is written at COMMIT by a deferred
   constraint trigger, so a rolled-back transaction leaves no link and request transactions are never
   serialised. A committer takes the chain lock with ``pg_try_advisory_xact_lock`` and never waits: when
   another transaction is committing its own link at that instant, the event is queued in
   ``audit_chainpending`` and chained (in order) by the next committer or by ``audit_chain_seal()``
   (Celery beat, checkpoint signing, ``verify_audit``). One lock holder at a time and the primary key on
   ``seq`` mean no two links ever claim the same predecessor.
3. Signed checkpoints (``audit_auditcheckpoint``) cannot be updated or deleted either.

See docs/audit.md for the design and for the database roles (migration 0004).
"""

from django.db import migrations

GENESIS = "'\\x" + "00" * 32 + "'::bytea"
CHAIN_LOCK = "7391004412"  # pg advisory lock key of the chain (per database)

FIELDS = (
    "id, occurred_at, actor_id, actor_username, actor_role, actor_unit, patient_id, category, resource_type, "
    "resource_id, action, outcome, basis, reason, channel, request_id, ip, user_agent, details"
)


def _row(alias: str) -> str:
    return ", ".join(f"{alias}.{f.strip()}" for f in FIELDS.split(","))


SQL = """
-- 1. Append-only -------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'whole months are removed by audit_drop_partitions_before() (docs/audit.md)';
END $$;

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_accessevent
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_accessevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
-- Statement triggers are not inherited by partitions: each one gets its own TRUNCATE guard.
DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'audit_accessevent'::regclass LOOP
        EXECUTE format('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change()', part);
    END LOOP;
END $$;

-- Monthly partitions, bounds in UTC, each with its TRUNCATE guard. SECURITY DEFINER: the application
-- role may create next months' partitions without owning the table.
CREATE OR REPLACE FUNCTION audit_ensure_partitions(from_month date, months integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    m date := date_trunc('month', from_month)::date;
    created integer := 0;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('audit_accessevent_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass('public.' || name) IS NULL THEN
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.audit_accessevent FOR VALUES FROM (%L) TO (%L)',
                name, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            EXECUTE format('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON public.%I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION public.audit_reject_change()', name);
            created := created + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;

-- Checkpoints are signed statements: never rewritten. (No TRUNCATE guard: Django's test flush truncates
-- managed tables; a deleted checkpoint only weakens anchoring, and verify_audit reports the gap.)
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();

-- 2. Hash chain --------------------------------------------------------------------------------------------
CREATE TABLE audit_chainlink (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    event_id bigint NOT NULL,
    event_occurred_at timestamptz NOT NULL,
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE UNIQUE INDEX audit_chainlink_event_uniq ON audit_chainlink (event_id);
CREATE INDEX audit_chainlink_time_brin ON audit_chainlink USING brin (event_occurred_at);

-- A link may be deleted only once a retention checkpoint anchors the chain at or after it.
CREATE OR REPLACE FUNCTION audit_chainlink_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM public.audit_auditcheckpoint c WHERE c.kind = 'retention' AND c.seq >= OLD.seq) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit chain is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_chainlink
    FOR EACH ROW EXECUTE FUNCTION audit_chainlink_guard();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_chainlink
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();

-- Committed events waiting for their link (the chain lock was busy when they committed), with the bytes
-- to hash as they were at commit.
CREATE TABLE audit_chainpending (
    event_id bigint PRIMARY KEY,
    event_occurred_at timestamptz NOT NULL,
    canonical bytea NOT NULL
);

-- The bytes that are hashed: PostgreSQL's binary record encoding of every event field, in a fixed order.
-- client_encoding is pinned so that text is always hashed as UTF-8, whatever the session. (The trigger
-- inlines the same expression: a SQL function call costs more than the rest of the trigger.)
CREATE OR REPLACE FUNCTION audit_event_canonical(e audit_accessevent) RETURNS bytea
LANGUAGE sql STABLE SET client_encoding = 'UTF8' AS $$
    SELECT pg_catalog.record_send(ROW(ROW_E))
$$;

-- Chain the queued events (lowest id first) after (h_seq, h_hash). The caller holds the chain lock.
CREATE OR REPLACE FUNCTION audit_chain_drain(INOUT h_seq bigint, INOUT h_hash bytea, max_events integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    r record;
    prev bytea;
BEGIN
    FOR r IN
        WITH taken AS (
            DELETE FROM public.audit_chainpending
            WHERE event_id IN (SELECT event_id FROM public.audit_chainpending ORDER BY event_id LIMIT max_events)
            RETURNING event_id, event_occurred_at, canonical
        )
        SELECT * FROM taken ORDER BY event_id
    LOOP
        prev := h_hash;
        h_hash := sha256(prev || r.canonical);
        h_seq := h_seq + 1;
        INSERT INTO public.audit_chainlink (seq, event_id, event_occurred_at, prev_hash, hash)
            VALUES (h_seq, r.event_id, r.event_occurred_at, prev, h_hash);
    END LOOP;
END $$;

-- At COMMIT (deferred constraint trigger): append this event to the chain, never waiting for another
-- committer. Only a READ COMMITTED statement sees the latest committed link; other isolation levels queue.
CREATE OR REPLACE FUNCTION audit_chain_link() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET client_encoding = 'UTF8' AS $$
DECLARE
    h_seq bigint;
    h_hash bytea;
    prev bytea;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed'
       OR NOT pg_try_advisory_xact_lock(CHAIN_LOCK) THEN
        INSERT INTO public.audit_chainpending (event_id, event_occurred_at, canonical)
            VALUES (NEW.id, NEW.occurred_at, pg_catalog.record_send(ROW(ROW_NEW)));
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
    prev := h_hash;
    h_hash := sha256(prev || pg_catalog.record_send(ROW(ROW_NEW)));  -- = audit_event_canonical(NEW)
    INSERT INTO public.audit_chainlink (seq, event_id, event_occurred_at, prev_hash, hash)
        VALUES (h_seq + 1, NEW.id, NEW.occurred_at, prev, h_hash);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER audit_chain AFTER INSERT ON audit_accessevent
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_chain_link();

-- Chain whatever is queued (waits for the chain lock). Returns the head's seq.
CREATE OR REPLACE FUNCTION audit_chain_seal(max_events integer DEFAULT 1000000) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    h_seq bigint;
    h_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(CHAIN_LOCK);
    SELECT l.seq, l.hash INTO h_seq, h_hash FROM public.audit_chainlink l ORDER BY l.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        h_seq := 0;
        h_hash := GENESIS;
    END IF;
    SELECT d.h_seq, d.h_hash INTO h_seq, h_hash FROM public.audit_chain_drain(h_seq, h_hash, max_events) d;
    RETURN h_seq;
END $$;

-- 3. Retention: whole months only, never under 6 months (CNIL 2021-122), and only once a signed retention
-- checkpoint covers the cutoff (audit.services.partitions_drop_older_than signs it first).
CREATE OR REPLACE FUNCTION audit_drop_partitions_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    part record;
    upper_bound timestamptz;
BEGIN
    IF cutoff > now() - interval '6 months' THEN
        RAISE EXCEPTION 'access traces are kept at least 6 months: cutoff % refused', cutoff
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.audit_auditcheckpoint c
                   WHERE c.kind = 'retention' AND c.retention_cutoff >= cutoff) THEN
        RAISE EXCEPTION 'no retention checkpoint covers cutoff %', cutoff
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call audit.services.partitions_drop_older_than(), which signs one first';
    END IF;
    -- Detaching takes an exclusive lock on the event table: give up (and retry tomorrow) rather than
    -- queue every request behind a long transaction.
    PERFORM set_config('lock_timeout', '5s', true);
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.audit_accessevent'::regclass
          AND c.relname ~ '^audit_accessevent_[0-9]{4}_[0-9]{2}$'
        ORDER BY c.relname
    LOOP
        upper_bound := (to_date(right(part.relname, 7), 'YYYY_MM') + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        CONTINUE WHEN upper_bound > cutoff;
        EXECUTE format('ALTER TABLE public.audit_accessevent DETACH PARTITION public.%I', part.relname);
        EXECUTE format('DROP TABLE public.%I', part.relname);
        RETURN NEXT part.relname;
    END LOOP;
    DELETE FROM public.audit_chainpending WHERE event_occurred_at < cutoff;
END $$;

-- Remove links below ``boundary`` (the guard trigger checks a retention checkpoint anchors each one).
CREATE OR REPLACE FUNCTION audit_purge_links_before(boundary bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM public.audit_chainlink WHERE seq < boundary;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- SECURITY DEFINER functions: nobody but the owner unless granted (migration 0004 grants the app role).
REVOKE EXECUTE ON FUNCTION audit_chain_drain(bigint, bytea, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit_chain_seal(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit_ensure_partitions(date, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit_drop_partitions_before(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit_purge_links_before(bigint) FROM PUBLIC;

-- Events recorded before this migration join the chain now, in id order.
INSERT INTO audit_chainpending (event_id, event_occurred_at, canonical)
    SELECT e.id, e.occurred_at, audit_event_canonical(e) FROM audit_accessevent e;
SELECT audit_chain_seal(2147483647);
""".replace("ROW_NEW", _row("NEW")).replace("ROW_E", _row("e")).replace("CHAIN_LOCK", CHAIN_LOCK).replace("GENESIS", GENESIS)

REVERSE = """
DROP TRIGGER IF EXISTS audit_chain ON audit_accessevent;
DROP TRIGGER IF EXISTS audit_append_only ON audit_accessevent;
DROP TRIGGER IF EXISTS audit_no_truncate ON audit_accessevent;
DROP TRIGGER IF EXISTS audit_append_only ON audit_auditcheckpoint;
DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'audit_accessevent'::regclass LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS audit_no_truncate ON %s', part);
    END LOOP;
END $$;
DROP FUNCTION IF EXISTS audit_chain_seal(integer);
DROP FUNCTION IF EXISTS audit_chain_link();
DROP FUNCTION IF EXISTS audit_chain_drain(bigint, bytea, integer);
DROP FUNCTION IF EXISTS audit_purge_links_before(bigint);
DROP FUNCTION IF EXISTS audit_drop_partitions_before(timestamptz);
DROP FUNCTION IF EXISTS audit_event_canonical(audit_accessevent);
DROP TABLE IF EXISTS audit_chainpending;
DROP TABLE IF EXISTS audit_chainlink;
DROP FUNCTION IF EXISTS audit_chainlink_guard();
DROP FUNCTION IF EXISTS audit_reject_change();
CREATE OR REPLACE FUNCTION audit_ensure_partitions(from_month date, months integer) RETURNS integer
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    m date := date_trunc('month', from_month)::date;
    created integer := 0;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('audit_accessevent_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF audit_accessevent FOR VALUES FROM (%L) TO (%L)',
                name, m::timestamptz, (m + interval '1 month')::timestamptz);
            created := created + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;
ALTER FUNCTION audit_ensure_partitions(date, integer) RESET ALL;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_chain_checkpoints")]

    operations = [migrations.RunSQL(SQL, REVERSE)]
