"""Detection of unusual access: a labelled synthetic hospital month (issue: detection by Celery workers).

Builds a fresh database ``dpi_bench_detection`` with set-based SQL: 30 care units (physicians, day / evening /
night nurses, secretaries), reception, pharmacy and DIM staff, 60,000 patients (names drawn so that common
names recur), stays and consultations, staff schedules, and 42 days of access events: the accesses the care
relationships explain, and background noise that nothing explains (registered and unregistered consults, mis-
clicks, follow-ups of former patients, on-call nights, legitimate break-the-glass...). The first 14 days are
warm-up (baselines); the last 28 are evaluated.

Two runs of the real detector (``services.detect_range``, one transaction per day, as ``detect_replay``):
1. clean traffic only: alerts per 1,000 users per day on the evaluated days (all false by construction);
2. the same traffic plus injected, labelled snooping scenarios of each rule's kind, with "covering" accesses
   (the snooper's ordinary work around the snooping): precision and recall per kind and overall.
Baselines from the same run: the bare cost of scanning and grouping the same events once, and the alert
volume of the naive detector that flags every unexplained (user, patient, day).
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bench.common import setup_django

DB = "dpi_bench_detection"
UNITS = 34
DAYS = 42
WARMUP = 14
PATIENTS = 60_000
SEED = int(os.environ.get("DPI_BENCH_DETECTION_SEED", "20240601"))  # another seed: another month, same model
PARIS = ZoneInfo("Europe/Paris")

# Per care unit; hospital-wide roles below.
UNIT_STAFF = [("physician", "office", 6), ("nurse", "day", 12), ("nurse", "eve", 6), ("nurse", "night", 6),
              ("medical_secretary", "office", 2)]
WIDE_STAFF = [("reception", "office", 40), ("pharmacist", "office", 15), ("dim", "office", 6)]
DEPARTED = 12  # accounts whose contract ends during the month
DORMANT = 10  # accounts with no activity at all (they exist in both runs)

# Scenarios injected in the second run: instances per kind.
SCENARIOS = {
    "coworker": 20, "vip": 20, "same_name": 20, "same_address": 15, "self_access": 15, "departed": 12,
    "night": 20, "volume": 12, "browsing": 15, "bulk_export": 12, "dormant": 10, "deceased": 15,
    "relationship_ended": 15, "break_glass": 12,
}

_SYL = ["ba", "ber", "bou", "ca", "char", "chau", "da", "del", "du", "fa", "fon", "ga", "gi", "gue", "la", "le",
        "lou", "ma", "mar", "mi", "mo", "na", "pa", "per", "pi", "ra", "ri", "rou", "sa", "ta", "te", "vi", "vin"]


def _fresh_database() -> None:
    """Drop and recreate the benchmark database: every run starts from the same empty state."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    import psycopg

    from dpi import settings as s

    base = s.database_from_url(os.environ["DATABASE_URL"])
    conninfo = {"dbname": "postgres", "user": base["USER"] or None, "password": base["PASSWORD"] or None,
                "host": base["HOST"] or None, "port": base["PORT"] or None}
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


def _common_names() -> list[str]:
    rng = random.Random(SEED)
    names: list[str] = []
    while len(names) < 300:
        n = (rng.choice(_SYL) + rng.choice(_SYL) + rng.choice(["", "t", "d", "n", "l"])).upper()
        if n not in names:
            names.append(n)
    return names


def _sql_array(items: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + i.replace("'", "''") + "'" for i in items) + "]"


