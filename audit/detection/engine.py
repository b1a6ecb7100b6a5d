"""The detector: set-based SQL over the partitioned access-event table, one pass per range of days.

One pass, inside the caller's transaction (temporary tables are dropped at commit):

1. ``det_raw``: the events of the days analysed grouped by (user, patient, local day) — one scan of the
   monthly partitions the range touches (partition pruning on ``occurred_at``); denied and break-the-glass
   events included, system and machine accounts left out (``exempt_roles``).
2. Explanation: encounters, appointments, care-team memberships and orders (prescriptions) of those patients
   are loaded once (``det_links``) and hash-joined: a (user, patient, day) is *explained* when one of them
   links the user or one of the user's units (the ``actor_unit`` recorded with the event, plus the user's full
   membership in ``access_staffprofile_units``: the recorded label is cut at 100 characters) to the patient
   within [start - explain_lead_days, end + explain_after_days]; for hospital-wide roles any unit's stay or
   appointment gives a *weak* explanation. These tables of ``access`` and ``patients`` are read with plain
   SQL, never through the access policies (audit knows nothing of them).
   ``det_denied`` holds the analysed users' refused clinical events, looked back far enough for the refusal
   rules (``denied_clinical``, ``denied_then_granted``).
3. ``det_ud``: the same grouped by (user, day), upserted into ``detection_userday`` (the baselines).
4. Each rule of ``audit.detection.rules`` inserts its hits (one statement per rule, no loop over events).
5. Scoring: the points of each (user, patient, day) are added; at ``alert_score`` an alert is upserted on its
   unique key (``ON CONFLICT``): re-running never duplicates, it refreshes the evidence of open alerts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection

from audit.detection import model as learned
from audit.detection.config import thresholds
from audit.detection.rules import RULES

_ACCENTS = "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝ"
_PLAIN = "aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUY"


def _norm(expr: str) -> str:
    """SQL normalising a name or an address: accents folded, upper case, letters and digits only."""
    return f"regexp_replace(upper(translate(coalesce({expr}, ''), '{_ACCENTS}', '{_PLAIN}')), '[^A-Z0-9]', '', 'g')"


# Street words written in full or abbreviated in French addresses ("imp." / "impasse", "bd" / "boulevard"):
# each abbreviation is rewritten to the full word before comparing, and filler words are dropped.
_ADDRESS_WORDS: dict[str, tuple[str, ...]] = {
    "AVENUE": ("AV", "AVE", "AVN"),
    "BOULEVARD": ("BD", "BLD", "BLVD", "BOUL", "BVD"),
    "RUE": ("R",),
    "IMPASSE": ("IMP",),
    "PLACE": ("PL",),
    "CHEMIN": ("CH", "CHE", "CHEM"),
    "ROUTE": ("RTE",),
    "ALLEE": ("ALL", "AL"),
    "SQUARE": ("SQ",),
    "FAUBOURG": ("FG", "FBG"),
    "COURS": ("CRS",),
    "QUAI": ("QU",),
    "PASSAGE": ("PASS", "PAS"),
    "RESIDENCE": ("RES", "RESID"),
    "LOTISSEMENT": ("LOT", "LOTIS"),
    "HAMEAU": ("HAM",),
    "BATIMENT": ("BAT",),
    "APPARTEMENT": ("APT", "APP", "APPT"),
    "SAINT": ("ST",),
    "SAINTE": ("STE",),
    "GENERAL": ("GAL", "GEN"),
    "MARECHAL": ("MAL", "MAR"),
    "PRESIDENT": ("PDT", "PRES"),
    "DOCTEUR": ("DR",),
    "PROFESSEUR": ("PR", "PROF"),
}
_ADDRESS_FILLERS = ("DE", "DU", "DES", "LA", "LE", "LES", "L", "D", "ET")


def _addr_words(expr: str) -> str:
    """SQL normalising a street address to words: accents and case folded, abbreviations expanded, fillers dropped."""
    sql = f"regexp_replace(upper(translate(coalesce({expr}, ''), '{_ACCENTS}', '{_PLAIN}')), '[^A-Z0-9]+', ' ', 'g')"
    for full, abbreviations in _ADDRESS_WORDS.items():
        sql = f"regexp_replace({sql}, '\\m({'|'.join(sorted(set(abbreviations)))})\\M', '{full}', 'g')"
    return f"regexp_replace({sql}, '\\m({'|'.join(_ADDRESS_FILLERS)})\\M', '', 'g')"


def _addr(words: str) -> str:
    """SQL key of a street address (house number included) from its normalised words (``_addr_words``)."""
    return f"regexp_replace({words}, '[^A-Z0-9]', '', 'g')"


def _street(words: str) -> str:
    """SQL key of the street alone: the leading house number (and bis, ter, a letter) removed."""
    return f"regexp_replace(regexp_replace({words}, '^ *[0-9]+ *(BIS|TER|QUATER|[A-Z])?\\M', ''), '[^A-Z0-9]', '', 'g')"


_HOURS = ", ".join(f"count(*) FILTER (WHERE h = {h})" for h in range(24))
_HOUR_SUMS = ", ".join(f"sum(hours[{h + 1}])" for h in range(24))

_RAW = f"""
CREATE TEMP TABLE det_raw ON COMMIT DROP AS
SELECT e.actor_id, e.patient_id, e.day,
       max(e.actor_role) AS role, max(e.actor_unit) AS unit, count(*)::int AS n,
       (array_agg(e.id ORDER BY e.occurred_at, e.id))[1:%(evidence_max_events)s] AS ids,
       count(*) FILTER (WHERE e.clinical)::int AS n_clinical,
       count(*) FILTER (WHERE e.export)::int AS n_export,
       count(*) FILTER (WHERE e.search)::int AS n_search,
       count(*) FILTER (WHERE e.medical)::int AS n_medical,
       count(*) FILTER (WHERE e.denied)::int AS n_denied,
       min(e.allowed_medical_at) AS first_allowed_medical_at,
       bool_or(e.break_glass) AS break_glass,
       bool_or(e.objection) AS objection,
       bool_or(e.restricted_flag) AS restricted_flag,
       bool_or(e.contract_denied) AS contract_denied,
       ARRAY[{_HOURS}]::int[] AS hours
FROM (
    -- Each event's local day and hour and its flags computed once (OFFSET 0: not once per aggregate reading
    -- them), and only narrow columns sorted for the grouping.
    SELECT ev.id, ev.occurred_at, ev.actor_id, ev.patient_id, ev.actor_role, ev.actor_unit,
           lt.at::date AS day, date_part('hour', lt.at)::int AS h,
           ev.action IN ('create', 'amend', 'delete') AND ev.outcome = 'allowed' AS clinical,
           ev.action IN ('export', 'print') AND ev.outcome = 'allowed' AS export,
           ev.action = 'search' AS search,
           ev.category IN ('medical', 'restricted') AS medical,
           ev.outcome = 'denied' AS denied,
           CASE WHEN ev.outcome = 'allowed' AND ev.category IN ('medical', 'restricted') THEN ev.occurred_at END
             AS allowed_medical_at,
           ev.basis = 'break_glass' OR ev.action = 'break_glass' AS break_glass,
           ev.details -> 'flags' ? 'patient_objection' OR ev.details ->> 'patient_objection' = 'true' AS objection,
           ev.details -> 'flags' ? 'restricted_patient' AS restricted_flag,
           ev.basis = 'deny:contract' AS contract_denied
    FROM audit_accessevent ev CROSS JOIN LATERAL (SELECT ev.occurred_at AT TIME ZONE %(tz)s AS at) lt
    WHERE ev.occurred_at >= %(t_start)s AND ev.occurred_at < %(t_end)s
      AND ev.actor_id IS NOT NULL AND ev.actor_role <> ALL(%(exempt_roles)s::text[])
      AND (%(all_actors)s OR ev.actor_id = ANY(%(actors)s::bigint[]))
    OFFSET 0
) e
GROUP BY e.actor_id, e.patient_id, e.day
"""  # noqa: S608 (constant SQL, values bound)

# The user's units: the codes recorded with the event (``actor_unit``, cut at 100 characters by the audit
# table) together with the user's full membership (``access_staffprofile_units``): staff attached to many units
# (float nurses, pharmacists) keep every unit even when the recorded label was truncated.
_UNITS = """
CREATE TEMP TABLE det_units ON COMMIT DROP AS
WITH x AS (SELECT DISTINCT actor_id, unit FROM det_raw), y AS (
    SELECT x.actor_id, x.unit, cu.id AS unit_id
    FROM x JOIN patients_careunit cu ON cu.code = ANY(string_to_array(x.unit, ','))
    UNION
    SELECT x.actor_id, x.unit, su.careunit_id
    FROM x JOIN access_staffprofile sp ON sp.user_id = x.actor_id
    JOIN access_staffprofile_units su ON su.staffprofile_id = sp.id
)
SELECT x.actor_id, x.unit,
       coalesce(array_agg(y.unit_id) FILTER (WHERE y.unit_id IS NOT NULL), '{}')::bigint[] AS unit_ids
FROM x LEFT JOIN y ON y.actor_id = x.actor_id AND y.unit = x.unit
GROUP BY x.actor_id, x.unit
"""

# Denied attempts on clinical data (medical or restricted) of the analysed actors, from the longest look-back
# of the refusal rules before the range to its end (the refusal rules read it).
_DENIED = """
CREATE TEMP TABLE det_denied ON COMMIT DROP AS
SELECT e.actor_id, e.patient_id, e.occurred_at AS at, (e.occurred_at AT TIME ZONE %(tz)s)::date AS day
FROM audit_accessevent e
WHERE e.occurred_at >= %(denied_from)s AND e.occurred_at < %(t_end)s
  AND e.outcome = 'denied' AND e.category IN ('medical', 'restricted') AND e.patient_id IS NOT NULL
  AND e.actor_id IS NOT NULL AND e.actor_role <> ALL(%(exempt_roles)s::text[])
  AND e.actor_id IN (SELECT DISTINCT actor_id FROM det_raw)
"""

# Links that explain an access, with who created them (``creator``): a link the user made themself explains
# nothing on its own (the "covering" appointment or visit), see _GRP.
_LINKS = """
CREATE TEMP TABLE det_links ON COMMIT DROP AS
WITH pats AS (SELECT DISTINCT patient_id FROM det_raw WHERE patient_id IS NOT NULL)
SELECT e.patient_id, e.unit_id::bigint AS unit_id, NULL::bigint AS user_id, 1 AS prio,
       e.start AS vf, e."end" AS ve, e.created_by_id::bigint AS creator