def _world_sql(b0: date) -> list[str]:
    """The hospital: units, staff, patients, stays, appointments, schedules (bench.* scratch tables)."""
    common = _sql_array(_common_names())
    syl = _sql_array(_SYL)
    staff_rows = []
    uid = 100  # guardian created AnonymousUser (id 1) at migrate
    for u in range(1, UNITS + 1):
        for role, shift, n in UNIT_STAFF:
            for _ in range(n):
                uid += 1
                staff_rows.append((uid, role, u, shift))
    for role, shift, n in WIDE_STAFF:
        for _ in range(n):
            uid += 1
            staff_rows.append((uid, role, None, shift))
    values = ",".join(f"({i},'{r}',{u if u else 'NULL'},'{s}')" for i, r, u, s in staff_rows)
    return [
        "CREATE SCHEMA bench",
        f"""CREATE FUNCTION bench.family() RETURNS text VOLATILE LANGUAGE sql AS $$
            SELECT CASE WHEN random() < 0.35 THEN ({common})[floor(exp(random() * ln(301)))::int]
                   ELSE upper(({syl})[1 + floor(random() * {len(_SYL)})::int] || ({syl})[1 + floor(random() * {len(_SYL)})::int]
                              || ({syl})[1 + floor(random() * {len(_SYL)})::int] || ({syl})[1 + floor(random() * {len(_SYL)})::int])
                   END $$""",
        f"""CREATE FUNCTION bench.street() RETURNS text VOLATILE LANGUAGE sql AS $$
            SELECT (1 + floor(random() * 200))::int || ' rue ' || initcap(({syl})[1 + floor(random() * {len(_SYL)})::int]
                   || ({syl})[1 + floor(random() * {len(_SYL)})::int]) $$""",
        """CREATE FUNCTION bench.ts(d date, h double precision) RETURNS timestamptz STABLE LANGUAGE sql AS $$
            SELECT (d::timestamp + make_interval(secs => h * 3600)) AT TIME ZONE 'Europe/Paris' $$""",
        f"SELECT setseed({(SEED % 1000) / 1000})",
        f"""INSERT INTO patients_careunit (id, code, name)
            SELECT u, 'u' || lpad(u::text, 2, '0'), 'Unité ' || u FROM generate_series(1, {UNITS}) u""",
        f"""CREATE TABLE bench.staff AS
            SELECT v.uid, v.role, v.unit_id, v.shift, 'u' || lpad(v.unit_id::text, 2, '0') AS unit_code,
                   bench.family() AS last_name, bench.street() AS address,
                   (75001 + floor(random() * 40))::int::text AS postal, NULL::int AS end_day, false AS dormant
            FROM (VALUES {values}) v(uid, role, unit_id, shift)""",
        "UPDATE bench.staff SET unit_code = NULL WHERE unit_id IS NULL",
        # Departed (contract ends on day 8..24) and dormant accounts, among unit nurses and physicians.
        f"""UPDATE bench.staff SET end_day = 8 + (uid % 17) WHERE uid IN (
              SELECT uid FROM bench.staff WHERE role IN ('nurse', 'physician') AND shift <> 'night'
              ORDER BY md5(uid::text) LIMIT {DEPARTED})""",
        f"""UPDATE bench.staff SET dormant = true WHERE uid IN (
              SELECT uid FROM bench.staff WHERE role = 'nurse' AND end_day IS NULL
              ORDER BY md5('d' || uid) LIMIT {DORMANT})""",
        f"""INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name, email,
                                   is_staff, is_active, date_joined)
            SELECT uid, '!', NULL, false, 'u' || uid, 'Prénom', initcap(last_name), '', false, true,
                   bench.ts('{b0}'::date - 400, 9) FROM bench.staff""",
        f"""INSERT INTO access_staffprofile (id, user_id, role, start_date, end_date, birth_name, address, postal_code,
                                             city, patient_id, must_change_password, password_changed_at)
            SELECT uid, uid, role, '{b0}'::date - 400, CASE WHEN end_day IS NOT NULL THEN '{b0}'::date + end_day END,
                   '', address, postal, 'Ville ' || postal, NULL, false, NULL FROM bench.staff""",
        """INSERT INTO access_staffprofile_units (staffprofile_id, careunit_id)
            SELECT uid, unit_id FROM bench.staff WHERE unit_id IS NOT NULL""",
        # Patients: 20 VIPs (restricted), 1 % deceased (most before the month), names with common ones recurring.
        f"""INSERT INTO patients_patient (id, ipp, ins, ins_bidx, birth_name, used_name, first_name, first_names, sex,
              birth_date, birthplace_insee, identity_status, address, postal_code, city, phone, email, marital_status,
              occupation, social_security_number, confidentiality, restriction_reason, date_of_death, frozen,
              last_activity_at, created_at, updated_at)
            SELECT i, 'B' || lpad(i::text, 9, '0'), '', '', bench.family(), '', 'Prénom', '',
                   CASE WHEN random() < 0.5 THEN 'F' ELSE 'M' END, date '1930-01-01' + floor(random() * 30000)::int,
                   '', 'VALI', x.addr, x.postal, 'Ville ' || x.postal, '', '', '', '', '',
                   CASE WHEN i <= 20 THEN 'restricted' ELSE 'normal' END, CASE WHEN i <= 20 THEN 'vip' ELSE '' END,
                   CASE WHEN i > 20 AND random() < 0.01 THEN '{b0}'::date - 300 + floor(random() * 330)::int END,
                   false, NULL, now(), now()
            FROM generate_series(1, {PATIENTS}) i
            CROSS JOIN LATERAL (SELECT bench.street() || substr(i::text, 1, 0) AS addr,
                                       (75001 + floor(random() * 40))::int::text AS postal) x""",
        # 5 % of staff were treated here: their own patient file (their name, their address).
        f"""CREATE TABLE bench.staff_file AS
            SELECT uid, {PATIENTS} + row_number() OVER (ORDER BY uid) AS patient_id FROM bench.staff
            WHERE md5('f' || uid) < '0d'""",
        """INSERT INTO patients_patient (id, ipp, ins, ins_bidx, birth_name, used_name, first_name, first_names, sex,
              birth_date, birthplace_insee, identity_status, address, postal_code, city, phone, email, marital_status,
              occupation, social_security_number, confidentiality, restriction_reason, date_of_death, frozen,
              last_activity_at, created_at, updated_at)
            SELECT f.patient_id, 'B' || lpad(f.patient_id::text, 9, '0'), '', '', s.last_name, '', 'Prénom', '', 'F',
                   date '1975-01-01', '', 'VALI', s.address, s.postal, 'Ville ' || s.postal, '', '', '', '', '',
                   'normal', '', NULL, false, NULL, now(), now()
            FROM bench.staff_file f JOIN bench.staff s USING (uid)""",
        "UPDATE access_staffprofile sp SET patient_id = f.patient_id FROM bench.staff_file f WHERE f.uid = sp.user_id",
        # Relatives of 30 staff (rare names): same family name, same town, another street.
        f"""CREATE TABLE bench.relative AS
            SELECT uid, {PATIENTS} + 1000 + row_number() OVER (ORDER BY uid) AS patient_id, 'name' AS kind FROM (
              SELECT uid FROM bench.staff WHERE NOT dormant AND end_day IS NULL AND role IN ('nurse', 'physician', 'reception')
                AND NOT (upper(last_name) = ANY({common})) ORDER BY md5('r' || uid) LIMIT 30) x""",
        f"""INSERT INTO bench.relative
            SELECT uid, {PATIENTS} + 2000 + row_number() OVER (ORDER BY uid), 'address' FROM (
              SELECT uid FROM bench.staff WHERE NOT dormant AND end_day IS NULL AND role IN ('nurse', 'physician', 'reception')
                AND uid NOT IN (SELECT uid FROM bench.relative) ORDER BY md5('a' || uid) LIMIT 25) x""",
        """INSERT INTO patients_patient (id, ipp, ins, ins_bidx, birth_name, used_name, first_name, first_names, sex,
              birth_date, birthplace_insee, identity_status, address, postal_code, city, phone, email, marital_status,
              occupation, social_security_number, confidentiality, restriction_reason, date_of_death, frozen,
              last_activity_at, created_at, updated_at)
            SELECT r.patient_id, 'B' || lpad(r.patient_id::text, 9, '0'), '', '',
                   CASE WHEN r.kind = 'name' THEN s.last_name ELSE bench.family() END, '', 'Proche', '', 'M',
                   date '1950-01-01', '', 'VALI', CASE WHEN r.kind = 'name' THEN bench.street() ELSE s.address END,
                   s.postal, 'Ville ' || s.postal, '', '', '', '', '', 'normal', '', NULL, false, NULL, now(), now()
            FROM bench.relative r JOIN bench.staff s USING (uid)""",
        # Stays: about 6 admissions per unit and day, from 120 days before the month; mean length 4 days.
        f"""CREATE TABLE bench.stay AS
            SELECT row_number() OVER () AS id, x.unit_id, p.id AS patient_id, x.start,
                   x.start + make_interval(secs => x.los * 86400) AS "end"
            FROM (
              SELECT u AS unit_id, d, 1 + floor(random() * ({PATIENTS} + 60))::int AS pid,
                     bench.ts('{b0}'::date + d, 7 + random() * 14) AS start,
                     greatest(0.2, -ln(1 - random()) * 4) AS los
              FROM generate_series(1, {UNITS}) u, generate_series(-120, {DAYS - 1}) d,
                   LATERAL generate_series(1, 3 + floor(random() * 7 + u * 0)::int) k
            ) x JOIN patients_patient p ON p.id = x.pid
            WHERE p.date_of_death IS NULL OR p.date_of_death > x.start::date""",
        """INSERT INTO patients_encounter (id, kind, start, "end", created_at, transferred_from_id, unit_id, patient_id)
            SELECT id, 'stay', start, CASE WHEN "end" < now() THEN "end" END, start, NULL, unit_id, patient_id
            FROM bench.stay""",
        f"""CREATE TABLE bench.census AS
            SELECT s.id AS stay_id, s.unit_id, s.patient_id, d::date AS day
            FROM bench.stay s, generate_series(greatest(s.start, '{b0}'::date)::date,
                                                least(s."end", '{b0}'::date + {DAYS - 1})::date, '1 day') d
            WHERE s."end" >= '{b0}'::date""",
        "CREATE INDEX ON bench.census (unit_id, day)",
        "CREATE INDEX ON bench.census (day)",
        # Schedules: 5 days in 7 (staggered), 5 % absences; nights start the evening before the next day.
        f"""CREATE TABLE bench.shift AS
            SELECT s.uid, '{b0}'::date + d AS day, s.role, s.unit_id, s.shift,
                   bench.ts('{b0}'::date + d, h.a) AS s, bench.ts('{b0}'::date + d, h.b) AS e
            FROM bench.staff s CROSS JOIN generate_series(0, {DAYS - 1}) d
            CROSS JOIN LATERAL (SELECT CASE s.shift WHEN 'day' THEN 7 WHEN 'eve' THEN 14 WHEN 'night' THEN 21
                                         ELSE CASE s.role WHEN 'physician' THEN 8.5 + random() * 0.5
                                                          WHEN 'reception' THEN 8 + 5 * (s.uid % 2)
                                                          ELSE 8.5 END END AS a,
                                       CASE s.shift WHEN 'day' THEN 15 WHEN 'eve' THEN 22 WHEN 'night' THEN 31
                                         ELSE CASE s.role WHEN 'physician' THEN
                                                             CASE WHEN random() < 0.1 THEN 20.5 ELSE 18 + random() * 1.5 END
                                                          WHEN 'reception' THEN 14 + 5 * (s.uid % 2)
                                                          ELSE 17.5 END END AS b) h
            WHERE NOT s.dormant AND (s.end_day IS NULL OR d <= s.end_day)
              AND mod(s.uid * 3 + d, 7) < 5 AND random() + 0 * d + 0 * s.uid > 0.05""",
        # On-call nights of physicians, about one in ten days.
        f"""CREATE TABLE bench.oncall AS
            SELECT s.uid, '{b0}'::date + d AS day, s.unit_id,
                   bench.ts('{b0}'::date + d, 19) AS s, bench.ts('{b0}'::date + d, 32) AS e
            FROM bench.staff s CROSS JOIN generate_series(0, {DAYS - 1}) d
            WHERE s.role = 'physician' AND NOT s.dormant AND (s.end_day IS NULL OR d <= s.end_day)
              AND mod(s.uid + d, 10) = 0""",
        f"""CREATE TABLE bench.appt AS
            SELECT row_number() OVER () AS id, sh.uid, sh.unit_id, sh.day, p.id AS patient_id,
                   bench.ts(sh.day, 9 + k * 0.75 + random() * 0.2) AS start
            FROM bench.shift sh CROSS JOIN generate_series(0, 2) k
            CROSS JOIN LATERAL (SELECT 21 + floor(random() * ({PATIENTS} - 21))::int + 0 * k + 0 * sh.uid AS pid) x
            JOIN patients_patient p ON p.id = x.pid
            WHERE sh.role = 'physician' AND p.date_of_death IS NULL""",
        """INSERT INTO patients_appointment (id, start, "end", status, reason, practitioner_id, unit_id, patient_id)
            SELECT id, start, start + interval '30 minutes', 'fulfilled', '', uid, unit_id, patient_id FROM bench.appt""",
    ]