FROM patients_encounter e JOIN pats USING (patient_id)
WHERE e.start < %(links_to)s AND (e."end" IS NULL OR e."end" >= %(links_from)s)
UNION ALL
SELECT a.patient_id, a.unit_id, a.practitioner_id, 2, a.start, a."end", a.created_by_id
FROM patients_appointment a JOIN pats USING (patient_id)
WHERE a.status <> 'cancelled' AND a.start < %(links_to_calls)s AND a."end" >= %(links_from)s
UNION ALL
SELECT m.patient_id, NULL, m.user_id, 3, m.start, m."end", m.granted_by_id
FROM access_careteammembership m JOIN pats USING (patient_id)
WHERE m.start < %(links_to)s AND m."end" >= %(links_from)s
UNION ALL
SELECT o.patient_id, enc.unit_id, o.author_id, 4, o.created_at, o.created_at, NULL::bigint
FROM dpi_prescription o JOIN pats USING (patient_id)
LEFT JOIN patients_encounter enc ON enc.id = o.encounter_id
WHERE o.created_at < %(links_to)s AND o.created_at >= %(links_from)s
"""

# Explanation by the right kind of path:
# - strong: a link to the user or one of their units near the access, not created by the user themself;
# - own_link: only a link the user created themself (appointment booked, visit registered, membership
#   self-granted). It explains the access only for a former patient of the user's units (a follow-up booked by
#   the physician) or a patient in the hospital elsewhere (a self-registered consultation); otherwise it is the
#   "covering" relationship (rule covering);
# - coding: for the medical information department (DIM), any stay of the patient that ended within
#   dim_coding_days (coding and quality audits);
# - appointment_call: an appointment of the user's unit up to appointment_call_days ahead explains an
#   administrative access (the secretary phoning the patient), never a clinical read;
# - hospital_wide: for hospital-wide roles, any unit's stay or appointment near then; for the roles of
#   administrative_roles (reception) only an administrative access: an administrative touch never explains a
#   clinical read.
_GRP = """
CREATE TEMP TABLE det_grp ON COMMIT DROP AS
WITH g AS NOT MATERIALIZED (  -- read twice, each time only the columns needed
    SELECT r.*, coalesce(u.unit_ids, '{}') AS unit_ids,
           r.role = ANY(%(hospital_wide_roles)s::text[]) AS hospital_wide,
           (r.day::timestamp AT TIME ZONE %(tz)s) AS day_start,
           ((r.day + 1)::timestamp AT TIME ZONE %(tz)s) AS day_end
    FROM det_raw r LEFT JOIN det_units u ON u.actor_id = r.actor_id AND u.unit = r.unit
), m AS (
    SELECT j.actor_id, j.patient_id, j.day,
           min(j.prio) FILTER (WHERE j.strong AND j.near AND NOT j.own) AS strong_prio,
           bool_or(j.strong AND j.near AND NOT j.own AND j.personal) AS personal,
           bool_or(j.strong AND j.near AND j.own) AS own_link,
           bool_or(NOT j.strong AND j.near AND j.hospital_wide AND j.prio <= 2 AND NOT j.own) AS weak,
           bool_or(j.strong AND j.ended AND NOT j.own) AS ended,
           bool_or(j.present AND j.prio <= 2 AND NOT j.own) AS in_hospital,
           bool_or(j.prio = 1 AND j.vf <= j.day_end
                   AND coalesce(j.ve, 'infinity') >= j.day_start - make_interval(days => %(dim_coding_days)s))
             AS coding,
           bool_or(j.strong AND j.prio = 2 AND NOT j.own AND j.vf > j.day_start
                   AND j.vf <= j.day_end + make_interval(days => %(appointment_call_days)s)) AS call
    FROM (
        -- Each flag computed once per (access, link) pair (OFFSET 0: not once per aggregate reading it).
        SELECT k.actor_id, k.patient_id, k.day, k.hospital_wide, k.day_start, k.day_end, l.prio, l.vf, l.ve,
               coalesce(l.user_id = k.actor_id, false) OR coalesce(l.unit_id = ANY(k.unit_ids), false) AS strong,
               coalesce(l.user_id = k.actor_id, false) AS personal,
               coalesce(l.creator = k.actor_id, false) AS own,
               l.vf - make_interval(days => %(explain_lead_days)s) <= k.day_end
                 AND coalesce(l.ve, 'infinity') + make_interval(days => %(explain_after_days)s) >= k.day_start
                 AS near,
               coalesce(l.ve, 'infinity') + make_interval(days => %(explain_after_days)s) < k.day_start AS ended,
               l.vf <= k.day_end AND coalesce(l.ve, 'infinity') >= k.day_start AS present
        FROM (
            -- The bounds of that day's links (det_links holds the whole range's): a pass over many days finds,
            -- for each day, what a pass over that day alone would.
            SELECT g.actor_id, g.patient_id, g.day, g.unit_ids, g.hospital_wide, g.day_start, g.day_end,
                   ((g.day - %(links_back_days)s)::timestamp AT TIME ZONE %(tz)s) AS links_from,
                   ((g.day + 1 + %(explain_lead_days)s)::timestamp AT TIME ZONE %(tz)s) AS links_to,
                   ((g.day + 1 + %(links_ahead_calls_days)s)::timestamp AT TIME ZONE %(tz)s) AS links_to_calls
            FROM g WHERE g.patient_id IS NOT NULL
            OFFSET 0
        ) k JOIN det_links l ON l.patient_id = k.patient_id
        WHERE (l.ve >= k.links_from OR (l.prio = 1 AND l.ve IS NULL))
          AND l.vf < CASE WHEN l.prio = 2 THEN k.links_to_calls ELSE k.links_to END
        OFFSET 0
    ) j
    GROUP BY 1, 2, 3
)
SELECT g.*,
       CASE m.strong_prio WHEN 1 THEN 'encounter' WHEN 2 THEN 'appointment' WHEN 3 THEN 'membership'
            WHEN 4 THEN 'order' ELSE
            CASE WHEN m.own_link AND (m.ended OR m.in_hospital) THEN 'own_link'
                 WHEN g.role = ANY(%(coding_roles)s::text[]) AND m.coding THEN 'coding'
                 WHEN m.call AND g.n_medical = 0 THEN 'appointment_call'
                 WHEN m.weak AND (g.n_medical = 0 OR g.role <> ALL(%(administrative_roles)s::text[]))
                   THEN 'hospital_wide' END END AS explained_by,
       coalesce(m.strong_prio IS NULL AND m.ended, false) AS past_link,
       coalesce(m.in_hospital, false) AS in_hospital,
       coalesce(m.own_link, false) AS own_link,
       coalesce(m.personal, false) AS personal
FROM g LEFT JOIN m ON m.actor_id = g.actor_id AND m.patient_id = g.patient_id AND m.day = g.day
"""

# The memory of unexplained accesses (detection_unexplainedaccess), rewritten for the analysed days and users:
# the rules that look over weeks read it (repeated, slow_and_low, crowd).
_UNEXPLAINED_DELETE = """
DELETE FROM detection_unexplainedaccess x
WHERE x.day BETWEEN %(d_from)s AND %(d_to)s AND (%(all_actors)s OR x.user_id = ANY(%(actors)s::bigint[]))
"""
_UNEXPLAINED_INSERT = """
INSERT INTO detection_unexplainedaccess (user_id, patient_id, day, cold, view_only)
SELECT actor_id, patient_id, day, NOT in_hospital AND NOT past_link AND NOT own_link,
       n_clinical = 0 AND n_export = 0
FROM det_grp WHERE patient_id IS NOT NULL AND explained_by IS NULL
ON CONFLICT (user_id, patient_id, day) DO UPDATE SET cold = EXCLUDED.cold, view_only = EXCLUDED.view_only
"""

_UD = f"""
CREATE TEMP TABLE det_ud ON COMMIT DROP AS
SELECT actor_id, day, max(role) AS role, max(unit) AS unit,
       sum(n)::int AS n_events,
       coalesce(sum(n) FILTER (WHERE patient_id IS NOT NULL), 0)::int AS n_patient_events,
       coalesce(sum(n) FILTER (WHERE explained_by IS NOT NULL), 0)::int AS n_explained_events,
       count(patient_id)::int AS n_patients,
       count(patient_id) FILTER (WHERE explained_by IS NULL)::int AS n_unexplained_patients,
       sum(n_search)::int AS n_searches,
       count(patient_id) FILTER (WHERE n_export > 0)::int AS n_export_patients,
       -- exported or printed with nothing else done in the file that day, or with no care relationship (opening
       -- a file before printing it does not make it one's patient) (bulk_export; not stored)
       count(patient_id) FILTER (WHERE n_export > 0 AND (n_export = n OR explained_by IS NULL))::int
         AS n_export_only_patients,
       count(patient_id) FILTER (WHERE explained_by IS NULL AND n_clinical = 0 AND n_export = 0)::int
         AS n_view_only_unexplained,
       bool_or(contract_denied) AS contract_denied,
       ARRAY[{_HOUR_SUMS}]::int[] AS hours
FROM det_grp GROUP BY actor_id, day
"""  # noqa: S608 (constant SQL, values bound)

_UD_UPSERT = """
INSERT INTO detection_userday (user_id, day, role, unit, n_events, n_patient_events, n_explained_events,
                               n_patients, n_unexplained_patients, n_searches, n_export_patients, hours)
SELECT actor_id, day, role, unit, n_events, n_patient_events, n_explained_events, n_patients,
       n_unexplained_patients, n_searches, n_export_patients, hours
FROM det_ud
ON CONFLICT (user_id, day) DO UPDATE SET
    role = EXCLUDED.role, unit = EXCLUDED.unit, n_events = EXCLUDED.n_events,
    n_patient_events = EXCLUDED.n_patient_events, n_explained_events = EXCLUDED.n_explained_events,
    n_patients = EXCLUDED.n_patients, n_unexplained_patients = EXCLUDED.n_unexplained_patients,
    n_searches = EXCLUDED.n_searches, n_export_patients = EXCLUDED.n_export_patients, hours = EXCLUDED.hours
"""

_STAFF = f"""
CREATE TEMP TABLE det_staff ON COMMIT DROP AS
SELECT u.id AS actor_id,
       array_remove(ARRAY[{_norm('u.last_name')}, {_norm('sp.birth_name')}], '') AS names,
       CASE WHEN coalesce(sp.address, '') = '' THEN ''
            ELSE {_addr('aw.w')} || '|' || {_norm('sp.postal_code')} END AS addr_key,
       CASE WHEN coalesce(sp.address, '') = '' OR coalesce(sp.postal_code, '') = '' THEN ''
            ELSE {_street('aw.w')} || '|' || {_norm('sp.postal_code')} END AS street_key,
       CASE WHEN coalesce(sp.postal_code, '') <> '' THEN {_norm('sp.postal_code')} ELSE {_norm('sp.city')} END
         AS city_key,
       {_norm('sp.postal_code')} AS postal_key,
       sp.patient_id AS own_patient_id, sp.end_date,
       greatest(sp.start_date, (u.date_joined AT TIME ZONE %(tz)s)::date) AS joined_on
FROM auth_user u LEFT JOIN access_staffprofile sp ON sp.user_id = u.id
CROSS JOIN LATERAL (SELECT {_addr_words('sp.address')} AS w OFFSET 0) aw
WHERE u.id IN (SELECT DISTINCT actor_id FROM det_grp)
"""  # noqa: S608 (constant SQL, values bound)

# The traits of the patients not strongly explained (weak explanations stay in: the restricted rule looks at
# them), normalised once per patient of the pass. The street address is normalised (some thirty regular
# expressions) only for a patient whose postal code is one of the analysed staff's: the address keys end with
# the postal code, so any other patient's can equal no staff member's; theirs are left empty ('').
_PTRAITS = f"""
CREATE TEMP TABLE det_ptraits ON COMMIT DROP AS
SELECT p.id AS patient_id,
       array_remove(ARRAY[{_norm('p.birth_name')}, {_norm('p.used_name')}], '') AS p_names,
       p.birth_name AS p_birth_name,
       CASE WHEN p.address = '' OR NOT pk.staff_postal THEN '' ELSE {_addr('aw.w')} || '|' || pk.postal END
         AS p_addr,
       CASE WHEN p.address = '' OR p.postal_code = '' OR NOT pk.staff_postal THEN ''
            ELSE {_street('aw.w')} || '|' || pk.postal END AS p_street,
       CASE WHEN p.postal_code <> '' THEN pk.postal ELSE {_norm('p.city')} END AS p_city,
       p.confidentiality, p.date_of_death,
       ps.user_id AS p_staff_user_id,
       coalesce((SELECT array_agg(su.careunit_id) FROM access_staffprofile_units su
                 WHERE su.staffprofile_id = ps.id), '{{}}')::bigint[] AS p_staff_unit_ids
FROM (SELECT DISTINCT patient_id FROM det_grp
      WHERE patient_id IS NOT NULL AND (explained_by IS NULL OR explained_by = 'hospital_wide')) x
JOIN patients_patient p ON p.id = x.patient_id
CROSS JOIN LATERAL (SELECT z.postal, z.postal IN (SELECT postal_key FROM det_staff) AS staff_postal
                    FROM (SELECT {_norm('p.postal_code')} AS postal OFFSET 0) z OFFSET 0) pk
CROSS JOIN LATERAL (SELECT CASE WHEN p.address = '' OR NOT pk.staff_postal THEN ''
                                ELSE {_addr_words('p.address')} END AS w OFFSET 0) aw
LEFT JOIN access_staffprofile ps ON ps.patient_id = p.id
"""  # noqa: S608 (constant SQL, values bound)

_UNX = """
CREATE TEMP TABLE det_unx ON COMMIT DROP AS
SELECT g.*, t.p_names, t.p_birth_name, t.p_addr, t.p_street, t.p_city, t.confidentiality, t.date_of_death,
       t.p_staff_user_id, t.p_staff_unit_ids
FROM det_grp g JOIN det_ptraits t ON t.patient_id = g.patient_id
WHERE g.explained_by IS NULL OR g.explained_by = 'hospital_wide'
"""

_HOURPROF = f"""
CREATE TEMP TABLE det_hourprof ON COMMIT DROP AS
SELECT c.actor_id, c.day, count(*)::int AS ndays, coalesce(sum(b.n_events), 0)::int AS tot,
       ARRAY[{_HOUR_SUMS}]::int[] AS s
FROM (SELECT DISTINCT actor_id, day FROM det_unx WHERE explained_by IS NULL) c
JOIN detection_userday b ON b.user_id = c.actor_id AND b.day < c.day
                        AND b.day >= c.day - %(hour_baseline_days)s
GROUP BY c.actor_id, c.day
"""  # noqa: S608 (constant SQL, values bound)

_HITS = """
CREATE TEMP TABLE det_hits (
    rule text NOT NULL, actor_id bigint NOT NULL, patient_id bigint, day date NOT NULL, points int NOT NULL,
    detail jsonb NOT NULL, fr text NOT NULL, en text NOT NULL
) ON COMMIT DROP
"""

# User-level evidence: the day's patients, unexplained first, and the first events of each.
_SCORE = """
WITH s AS (
    SELECT h.actor_id, h.patient_id, h.day, sum(h.points)::int AS score,
           array_agg(h.rule ORDER BY h.points DESC, h.rule) AS rules,
           jsonb_agg(jsonb_build_object('rule', h.rule, 'points', h.points, 'detail', h.detail,
                                        'fr', h.fr, 'en', h.en) ORDER BY h.points DESC, h.rule) AS hits,
           string_agg(h.fr, ' ; ' ORDER BY h.points DESC, h.rule) AS reason_fr,
           string_agg(h.en, '; ' ORDER BY h.points DESC, h.rule) AS reason_en
    FROM det_hits h
    GROUP BY h.actor_id, h.patient_id, h.day
    HAVING sum(h.points) >= %(alert_score)s
), ug AS (
    SELECT g.actor_id, g.day, g.patient_id, g.ids,
           row_number() OVER (PARTITION BY g.actor_id, g.day
                              ORDER BY (g.explained_by IS NOT NULL), g.patient_id IS NULL, g.n DESC, g.patient_id) AS rn
    FROM det_grp g JOIN (SELECT actor_id, day FROM s WHERE patient_id IS NULL) k
      ON k.actor_id = g.actor_id AND k.day = g.day
), uev AS (
    SELECT ug.actor_id, ug.day, (array_agg(i ORDER BY ug.rn, i))[1:%(evidence_max_events)s] AS event_ids,
           array_agg(DISTINCT ug.patient_id) FILTER (WHERE ug.patient_id IS NOT NULL) AS patient_ids
    FROM ug CROSS JOIN LATERAL unnest(ug.ids[1:5]) i
    WHERE ug.rn <= %(evidence_max_patients)s
    GROUP BY ug.actor_id, ug.day
), bl AS (
    -- The user's own baseline (previous volume_baseline_days) and their peers' (same role and unit) that day.
    SELECT k.actor_id, k.day, o.n, o.med_unexplained, o.med_patients, pe.n AS n_peers, pe.med AS peer_patients
    FROM (SELECT DISTINCT actor_id, day FROM s) k
    JOIN det_ud d ON d.actor_id = k.actor_id AND d.day = k.day
    CROSS JOIN LATERAL (
        SELECT count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY b.n_unexplained_patients) AS med_unexplained,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY b.n_patients) AS med_patients
        FROM detection_userday b WHERE b.user_id = k.actor_id AND b.day < k.day
          AND b.day >= k.day - %(volume_baseline_days)s
    ) o
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY b.n_patients) AS med
        FROM detection_userday b WHERE b.role = d.role AND b.unit = d.unit AND b.day = k.day
          AND b.user_id <> k.actor_id
    ) pe
), ev AS (
    SELECT s.*, g.ids AS event_ids, '{}'::bigint[] AS patient_ids, g.n AS n_events,
           jsonb_build_object(
             'fr', 'Consulté : ' || g.n || ' accès au dossier du patient n° ' || g.patient_id
                   || CASE WHEN g.n_medical > 0 THEN ', dont ' || g.n_medical || ' aux données médicales'
                           ELSE ', identité et données administratives seulement' END
                   || CASE WHEN g.n_denied > 0 THEN ' (' || g.n_denied || ' refusé(s) par le contrôle d''accès)'
                           ELSE '' END
                   || CASE WHEN g.break_glass THEN ', par bris de glace' ELSE '' END || '. '
                   || 'Explications recherchées : séjour ou consultation dans son service, rendez-vous avec lui ou '
                   || 'son service, place dans l''équipe de soins, prescription de sa main, hospitalisation en '
                   || 'cours dans un autre service, ancien patient de son service'
                   || CASE WHEN g.hospital_wide THEN ', passage dans n''importe quel service (fonction transversale)'
                           ELSE '' END || '. Trouvé : '
                   || CASE g.explained_by WHEN 'encounter' THEN 'un séjour ou une consultation dans son service'
                        WHEN 'appointment' THEN 'un rendez-vous'
                        WHEN 'membership' THEN 'une place dans l''équipe de soins'
                        WHEN 'order' THEN 'une prescription de sa main'
                        WHEN 'own_link'
                          THEN 'un lien qu''il a créé lui-même, pour un ancien patient ou un patient hospitalisé'
                        WHEN 'coding' THEN 'un séjour à coder ou auditer (DIM)'
                        WHEN 'appointment_call' THEN 'un rendez-vous à venir (appel administratif)'
                        WHEN 'hospital_wide' THEN 'un passage dans un service (explication faible)' ELSE 'aucune' END
                   || CASE WHEN g.own_link AND g.explained_by IS NULL
                           THEN ' (un rendez-vous ou une venue créé par lui-même ne compte pas)' ELSE '' END
                   || CASE WHEN g.past_link THEN ' ; ancien patient de son service, prise en charge terminée depuis '
                                                 || 'plus de ' || %(explain_after_days)s || ' jours' ELSE '' END
                   || CASE WHEN g.in_hospital AND g.explained_by IS NULL
                           THEN ' ; le patient est hospitalisé dans un autre service' ELSE '' END
                   || '. Par rapport à d''habitude : '
                   || CASE WHEN bl.n >= 5 THEN 'il ouvre d''ordinaire '
                                               || replace(round(bl.med_unexplained::numeric, 1)::text, '.', ',')
                                               || ' dossier(s) sans lien de soins par jour (médiane des '
                                               || %(volume_baseline_days)s || ' jours précédents) ; ce jour-là '
                                               || d.n_unexplained_patients
                           ELSE 'historique insuffisant (moins de 5 jours d''activité connus)' END || '.',
             'en', 'Accessed: ' || g.n || ' access(es) to the record of patient #' || g.patient_id
                   || CASE WHEN g.n_medical > 0 THEN ', ' || g.n_medical || ' to medical data'
                           ELSE ', identity and administrative data only' END
                   || CASE WHEN g.n_denied > 0 THEN ' (' || g.n_denied || ' refused by access control)' ELSE '' END
                   || CASE WHEN g.break_glass THEN ', by break-the-glass' ELSE '' END || '. '
                   || 'Explanations looked for: a stay or consultation in their unit, an appointment with them or '
                   || 'their unit, a care-team place, an order they wrote, a current stay in another unit, a former '
                   || 'patient of their unit'
                   || CASE WHEN g.hospital_wide THEN ', any unit''s visit (hospital-wide role)' ELSE '' END
                   || '. Found: '
                   || coalesce(g.explained_by, 'none')
                   || CASE WHEN g.own_link AND g.explained_by IS NULL
                           THEN ' (an appointment or visit they created themself does not count)' ELSE '' END
                   || CASE WHEN g.past_link THEN '; former patient of their unit' ELSE '' END
                   || CASE WHEN g.in_hospital AND g.explained_by IS NULL THEN '; in hospital in another unit'
                           ELSE '' END
                   || '. Against their usual: '
                   || CASE WHEN bl.n >= 5 THEN round(bl.med_unexplained::numeric, 1)
                                               || ' unexplained record(s) a day usually; ' || d.n_unexplained_patients
                                               || ' that day'
                           ELSE 'not enough history' END || '.') AS context
    FROM s JOIN det_grp g ON g.actor_id = s.actor_id AND g.patient_id = s.patient_id AND g.day = s.day
    JOIN det_ud d ON d.actor_id = s.actor_id AND d.day = s.day
    JOIN bl ON bl.actor_id = s.actor_id AND bl.day = s.day
    UNION ALL
    SELECT s.*, u.event_ids, u.patient_ids, d.n_events,
           jsonb_build_object(
             'fr', 'Consulté : ' || d.n_patients || ' patients distincts, dont ' || d.n_unexplained_patients
                   || ' sans lien de soins trouvé, ' || d.n_searches || ' recherche(s), ' || d.n_export_patients
                   || ' patient(s) exporté(s) ou imprimé(s). Par rapport à d''habitude : '
                   || CASE WHEN bl.n >= 5 THEN 'médiane de '
                                               || replace(round(bl.med_patients::numeric, 1)::text, '.', ',')
                                               || ' patients dont '
                                               || replace(round(bl.med_unexplained::numeric, 1)::text, '.', ',')
                                               || ' sans lien par jour sur les ' || %(volume_baseline_days)s
                                               || ' jours précédents'
                           ELSE 'historique insuffisant (moins de 5 jours d''activité connus)' END
                   || CASE WHEN bl.n_peers >= 1 THEN ' ; ses pairs (même rôle, même service) ce jour-là : médiane de '
                                                     || replace(round(bl.peer_patients::numeric, 1)::text, '.', ',')
                                                     || ' patients'
                           ELSE '' END
                   || '. Explications recherchées pour chaque dossier : séjour ou consultation dans son service, '
                   || 'rendez-vous, équipe de soins, prescription, hospitalisation ailleurs, ancien patient.',
             'en', 'Accessed: ' || d.n_patients || ' distinct patients, ' || d.n_unexplained_patients
                   || ' with no care relationship found, ' || d.n_searches || ' search(es), ' || d.n_export_patients
                   || ' exported or printed. Against their usual: '
                   || CASE WHEN bl.n >= 5 THEN 'median ' || round(bl.med_patients::numeric, 1) || ' patients, '
                                               || round(bl.med_unexplained::numeric, 1) || ' unexplained a day'
                           ELSE 'not enough history' END
                   || CASE WHEN bl.n_peers >= 1 THEN '; peers (same role and unit) that day: median '
                                                     || round(bl.peer_patients::numeric, 1) || ' patients'
                           ELSE '' END || '.') AS context
    FROM s JOIN uev u ON u.actor_id = s.actor_id AND u.day = s.day
    JOIN det_ud d ON d.actor_id = s.actor_id AND d.day = s.day
    JOIN bl ON bl.actor_id = s.actor_id AND bl.day = s.day
    WHERE s.patient_id IS NULL
)
INSERT INTO detection_alert AS a (
    user_id, patient_id, day, score, severity, rules, hits, event_ids, patient_ids, n_events,
    reason_fr, reason_en, context, status, comment, created_at, updated_at)