def _traffic_sql(b0: date) -> list[str]:
    """Clean access traffic into bench.ev: what the care relationships explain, and the noise."""
    ev = "INSERT INTO bench.ev (occurred_at, actor_id, patient_id, category, action, outcome, basis)"
    return [
        """CREATE TABLE bench.ev (occurred_at timestamptz, actor_id int, patient_id bigint, category text,
                                  action text, outcome text, basis text, details jsonb DEFAULT '{}')""",
        # Logins at the start of each shift; searches.
        f"""{ev} SELECT s, uid, NULL::bigint, '', 'login', 'allowed', '' FROM bench.shift
            UNION ALL SELECT s, uid, NULL::bigint, '', 'login', 'allowed', '' FROM bench.oncall""",
        f"""{ev} SELECT x.s + random() * (x.e - x.s), x.uid, NULL::bigint, 'administrative', 'search', 'allowed', 'role'
            FROM (SELECT sh.*, CASE WHEN role = 'reception' THEN 10 + floor(random() * 10) ELSE floor(random() * 6)
                               END::int AS k FROM bench.shift sh) x, LATERAL generate_series(1, x.k) i""",
        # Unit staff work on their unit's inpatients.
        f"""{ev} SELECT x.s + random() * (x.e - x.s), x.uid, x.patient_id, 'medical',
                   CASE WHEN x.role = 'nurse' THEN (ARRAY['view','view','view','view','view','view','amend','amend','amend','create'])[1 + floor(random() * 10)::int]
                        WHEN x.role = 'physician' THEN (ARRAY['view','view','view','view','view','view','view','view','create','create','amend','print'])[1 + floor(random() * 12)::int]
                        ELSE (ARRAY['view','view','view','print','create'])[1 + floor(random() * 5)::int] END,
                   'allowed', 'care:encounter'
            FROM (SELECT sh.*, c.patient_id, (1 + floor(random() * 4))::int AS k
                  FROM bench.shift sh JOIN bench.census c ON c.unit_id = sh.unit_id AND c.day = sh.day
                  -- "+ 0 * ...": a draw per (shift, patient); a qual naming one table is pushed down to its scan
                  WHERE random() + 0 * c.patient_id + 0 * sh.uid
                        < CASE sh.role WHEN 'nurse' THEN 0.35 WHEN 'physician' THEN 0.4 ELSE 0.15 END) x,
                 LATERAL generate_series(1, x.k) i""",
        # On-call nights: own unit's inpatients.
        f"""{ev} SELECT x.s + random() * (x.e - x.s), x.uid, x.patient_id, 'medical',
                   CASE WHEN random() < 0.8 THEN 'view' ELSE 'create' END, 'allowed', 'care:encounter'
            FROM (SELECT o.*, c.patient_id FROM bench.oncall o
                  JOIN bench.census c ON c.unit_id = o.unit_id AND c.day = o.day
                  WHERE random() + 0 * c.patient_id + 0 * o.uid < 0.15) x""",
        # Consultations: the physician and the unit's secretaries.
        f"""{ev} SELECT a.start + make_interval(mins => i * 7), a.uid, a.patient_id, 'medical',
                   (ARRAY['view','create','view'])[i], 'allowed', 'care:appointment'
            FROM bench.appt a, generate_series(1, 3) i""",
        f"""{ev} SELECT a.start + make_interval(secs => (2 + random() * 4) * 3600), sh.uid, a.patient_id, 'medical',
                   CASE WHEN random() < 0.5 THEN 'print' ELSE 'view' END, 'allowed', 'care:encounter'
            FROM bench.appt a JOIN bench.shift sh ON sh.unit_id = a.unit_id AND sh.day = a.day
              AND sh.role = 'medical_secretary' WHERE random() + 0 * a.id + 0 * sh.uid < 0.5""",
        # Reception: each admission and consultation of the day handled by one clerk on duty.
        f"""CREATE TABLE bench.contact AS
            SELECT patient_id, start::date AS day, start FROM bench.stay
             WHERE start >= '{b0}'::date AND start < '{b0}'::date + {DAYS}
            UNION ALL SELECT patient_id, day, start FROM bench.appt""",
        f"""{ev} SELECT c.start - make_interval(mins => 5 + i * 3), r.uid, c.patient_id, 'administrative',
                   CASE WHEN i = 2 AND random() < 0.7 THEN 'amend' ELSE 'view' END, 'allowed', 'role'
            FROM (SELECT c.*, 1 + floor(random() * n.n)::int AS pick FROM bench.contact c
                  JOIN (SELECT day, count(*) AS n FROM bench.shift WHERE role = 'reception' GROUP BY day) n
                    USING (day)) c
            JOIN (SELECT uid, day, row_number() OVER (PARTITION BY day ORDER BY uid) AS rn FROM bench.shift
                  WHERE role = 'reception') r ON r.day = c.day AND r.rn = c.pick
            CROSS JOIN generate_series(1, 3) i""",
        # Pharmacy: about 40 inpatients (any unit) a day each.
        f"""{ev} SELECT sh.s + random() * (sh.e - sh.s), sh.uid, c.patient_id, 'medical', 'view', 'allowed',
                   'care:encounter'
            FROM bench.shift sh JOIN bench.census c ON c.day = sh.day
            WHERE sh.role = 'pharmacist' AND random() + 0 * c.patient_id + 0 * sh.uid < 0.05""",
        # DIM: coding of stays discharged in the previous 25 days: two views and a routine export.
        f"""{ev} SELECT x.s + random() * (x.e - x.s), x.uid, x.patient_id, 'medical',
                   (ARRAY['view','view','export'])[i], 'allowed', 'role'
            FROM (SELECT sh.*, st.patient_id FROM bench.shift sh JOIN bench.stay st
                    ON st."end" >= sh.day - 25 AND st."end" < sh.day
                  WHERE sh.role = 'dim' AND random() + 0 * st.id + 0 * sh.uid < 0.006) x, generate_series(1, 3) i""",
        # --- noise that no care relationship explains ---------------------------------------------------
        # Registered consultations in another unit (a care-team membership explains them).
        f"""CREATE TABLE bench.consult AS
            SELECT sh.uid, c.patient_id, sh.s + random() * (sh.e - sh.s) AS at
            FROM (SELECT sh.*, 1 + floor(random() * {UNITS})::int AS other FROM bench.shift sh
                  WHERE sh.role = 'physician' AND random() < 0.25) sh
            JOIN LATERAL (SELECT c.patient_id FROM bench.census c WHERE c.unit_id = sh.other AND c.day = sh.day
                          AND c.unit_id <> sh.unit_id AND c.patient_id > 20 OFFSET floor(random() * 5) LIMIT 1) c ON true""",
        """INSERT INTO access_careteammembership (patient_id, user_id, start, "end", reason, granted_by_id, created_at)
            SELECT patient_id, uid, at - interval '10 minutes', at + interval '2 days', 'avis', NULL, at FROM bench.consult""",
        f"""{ev} SELECT at + make_interval(mins => i * 4), uid, patient_id, 'medical',
                   CASE WHEN i = 2 AND random() < 0.6 THEN 'create' ELSE 'view' END, 'allowed', 'care:membership'
            FROM bench.consult, generate_series(1, 2) i""",
        # Unregistered looks at an inpatient of another unit: identity allowed, chart refused.
        f"""{ev} SELECT x.at + make_interval(mins => i), x.uid, x.patient_id, (ARRAY['administrative','medical'])[i],
                   'view', (ARRAY['allowed','denied'])[i], (ARRAY['role','deny:no_care_relationship'])[i]
            FROM (SELECT sh.uid, c.patient_id, sh.s + random() * (sh.e - sh.s) AS at
                  FROM (SELECT sh.*, 1 + floor(random() * {UNITS})::int AS other FROM bench.shift sh
                        WHERE sh.role IN ('physician', 'nurse', 'medical_secretary') AND random() < 0.08) sh
                  JOIN LATERAL (SELECT c.patient_id FROM bench.census c WHERE c.unit_id = sh.other
                                AND c.day = sh.day AND c.patient_id > 20 AND c.unit_id IS DISTINCT FROM sh.unit_id
                                OFFSET floor(random() * 5) LIMIT 1) c ON true) x, generate_series(1, 2) i""",
        # Misclicks: a random (non-restricted: they are hidden from searches) patient, identity only.
        f"""{ev} SELECT sh.s + random() * (sh.e - sh.s), sh.uid, 21 + floor(random() * ({PATIENTS} - 21))::int,
                   'administrative', 'view', 'allowed', 'role'
            FROM bench.shift sh WHERE sh.role IN ('physician', 'nurse', 'medical_secretary', 'reception')
              AND random() < 0.04""",
        # Follow-up of a former patient of the unit (discharged 35-150 days before), identity only.
        f"""{ev} SELECT x.at, x.uid, x.patient_id, 'administrative', 'view', 'allowed', 'role'
            FROM (SELECT sh.uid, st.patient_id, sh.s + random() * (sh.e - sh.s) AS at
                  FROM (SELECT * FROM bench.shift WHERE role = 'physician' AND random() < 0.01) sh
                  JOIN LATERAL (SELECT st.patient_id FROM bench.stay st WHERE st.unit_id = sh.unit_id
                                AND st."end" BETWEEN sh.day - 150 AND sh.day - 35 AND st.patient_id > 20
                                OFFSET floor(random() * 20) LIMIT 1) st ON true) x""",
        # On-call nights: advice on a patient hospitalised in another unit at that moment (not registered).
        f"""{ev} SELECT x.at + make_interval(mins => i), x.uid, x.patient_id, (ARRAY['administrative','medical'])[i],
                   'view', (ARRAY['allowed','denied'])[i], (ARRAY['role','deny:no_care_relationship'])[i]
            FROM (SELECT o.uid, c.patient_id, o.at
                  FROM (SELECT o.*, o.s + random() * (o.e - o.s) AS at FROM bench.oncall o WHERE random() < 0.3) o
                  JOIN LATERAL (SELECT st.patient_id FROM bench.stay st WHERE st.start <= o.at AND st."end" >= o.at
                                AND st.unit_id <> o.unit_id AND st.patient_id > 20 AND st.start > o.at - interval '60 days'
                                OFFSET floor(random() * 5) LIMIT 1) c ON true) x, generate_series(1, 2) i""",
        # Legitimate break-the-glass, about one a day: the gesture and three chart reads.
        f"""{ev} SELECT x.at + make_interval(mins => i), x.uid, x.patient_id, 'medical',
                   CASE WHEN i = 0 THEN 'break_glass' ELSE 'view' END, 'allowed', 'break_glass'
            FROM (SELECT sh.uid, c.patient_id, sh.s + random() * (sh.e - sh.s) AS at
                  FROM (SELECT * FROM bench.shift WHERE role = 'physician' AND random() < 0.008) sh
                  JOIN LATERAL (SELECT c.patient_id FROM bench.census c WHERE c.day = sh.day
                                AND c.unit_id <> sh.unit_id AND c.patient_id > 20
                                OFFSET floor(random() * 300) LIMIT 1) c ON true) x, generate_series(0, 3) i""",
    ]