SELECT ev.actor_id, ev.patient_id, ev.day, ev.score,
       CASE WHEN ev.score >= %(high_score)s THEN 'high' WHEN ev.score >= %(medium_score)s THEN 'medium'
            ELSE 'low' END,
       ev.rules, ev.hits, ev.event_ids, coalesce(ev.patient_ids, '{}'), coalesce(ev.n_events, 0),
       ev.reason_fr, ev.reason_en, ev.context, 'new', '', %(now)s, %(now)s
FROM ev JOIN auth_user u ON u.id = ev.actor_id
ON CONFLICT (user_id, patient_id, day) DO UPDATE SET
    score = EXCLUDED.score, severity = EXCLUDED.severity, rules = EXCLUDED.rules, hits = EXCLUDED.hits,
    event_ids = EXCLUDED.event_ids, patient_ids = EXCLUDED.patient_ids, n_events = EXCLUDED.n_events,
    reason_fr = EXCLUDED.reason_fr, reason_en = EXCLUDED.reason_en, context = EXCLUDED.context,
    updated_at = EXCLUDED.updated_at
WHERE a.status IN ('new', 'in_review')
  AND (a.score, a.rules, a.n_events, a.event_ids) IS DISTINCT FROM
      (EXCLUDED.score, EXCLUDED.rules, EXCLUDED.n_events, EXCLUDED.event_ids)