_LOAD_EVENTS = """
INSERT INTO audit_accessevent (occurred_at, actor_id, actor_username, actor_role, actor_unit, patient_id, category,
                               resource_type, resource_id, action, outcome, basis, reason, channel, request_id,
                               user_agent, details)
SELECT e.occurred_at, e.actor_id, 'u' || e.actor_id, st.role, coalesce(st.unit_code, ''), e.patient_id, e.category,
       CASE WHEN e.patient_id IS NULL THEN '' ELSE 'patient' END, '', e.action, e.outcome, e.basis, '', 'web', '', '',
       CASE WHEN p.confidentiality = 'restricted'
            THEN jsonb_set(e.details, '{{flags}}', coalesce(e.details -> 'flags', '[]') || '["restricted_patient"]')
            ELSE e.details END
FROM {table} e JOIN bench.staff st ON st.uid = e.actor_id LEFT JOIN patients_patient p ON p.id = e.patient_id
ORDER BY e.occurred_at
"""


# --- scenarios ----------------------------------------------------------------------------------------------
class _Injector:
    """Builds the labelled snooping events in Python (a few thousand rows), loaded with COPY."""

    def __init__(self, cur, b0: date):
        self.cur, self.b0, self.rng = cur, b0, random.Random(SEED)
        self.events: list[tuple] = []
        self.labels: list[tuple] = []  # (instance, kind, user, patient or None, day)
        self.instance = 0
        q = self._q
        self.staff = {r[0]: r[1:] for r in q("SELECT uid, role, unit_id, shift, end_day, dormant FROM bench.staff")}
        self.shifts = defaultdict(list)  # day -> [(uid, s, e)]
        self.user_days: dict[int, dict[date, tuple]] = defaultdict(dict)
        for uid, day, s, e in q("SELECT uid, day, s, e FROM bench.shift WHERE day >= %s", [b0 + timedelta(WARMUP)]):
            self.shifts[day].append((uid, s, e))
            self.user_days[uid][day] = (s, e)
        self.census = defaultdict(list)
        for unit, day, pid in q("SELECT unit_id, day, patient_id FROM bench.census WHERE day >= %s",
                                [b0 + timedelta(WARMUP)]):
            self.census[(unit, day)].append(pid)
        self.files = dict(q("SELECT uid, patient_id FROM bench.staff_file"))
        self.relatives = {(k, u): p for u, p, k in q("SELECT uid, patient_id, kind FROM bench.relative")}
        self.deceased = [r[0] for r in q("SELECT id FROM patients_patient WHERE date_of_death < %s",
                                         [b0 + timedelta(WARMUP - 10)])]
        self.eval_days = [b0 + timedelta(d) for d in range(WARMUP, DAYS)]

    def _q(self, sql, params=None):
        self.cur.execute(sql, params or [])
        return self.cur.fetchall()

    def _label(self, kind, uid, patient, day):
        self.labels.append((self.instance, kind, uid, patient, day))

    def _ev(self, at, uid, patient, action="view", category="administrative", outcome="allowed", basis="role",
            details="{}"):
        self.events.append((at, uid, patient, category, action, outcome, basis, details))

    def _pick_worker(self, roles, *, shifts=("day", "office", "eve"), day=None, need_file=False):
        for _ in range(10_000):
            d = day or self.rng.choice(self.eval_days)
            uid, s, e = self.rng.choice(self.shifts[d])
            role, unit, shift, end_day, dormant = self.staff[uid]
            if role in roles and shift in shifts and end_day is None and (not need_file or uid in self.files):
                return uid, d, s, e
        raise RuntimeError("no worker found")

    def _at(self, s, e):
        return s + (e - s) * self.rng.random()

    def _cover(self, uid, day, s, e):
        """The snooper's ordinary work around the snooping: a few of their unit's inpatients."""
        unit = self.staff[uid][1]
        pool = self.census.get((unit, day), [])
        for pid in self.rng.sample(pool, min(3, len(pool))):
            self._ev(self._at(s, e), uid, pid, "view", "medical", basis="care:encounter")

    def _snoop(self, uid, pid, at, n) -> date:
        """Identity pages (allowed by role) and refused chart reads: what the gate lets a snooper do.

        Returns the local day of the snooping (a night shift's events may fall on the next day)."""
        for i in range(n):
            t = at + timedelta(minutes=2 * i)
            if i % 2 == 0:
                self._ev(t, uid, pid)
            else:
                self._ev(t, uid, pid, "view", "medical", "denied", "deny:no_care_relationship")
        return at.astimezone(PARIS).date()

    def build(self):
        r = self.rng
        clinical = ("nurse", "physician")
        for kind, count in SCENARIOS.items():
            for _ in range(count):
                self.instance += 1
                getattr(self, f"_{kind}")(r, clinical)
        return self.events, self.labels

    def _coworker(self, r, clinical):
        uid, d, s, e = self._pick_worker(clinical)
        unit = self.staff[uid][1]
        same = [u for u in self.files if self.staff[u][1] == unit and u != uid]
        target = r.choice(same if same and r.random() < 0.5 else [u for u in self.files if u != uid])
        self._cover(uid, d, s, e)
        snoop_day = self._snoop(uid, self.files[target], self._at(s, e), r.randint(2, 4))
        self._label("coworker", uid, self.files[target], snoop_day)

    def _vip(self, r, clinical):
        uid, d, s, e = self._pick_worker(("reception",) if r.random() < 0.5 else clinical)
        vip = r.randint(1, 20)
        self._cover(uid, d, s, e)
        snoop_day = self._snoop(uid, vip, self._at(s, e), r.randint(1, 3))
        self._label("vip", uid, vip, snoop_day)

    def _same_name(self, r, clinical):
        users = [u for (k, u) in self.relatives if k == "name"]
        uid = r.choice(users)
        d = r.choice(sorted(self.user_days[uid]))
        s, e = self.user_days[uid][d]
        pid = self.relatives[("name", uid)]
        self._cover(uid, d, s, e)
        snoop_day = self._snoop(uid, pid, self._at(s, e), r.randint(1, 4))
        self._label("same_name", uid, pid, snoop_day)

    def _same_address(self, r, clinical):
        users = [u for (k, u) in self.relatives if k == "address"]
        uid = r.choice(users)
        d = r.choice(sorted(self.user_days[uid]))
        s, e = self.user_days[uid][d]
        pid = self.relatives[("address", uid)]
        self._cover(uid, d, s, e)
        snoop_day = self._snoop(uid, pid, self._at(s, e), r.randint(1, 3))
        self._label("same_address", uid, pid, snoop_day)

    def _self_access(self, r, clinical):
        uid, d, s, e = self._pick_worker(clinical + ("reception", "medical_secretary"), need_file=True)
        self._cover(uid, d, s, e)
        snoop_day = self._snoop(uid, self.files[uid], self._at(s, e), r.randint(1, 3))
        self._label("self_access", uid, self.files[uid], snoop_day)

    def _departed(self, r, clinical):
        uid = r.choice([u for u, v in self.staff.items() if v[3] is not None])
        end = self.b0 + timedelta(self.staff[uid][3])
        d = r.choice([x for x in self.eval_days if x > end + timedelta(2)])
        at = _local(d, r.uniform(8, 18))
        self._ev(at, uid, None, "login_failure", "", "denied", "deny:contract")
        for i in range(r.randint(2, 5)):
            self._ev(at + timedelta(minutes=3 * i), uid, r.randint(21, PATIENTS), "view", "medical", "denied",
                     "deny:contract")
        self._label("departed", uid, None, d)

    def _night(self, r, clinical):
        uid, d, s, e = self._pick_worker(clinical, shifts=("day", "office"))
        at = _local(d, r.uniform(1, 4.5))
        pid = r.randint(21, PATIENTS)
        snoop_day = self._snoop(uid, pid, at, r.randint(1, 3))
        self._label("night", uid, pid, snoop_day)

    def _volume(self, r, clinical):
        uid, d, s, e = self._pick_worker(clinical)
        others = [p for (u, day), ps in self.census.items() if day == d and u != self.staff[uid][1] for p in ps]
        for pid in r.sample(others, min(len(others), r.randint(50, 80))):
            self._ev(self._at(s, e), uid, pid)
        self._label("volume", uid, None, d)

    def _browsing(self, r, clinical):
        uid, d, s, e = self._pick_worker(clinical + ("reception", "medical_secretary"))
        self._cover(uid, d, s, e)
        for _ in range(r.randint(15, 25)):
            self._ev(self._at(s, e), uid, r.randint(21, PATIENTS))
        for _ in range(20):
            self._ev(self._at(s, e), uid, None, "search")
        self._label("browsing", uid, None, d)

    def _bulk_export(self, r, clinical):
        uid, d, s, e = self._pick_worker(("physician",))
        pool = list(self.census.get((self.staff[uid][1], d), []))
        pool += [p for (u, day), ps in self.census.items() if u == self.staff[uid][1] and day < d for p in ps]
        for pid in r.sample(sorted(set(pool)), min(len(set(pool)), r.randint(25, 45))):
            self._ev(self._at(s, e), uid, pid, r.choice(["export", "print"]), "medical", basis="care:encounter")
        self._label("bulk_export", uid, None, d)

    def _dormant(self, r, clinical):
        uid = r.choice([u for u, v in self.staff.items() if v[4] and not any(x[2] == u for x in self.labels)])
        d = r.choice([x for x in self.eval_days if x >= self.b0 + timedelta(31)])
        at = _local(d, r.uniform(8, 20))
        self._ev(at, uid, None, "login", "")
        for i in range(r.randint(2, 5)):
            snoop_day = self._snoop(uid, r.randint(21, PATIENTS), at + timedelta(minutes=5 * i), 1)
        self._label("dormant", uid, None, snoop_day)

    def _deceased(self, r, clinical):
        uid, d, s, e = self._pick_worker(clinical + ("reception",))
        pid = r.choice(self.deceased)
        self._cover(uid, d, s, e)
        snoop_day = self._snoop(uid, pid, self._at(s, e), r.randint(1, 3))
        self._label("deceased", uid, pid, snoop_day)

    def _relationship_ended(self, r, clinical):
        for _ in range(1000):
            uid, d, s, e = self._pick_worker(("physician",))
            rows = self._q("""SELECT patient_id FROM bench.stay WHERE unit_id = %s AND "end" < %s - 45
                              AND "end" > %s - 150 AND patient_id > 20 ORDER BY md5(id::text) LIMIT 1""",
                           [self.staff[uid][1], d, d])
            if rows:
                pid = rows[0][0]
                break
        self._cover(uid, d, s, e)
        snoop_day = self._snoop(uid, pid, self._at(s, e), r.randint(1, 3))
        self._label("relationship_ended", uid, pid, snoop_day)

    def _break_glass(self, r, clinical):
        uid, d0, _, _ = self._pick_worker(("physician",))
        objection = r.random() < 0.4
        days = [d0] if objection else [d for d in sorted(self.user_days[uid]) if d0 <= d <= d0 + timedelta(6)][:3]
        while not objection and len(days) < 3:  # a spree is three patients within a week
            days.append(days[-1])
        for d in days:
            s, e = self.user_days[uid][d]
            others = [p for (u, day), ps in self.census.items() if day == d and u != self.staff[uid][1] for p in ps
                      if p > 20]
            pid = r.choice(others)
            at = self._at(s, e)
            details = '{"flags": ["patient_objection"]}' if objection else "{}"
            self._ev(at, uid, pid, "break_glass", "medical", basis="break_glass", details=details)
            for i in range(3):
                self._ev(at + timedelta(minutes=i + 1), uid, pid, "view", "medical", basis="break_glass",
                         details=details)
            self._label("break_glass", uid, pid, d)


def _local(d: date, hours: float) -> datetime:
    return datetime.combine(d, datetime.min.time(), tzinfo=PARIS) + timedelta(hours=hours)


def _copy(cur, table: str, columns: str, rows: list[tuple]) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # noqa: S608 (constant names)
        for row in rows:
            copy.write_row(row)


_METRICS = """
WITH a AS (SELECT * FROM detection_alert WHERE day BETWEEN %(f)s AND %(t)s),
m AS (
    SELECT a.id, bool_or(l.inst IS NOT NULL) AS tp
    FROM a LEFT JOIN bench.label l ON l.uid = a.user_id AND l.day = a.day
      AND (a.patient_id IS NULL OR l.patient_id IS NULL OR l.patient_id = a.patient_id)
    GROUP BY a.id
)
SELECT a.id, a.rules, m.tp FROM a JOIN m USING (id)
"""

_RECALL = """
SELECT l.kind, l.inst, bool_or(EXISTS (
    SELECT 1 FROM detection_alert a WHERE a.user_id = l.uid AND a.day = l.day
      AND (l.patient_id IS NULL OR a.patient_id = l.patient_id
           OR (a.patient_id IS NULL AND l.patient_id = ANY(a.patient_ids)))
)) AS found
FROM bench.label l GROUP BY l.kind, l.inst
"""