RETURNING a.id, (a.xmax = 0) AS inserted, a.severity
"""


@dataclass
class PassResult:
    """What one pass analysed and found (``hits`` only when asked for: tests look at single rules)."""

    day_from: date
    day_to: date
    events: int = 0
    patient_events: int = 0
    explained_events: int = 0
    hits: int = 0
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    high: list[int] = field(default_factory=list)  # created or updated alerts that are high severity
    hit_rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


_FOLD_FROM = "àâäçéèêëîïôöùûüÿÀÂÄÇÉÈÊËÎÏÔÖÙÛÜ"
_FOLD_TO = "aaaceeeeiioouuuyAAACEEEEIIOOUUU"


def _fold(text: str) -> str:
    """What rules._FOLD does in SQL: accents folded, upper case, letters and digits only."""
    folded = text.translate(str.maketrans(_FOLD_FROM, _FOLD_TO)).upper()
    return "".join(c for c in folded if c.isascii() and c.isalnum())


def reason_is_weak(reason: str, conf: dict[str, Any]) -> bool:
    """A break-the-glass reason that justifies nothing: too few letters, or a stock phrase."""
    letters = sum(1 for c in reason if c.isalpha())
    stock = {_fold(w) for w in conf["break_glass_weak_reasons"]}
    return letters < conf["break_glass_min_reason_letters"] or _fold(reason) in stock


def bg_reasons_judge(cur, conf: dict[str, Any]) -> None:
    """``det_bg_weak``: for the break-the-glass uses of the analysed days, whether their (encrypted) reason is
    weak. Decrypted here, judged, and only the verdict goes to the temporary table."""
    from access.models import EmergencyAccess

    cur.execute("CREATE TEMP TABLE det_bg_weak (id bigint PRIMARY KEY, weak boolean NOT NULL) ON COMMIT DROP")
    cur.execute(
        "SELECT a.id FROM access_emergencyaccess a JOIN det_grp g ON a.user_id = g.actor_id "
        "AND a.patient_id = g.patient_id AND a.started_at < g.day_end AND a.expires_at > g.day_start "
        "WHERE g.break_glass"
    )
    ids = sorted({row[0] for row in cur.fetchall()})
    if not ids:
        return
    verdicts = [(pk, reason_is_weak(reason or "", conf))
                for pk, reason in EmergencyAccess.objects.filter(pk__in=ids).values_list("pk", "reason_text")]
    cur.executemany("INSERT INTO det_bg_weak (id, weak) VALUES (%s, %s)", verdicts)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, dtime.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def analyse_days(
    day_from: date, day_to: date, *, actors: list[int] | None = None, history_from: date | None = None,
    now: datetime, collect_hits: bool = False,
) -> PassResult:
    """Analyse the local days ``day_from``..``day_to`` (inclusive) for ``actors`` (None: everyone).

    Must run inside a transaction (the caller's); writes ``detection_userday`` and ``detection_alert``.
    """
    t0 = time.perf_counter()
    conf = thresholds()
    t_start, t_end = local_midnight(day_from), local_midnight(day_to + timedelta(days=1))
    params: dict[str, Any] = {
        **conf,
        "tz": settings.TIME_ZONE,
        "t_start": t_start,
        "t_end": t_end,
        "d_from": day_from,
        "d_to": day_to,
        "all_actors": actors is None,
        "actors": list(actors or []),
        "links_back_days": conf["past_link_lookback_days"] + conf["explain_after_days"],
        "links_ahead_calls_days": max(conf["explain_lead_days"], conf["appointment_call_days"]),
        "links_from": t_start - timedelta(days=conf["past_link_lookback_days"] + conf["explain_after_days"]),
        "links_to": t_end + timedelta(days=conf["explain_lead_days"]),
        "links_to_calls": t_end + timedelta(days=max(conf["explain_lead_days"], conf["appointment_call_days"])),
        "history_from": history_from,
        "denied_from": t_start - timedelta(days=max(conf["denied_window_days"], conf["denied_then_granted_days"])),
        "now": now,
    }
    result = PassResult(day_from, day_to)
    timings = result.timings
    with connection.cursor() as cur:
        cur.execute("SELECT set_config('work_mem', %s, true)", [conf["work_mem"]])
        # No JIT compilation for the pass: the planner's estimates of these statements (subqueries over the
        # partitioned audit table) pass its thresholds, and compiling their many expressions took seconds per
        # statement, far more than running them.
        cur.execute("SELECT set_config('jit', 'off', true)")

        def step(name: str, sql: str) -> None:
            s = time.perf_counter()
            cur.execute(sql, params)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - s

        step("scan", _RAW)
        cur.execute("ANALYZE det_raw")
        step("units", _UNITS)
        cur.execute("ANALYZE det_units")
        step("links", _LINKS)
        # Rules look a patient's links up one row at a time (relationship_ended's reasons): by index, not by
        # scanning the pass's links for each row.
        cur.execute("CREATE INDEX ON det_links (patient_id)")
        cur.execute("ANALYZE det_links")
        step("denied", _DENIED)
        cur.execute("ANALYZE det_denied")
        step("explain", _GRP)
        cur.execute("ANALYZE det_grp")
        step("unexplained", _UNEXPLAINED_DELETE)
        step("unexplained", _UNEXPLAINED_INSERT)
        bg_reasons_judge(cur, conf)
        step("userday", _UD)
        cur.execute("ANALYZE det_ud")
        step("userday", _UD_UPSERT)
        step("traits", _STAFF)
        cur.execute("ANALYZE det_staff")
        step("traits", _PTRAITS)
        step("traits", _UNX)
        cur.execute("ANALYZE det_unx")
        step("hours", _HOURPROF)
        cur.execute(_HITS)
        for rule in RULES:
            sql = f"INSERT INTO det_hits SELECT '{rule.code}', * FROM ({rule.sql}) x"  # noqa: S608 (constant)
            step(f"rule:{rule.code}", sql)
        s = time.perf_counter()
        scored_by = learned.score_pass(cur, params, conf)  # features, and the learned model's hits (if any)
        timings["model"] = time.perf_counter() - s
        cur.execute("SELECT coalesce(sum(n_events), 0), coalesce(sum(n_patient_events), 0), "
                    "coalesce(sum(n_explained_events), 0) FROM det_ud")
        result.events, result.patient_events, result.explained_events = (int(x) for x in cur.fetchone())
        cur.execute("SELECT count(*) FROM det_hits")
        result.hits = cur.fetchone()[0]
        if collect_hits:
            cur.execute("SELECT rule, actor_id, patient_id, day, points, detail, fr, en FROM det_hits "
                        "ORDER BY actor_id, patient_id NULLS FIRST, day, rule")
            cols = [c.name for c in cur.description]
            result.hit_rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            for row in result.hit_rows:  # Django leaves jsonb undecoded on raw cursors
                if isinstance(row["detail"], str):
                    row["detail"] = json.loads(row["detail"])
        step("score", _SCORE)
        for alert_id, inserted, severity in cur.fetchall():
            (result.created if inserted else result.updated).append(alert_id)
            if severity == "high":
                result.high.append(alert_id)
        learned.record_on_alerts(cur, params, scored_by, result.created + result.updated)
        # Temporary tables are dropped at commit; drop them now so a second pass in the same
        # transaction (a replay of several chunks) starts clean.
        cur.execute("DROP TABLE IF EXISTS det_bg_weak")
        learned.drop(cur)
        cur.execute("DROP TABLE det_raw, det_units, det_denied, det_links, det_grp, det_ud, det_staff, det_ptraits, "
                    "det_unx, det_hourprof, det_hits")
    result.seconds = time.perf_counter() - t0
    return result