def _detect(day_from: date, day_to: date):
    from django.db import connection

    from audit.detection import services

    with connection.cursor() as cur:
        cur.execute("TRUNCATE detection_alert, detection_userday, detection_detectionstate, detection_detectionrun")
    t0 = time.perf_counter()
    summary = services.detect_range(day_from=day_from, day_to=day_to)
    return summary, time.perf_counter() - t0


def main() -> str:
    _fresh_database()
    t_setup = time.perf_counter()
    setup_django(DB)
    from django.db import connection
    from django.utils import timezone

    b0 = timezone.localdate() - timedelta(days=DAYS + 1)
    eval_from, eval_to = b0 + timedelta(WARMUP), b0 + timedelta(DAYS - 1)
    with connection.cursor() as cur:
        cur.execute("SELECT audit_ensure_partitions(%s, 4)", [b0 - timedelta(days=40)])
        for sql in _world_sql(b0) + _traffic_sql(b0):
            cur.execute(sql)
        cur.execute(_LOAD_EVENTS.format(table="bench.ev"))
        cur.execute("SELECT setval(pg_get_serial_sequence('auth_user', 'id'), (SELECT max(id) FROM auth_user))")
        cur.execute("ANALYZE")
        cur.execute("SELECT count(*) FROM bench.staff")
        n_users = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM audit_accessevent")
        n_events = cur.fetchone()[0]
    generate_s = time.perf_counter() - t_setup

    # Baseline: the bare scan and grouping of the same events, once.
    with connection.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute("""SELECT count(*) FROM (SELECT actor_id, patient_id, (occurred_at AT TIME ZONE 'Europe/Paris')::date
                       FROM audit_accessevent WHERE occurred_at >= %s AND occurred_at < %s GROUP BY 1, 2, 3) x""",
                    [b0, b0 + timedelta(DAYS + 1)])
        scan_s = time.perf_counter() - t0

    # Run 1: clean traffic.
    clean, clean_s = _detect(b0, eval_to)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE severity = 'high') FROM detection_alert "
                    "WHERE day BETWEEN %s AND %s", [eval_from, eval_to])
        clean_alerts, clean_high = cur.fetchone()
        cur.execute("SELECT r, count(*) FROM detection_alert, unnest(rules) r WHERE day BETWEEN %s AND %s "
                    "GROUP BY r ORDER BY 2 DESC", [eval_from, eval_to])
        clean_by_rule = cur.fetchall()
        cur.execute("SELECT count(*) FROM detection_alert WHERE day < %s", [eval_from])
        warmup_alerts = cur.fetchone()[0]
        cur.execute("SELECT coalesce(sum(n_unexplained_patients), 0) FROM detection_userday "
                    "WHERE day BETWEEN %s AND %s", [eval_from, eval_to])
        naive = cur.fetchone()[0]
    eval_days = (eval_to - eval_from).days + 1
    per_k = 1000 * clean_alerts / (n_users * eval_days)
    naive_per_k = 1000 * naive / (n_users * eval_days)

    # Run 2: with the labelled scenarios.
    with connection.cursor() as cur:
        events, labels = _Injector(cur, b0).build()
        cur.execute("CREATE TABLE bench.ev_scen (LIKE bench.ev INCLUDING DEFAULTS)")
        cur.execute("CREATE TABLE bench.label (inst int, kind text, uid int, patient_id bigint, day date)")
        _copy(cur, "bench.ev_scen", "occurred_at, actor_id, patient_id, category, action, outcome, basis, details",
              events)
        _copy(cur, "bench.label", "inst, kind, uid, patient_id, day", labels)
        cur.execute(_LOAD_EVENTS.format(table="bench.ev_scen"))
        cur.execute("ANALYZE audit_accessevent")
    dirty, dirty_s = _detect(b0, eval_to)
    with connection.cursor() as cur:
        cur.execute(_METRICS, {"f": eval_from, "t": eval_to})
        alerts = cur.fetchall()
        cur.execute(_RECALL)
        recall_rows = cur.fetchall()
    tp = sum(1 for _, _, ok in alerts if ok)
    precision = tp / len(alerts) if alerts else 0.0
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for kind, _inst, found in recall_rows:
        by_kind[kind].append(found)
    recall = sum(sum(v) for v in by_kind.values()) / sum(len(v) for v in by_kind.values())
    rule_prec: dict[str, list[bool]] = defaultdict(list)
    for _, rules, ok in alerts:
        for rule in rules:
            rule_prec[rule].append(ok)

    def ok(value: bool) -> str:
        return "met" if value else "**not met**"

    eps = dirty.events / dirty_s
    lines = [
        "## Detection of unusual access (labelled synthetic month)",
        "",
        f"Synthetic hospital: {UNITS} units, {n_users} staff accounts, {PATIENTS:,} patients, {DAYS} days "
        f"({WARMUP} warm-up + {eval_days} evaluated), {n_events:,} clean access events "
        f"(+{len(events):,} injected); generated in {generate_s:.0f} s. Share of patient accesses explained by a "
        f"care relationship: {clean.explained_share:.1%}.",
        "",
        "| figure | measured | goal | baseline (same run) |",
        "|---|---|---|---|",
        f"| events analysed per second (replay of {DAYS} days, one transaction per day) | {eps:,.0f} "
        f"({dirty.events:,} events in {dirty_s:.1f} s) | ≥ 1,000,000 in < 60 s: "
        f"{ok(dirty.events >= 1_000_000 and dirty_s < 60)} | bare scan + grouping of the same events: "
        f"{scan_s:.1f} s |",
        f"| alerts per 1,000 users per day, clean traffic | {per_k:.2f} ({clean_alerts} alerts, "
        f"{clean_high} high, over {eval_days} days) | ≤ 5: {ok(per_k <= 5)} | flag every unexplained access: "
        f"{naive_per_k:.1f} |",
        f"| precision (injected scenarios) | {precision:.2f} ({tp} of {len(alerts)} alerts) | ≥ 0.8: "
        f"{ok(precision >= 0.8)} | |",
        f"| recall (injected scenarios) | {recall:.2f} ({sum(sum(v) for v in by_kind.values())} of "
        f"{sum(len(v) for v in by_kind.values())} instances) | ≥ 0.95: {ok(recall >= 0.95)} | |",
        "",
        "| scenario kind | instances | recall |",
        "|---|---|---|",
    ]
    for kind in SCENARIOS:
        v = by_kind.get(kind, [])
        lines.append(f"| {kind} | {len(v)} | {sum(v) / len(v):.2f} |" if v else f"| {kind} | 0 | — |")
    lines += ["", "| rule | alerts (with scenarios) | precision | alerts on clean traffic |", "|---|---|---|---|"]
    clean_rule = dict(clean_by_rule)
    for rule in sorted(rule_prec, key=lambda k: -len(rule_prec[k])):
        v = rule_prec[rule]
        lines.append(f"| {rule} | {len(v)} | {sum(v) / len(v):.2f} | {clean_rule.get(rule, 0)} |")
    timings: dict[str, float] = defaultdict(float)
    for p in dirty.passes:
        for k, v in p.timings.items():
            timings[k.split(":")[0]] += v
    lines += [
        "",
        f"Clean run: {clean.events:,} events in {clean_s:.1f} s; {warmup_alerts} alerts during the warm-up days "
        "(baselines still empty, not counted). Time by step of the labelled run: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items(), key=lambda kv: -kv[1])) + ".",
        "",
        "Clean traffic model (per shift unless stated): unit staff open 35-40 % of their unit's inpatients; "
        "consultations, secretaries, reception (each admission and consultation), pharmacy (~40 inpatients a day), "
        "DIM coding with routine exports; noise: registered consults in another unit 25 % of physician shifts, "
        "unregistered looks 8 %, misclicks on a random patient 4 %, view-only follow-up of a patient discharged "
        "35-150 days before 1 % of physician shifts, on-call nights (1 in 10) with unregistered advice 30 %, one "
        "legitimate break-the-glass a day. Snooping scenarios use what the gate lets a snooper do (identity pages, "
        "refused chart reads, break-the-glass) and come with the snooper's ordinary work that day. "
        "Caveat: the rules' thresholds were adjusted while developing against this generator (seed "
        f"{SEED}; other seeds: `DPI_BENCH_DETECTION_SEED`), so these figures are optimistic for a real "
        "hospital, whose noise will differ: follow the share of alerts closed as justified per rule.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
