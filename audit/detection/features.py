"""The learned model's features: one row per scored (user, patient, day), computed in SQL (issue #20).

Runs inside a detector pass (``audit.detection.engine``), after the rules and before the scoring, on the
temporary tables of the pass. Set-based: one statement per step, no loop over events.

1. ``detection_userday.patient_hours``: for each analysed (user, day), the patients first opened in each local
   hour (the baselines by weekday / weekend and hour band read it on later days).
2. ``det_cand``: the (user, patient, day) keys a patient-level rule scored, with each rule's points.
3. ``det_band``: for each candidate (user, day, hour band of the key's first access): the user's patients
   first opened in that band today (K), their own mean on the same kind of day (N: the same weekday for Monday
   to Friday, Saturday and Sunday together for the weekend) over ``model_baseline_days``, and their peers' mean
   (same role and unit, M) — with the French and English sentence the DPO reads.
4. ``det_feat``: the features of each candidate, listed in ``FEATURES`` and documented in docs/detection.md.

Hour bands are four hours wide and follow the nursing shifts: 6-10 h, 10-14 h, 14-18 h, 18-22 h, 22-2 h, 2-6 h.
"""

from __future__ import annotations

from audit.detection.rules import PATIENT, RULES

# Rules whose points are features (one column each, ``r_<code>``): the patient-level rules.
RULE_FEATURES: tuple[str, ...] = tuple(f"r_{r.code}" for r in RULES if r.level == PATIENT)

# Every feature, in a fixed order. A stored model lists its own; a feature it does not know is ignored and a
# feature it knows that no longer exists counts as 0, so adding a rule does not break a stored model.
FEATURES: tuple[str, ...] = (
    "rule_points",  # sum of the patient-level rules' points on the key
    "user_points",  # the user-level rules' points on the user's day (volume, browsing, dormant...)
    *RULE_FEATURES,
    "unexplained",  # no explanation of any kind
    "weak_explained",  # only a weak one (hospital-wide role, distant appointment, coding, own link)
    "cold",  # unexplained and nothing connects them: not in the hospital, never treated by the user's units
    "past_link",  # a former patient of the user's units
    "in_hospital",  # in the hospital elsewhere at that time
    "own_link",  # a link the user created themself
    "view_only",  # nothing written, exported or printed
    "medical",  # medical or restricted data read
    "denied",  # refused at least once by the gate
    "log_events",  # ln(1 + accesses to the record that day)
    "break_glass",
    "first_unexplained",  # unexplained, and no unexplained access to this patient in model_long_days before
    "log_prior_unexplained_days",  # ln(1 + earlier days with an unexplained access to this patient)
    "log_cold_patients",  # ln(1 + cold records the user opened over model_baseline_days)
    "log_denied_patients",  # ln(1 + patients whose clinical data the gate refused the user over 7 days)
    "same_name",
    "same_address",
    "same_street",  # neighbour: same street and postal code, another house number
    "same_town",
    "staff_patient",  # the patient is a staff member
    "own_file",
    "restricted",  # restricted (VIP, staff, protected identity) or flagged restricted by the gate
    "deceased",  # died more than deceased_grace_days before
    "after_contract",  # the day is after the staff profile's end date
    "dormant",  # no activity for dormant_days before (once the history covers them)
    "night_band",  # first access between 22 h and 6 h
    "weekend",
    "log_band_today",  # ln(1 + K): patients first opened by the user in that hour band that day
    "band_vs_own",  # ln((1 + K) / (1 + N)), 0 without own baseline (fewer than 2 days of that kind)
    "band_vs_peers",  # ln((1 + K) / (1 + M)), 0 without peers' baseline (fewer than 3 peer days)
    "has_own_baseline",
    "has_peer_baseline",
    "own_band_share",  # share of the user's usual first opens that fall in this band (an unusual hour: ~0)
    "day_vs_own",  # ln((1 + patients today) / (1 + own mean on that kind of day))
)

_ROLE_FR = {
    "physician": "médecins", "nurse": "infirmiers", "midwife": "sages-femmes", "pharmacist": "pharmaciens",
    "medical_secretary": "secrétaires médicales", "reception": "agents d'accueil", "dim": "médecins DIM",
}
_ROLE_EN = {
    "physician": "physicians", "nurse": "nurses", "midwife": "midwives", "pharmacist": "pharmacists",
    "medical_secretary": "medical secretaries", "reception": "reception staff", "dim": "DIM physicians",
}


def _case(expr: str, mapping: dict[str, str]) -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in mapping.items())
    return f"CASE {expr} {whens} ELSE {expr} END"


def _band_sum(arr: str, band: str) -> str:
    """SQL: the sum of the 24-hour array ``arr`` over the four hours of band ``band`` (0: 22-2 h ... 5: 18-22 h)."""
    return " + ".join(f"coalesce({arr}[mod(({band}) * 4 + {22 + j}, 24) + 1], 0)" for j in range(4))


# The first local hour of a (user, patient, day): the first non-zero slot of its events per hour.
_FIRST_HOUR = "CASE " + " ".join(f"WHEN g.hours[{h + 1}] > 0 THEN {h}" for h in range(24)) + " ELSE 0 END"
_BAND = f"mod(({_FIRST_HOUR}) + 2, 24) / 4"

_PATIENT_HOURS = f"""
UPDATE detection_userday d SET patient_hours = x.ph
FROM (
    SELECT u.actor_id, u.day,
           ARRAY[{", ".join(f"count(f.fh) FILTER (WHERE f.fh = {h})" for h in range(24))}]::int[] AS ph
    FROM det_ud u
    -- OFFSET 0: the first hour computed once per row, not once per hour count reading it
    LEFT JOIN (SELECT g.actor_id, g.day, {_FIRST_HOUR} AS fh FROM det_grp g WHERE g.patient_id IS NOT NULL
               OFFSET 0) f
      ON f.actor_id = u.actor_id AND f.day = u.day
    GROUP BY u.actor_id, u.day
) x
WHERE d.user_id = x.actor_id AND d.day = x.day
"""  # noqa: S608 (constant SQL)

_PIVOT = ", ".join(
    f"coalesce(sum(h.points) FILTER (WHERE h.rule = '{r.code}'), 0)::int AS r_{r.code}"
    for r in RULES if r.level == PATIENT
)
_CAND0 = f"""
CREATE TEMP TABLE det_cand0 ON COMMIT DROP AS
SELECT h.actor_id, h.patient_id, h.day, sum(h.points)::int AS rule_points, {_PIVOT}
FROM det_hits h WHERE h.patient_id IS NOT NULL
GROUP BY h.actor_id, h.patient_id, h.day
"""  # noqa: S608 (constant SQL)

# The candidates with what the later steps read of det_grp and det_unx, copied once: those are large and
# unindexed, the candidates few (a hash on the candidates, one scan of each).
_CAND = f"""
CREATE TEMP TABLE det_cand1 ON COMMIT DROP AS
SELECT c.*, g.explained_by, g.in_hospital, g.past_link, g.own_link, g.n_clinical, g.n_export, g.n_medical,
       g.n_denied, g.n, g.break_glass, g.restricted_flag, {_BAND} AS band
FROM det_cand0 c
JOIN det_grp g ON g.actor_id = c.actor_id AND g.patient_id = c.patient_id AND g.day = c.day
"""  # noqa: S608 (constant SQL)

# The patient's traits (det_unx: rows not strongly explained), in a second step: joined in the same statement,
# the planner's estimate of one row after the three-column join made it scan det_unx once per candidate.
_CAND_TRAITS = """
CREATE TEMP TABLE det_cand ON COMMIT DROP AS
SELECT c.*, u.p_names, u.p_addr, u.p_street, u.p_city
FROM det_cand1 c
LEFT JOIN det_unx u ON u.actor_id = c.actor_id AND u.patient_id = c.patient_id AND u.day = c.day
"""

_SAME_KIND = "CASE WHEN b.dow >= 6 THEN extract(isodow FROM x.day) >= 6 ELSE extract(isodow FROM x.day) = b.dow END"
_DAY_FR = "(ARRAY['le lundi', 'le mardi', 'le mercredi', 'le jeudi', 'le vendredi', 'le week-end', 'le week-end'])"
_DAY_EN = "(ARRAY['on Mondays', 'on Tuesdays', 'on Wednesdays', 'on Thursdays', 'on Fridays', 'at weekends', " \
          "'at weekends'])"
_BAND_START = "mod(b.band * 4 + 22, 24)"

_BANDS = f"""
CREATE TEMP TABLE det_band ON COMMIT DROP AS
WITH b AS (
    SELECT DISTINCT c.actor_id, c.day, c.band, d.role, d.unit, extract(isodow FROM c.day)::int AS dow
    FROM det_cand c
    JOIN det_ud d ON d.actor_id = c.actor_id AND d.day = c.day
)
SELECT b.*, t.n_patients AS today_patients, {_band_sum("t.patient_hours", "b.band")} AS k,
       own.n AS own_days, own.m AS own_mean, own.share AS own_share, own.day_mean AS own_day_mean,
       peer.n AS peer_days, peer.m AS peer_mean,
       (SELECT lower(cu.name) FROM patients_careunit cu WHERE cu.code = split_part(b.unit, ',', 1)) AS unit_name
FROM b
JOIN detection_userday t ON t.user_id = b.actor_id AND t.day = b.day
CROSS JOIN LATERAL (
    SELECT count(*)::int AS n, avg({_band_sum("x.patient_hours", "b.band")})::float AS m,
           (sum({_band_sum("x.patient_hours", "b.band")})::float / nullif(sum(x.n_patients), 0)) AS share,
           avg(x.n_patients)::float AS day_mean
    FROM detection_userday x
    WHERE x.user_id = b.actor_id AND x.day < b.day AND x.day >= b.day - %(model_baseline_days)s
      AND cardinality(x.patient_hours) = 24 AND {_SAME_KIND}
) own
CROSS JOIN LATERAL (
    SELECT count(*)::int AS n, avg({_band_sum("x.patient_hours", "b.band")})::float AS m
    FROM detection_userday x
    WHERE x.role = b.role AND x.unit = b.unit AND x.user_id <> b.actor_id
      AND x.day < b.day AND x.day >= b.day - %(model_baseline_days)s
      AND cardinality(x.patient_hours) = 24 AND {_SAME_KIND}
) peer
"""  # noqa: S608 (constant SQL)

# The sentence of the alert's context: "d'habitude N dossiers le mardi entre 14 h et 18 h, ses pairs
# (infirmiers de cardiologie) M ; aujourd'hui K".
_BASELINE_FR = f"""
'Habitudes (dossiers ouverts pour la première fois de la journée) : '
|| CASE WHEN b.own_days >= 1
        THEN 'd''habitude ' || replace(round(b.own_mean::numeric, 1)::text, '.', ',') || ' dossier(s) '
             || {_DAY_FR}[b.dow]
             || ' entre ' || {_BAND_START} || ' h et ' || mod({_BAND_START} + 4, 24) || ' h (moyenne de '
             || b.own_days || ' jour(s) comparable(s) sur ' || %(model_baseline_days)s || ' jours)'
        ELSE 'pas d''historique propre ' || {_DAY_FR}[b.dow] || ' entre ' || {_BAND_START} || ' h et '
             || mod({_BAND_START} + 4, 24) || ' h' END
|| CASE WHEN b.peer_days >= 1
        THEN ', ses pairs (' || {_case("b.role", _ROLE_FR)} || coalesce(' de ' || b.unit_name, '') || ') '
             || replace(round(b.peer_mean::numeric, 1)::text, '.', ',')
        ELSE '' END
|| ' ; aujourd''hui ' || b.k || '.'
"""
_BASELINE_EN = f"""
'Usual pattern (records first opened that day): '
|| CASE WHEN b.own_days >= 1
        THEN round(b.own_mean::numeric, 1) || ' record(s) ' || {_DAY_EN}[b.dow] || ' between '
             || {_BAND_START} || ':00 and ' || mod({_BAND_START} + 4, 24) || ':00 (mean of ' || b.own_days
             || ' comparable day(s) over ' || %(model_baseline_days)s || ' days)'
        ELSE 'no history of their own ' || {_DAY_EN}[b.dow] || ' between ' || {_BAND_START} || ':00 and '
             || mod({_BAND_START} + 4, 24) || ':00' END
|| CASE WHEN b.peer_days >= 1
        THEN ', their peers (' || {_case("b.role", _ROLE_EN)} || coalesce(', ' || b.unit_name, '') || ') '
             || round(b.peer_mean::numeric, 1)
        ELSE '' END
|| '; that day ' || b.k || '.'
"""

_FEAT = f"""
CREATE TEMP TABLE det_feat ON COMMIT DROP AS
SELECT c.actor_id, c.patient_id, c.day,
       c.rule_points::float AS rule_points,
       coalesce(up.points, 0)::float AS user_points,
       {", ".join(f"c.{f}::float AS {f}" for f in RULE_FEATURES)},
       (c.explained_by IS NULL)::int::float AS unexplained,
       (c.explained_by IS NOT NULL AND c.explained_by NOT IN ('encounter', 'appointment', 'membership', 'order'))
         ::int::float AS weak_explained,
       (c.explained_by IS NULL AND NOT c.in_hospital AND NOT c.past_link AND NOT c.own_link)::int::float AS cold,
       c.past_link::int::float AS past_link, c.in_hospital::int::float AS in_hospital,
       c.own_link::int::float AS own_link,
       (c.n_clinical = 0 AND c.n_export = 0)::int::float AS view_only,
       (c.n_medical > 0)::int::float AS medical, (c.n_denied > 0)::int::float AS denied,
       ln(1 + c.n)::float AS log_events, coalesce(c.break_glass, false)::int::float AS break_glass,
       (c.explained_by IS NULL AND pu.n = 0)::int::float AS first_unexplained,
       ln(1 + pu.n)::float AS log_prior_unexplained_days,
       ln(1 + cp.n)::float AS log_cold_patients,
       ln(1 + dn.n)::float AS log_denied_patients,
       coalesce(c.p_names && s.names, false)::int::float AS same_name,
       coalesce(c.p_addr <> '' AND c.p_addr = s.addr_key, false)::int::float AS same_address,
       coalesce(c.p_street <> '' AND c.p_street = s.street_key AND c.p_addr <> s.addr_key, false)::int::float
         AS same_street,
       coalesce(c.p_city <> '' AND c.p_city = s.city_key, false)::int::float AS same_town,
       EXISTS (SELECT 1 FROM access_staffprofile ps WHERE ps.patient_id = c.patient_id)::int::float
         AS staff_patient,
       coalesce(s.own_patient_id = c.patient_id, false)::int::float AS own_file,
       (coalesce(p.confidentiality <> 'normal', false) OR coalesce(c.restricted_flag, false))::int::float
         AS restricted,
       coalesce(p.date_of_death < c.day - %(deceased_grace_days)s, false)::int::float AS deceased,
       coalesce(s.end_date < c.day, false)::int::float AS after_contract,
       (%(history_from)s::date IS NOT NULL AND %(history_from)s::date <= c.day - %(dormant_days)s
        AND NOT EXISTS (SELECT 1 FROM detection_userday x WHERE x.user_id = c.actor_id AND x.day < c.day
                        AND x.day >= c.day - %(dormant_days)s))::int::float AS dormant,
       (b.band IN (0, 1))::int::float AS night_band,
       (b.dow >= 6)::int::float AS weekend,
       ln(1 + b.k)::float AS log_band_today,
       CASE WHEN b.own_days >= 2 THEN ln((1 + b.k) / (1 + b.own_mean)) ELSE 0 END::float AS band_vs_own,
       CASE WHEN b.peer_days >= 3 THEN ln((1 + b.k) / (1 + b.peer_mean)) ELSE 0 END::float AS band_vs_peers,
       (b.own_days >= 2)::int::float AS has_own_baseline,
       (b.peer_days >= 3)::int::float AS has_peer_baseline,
       coalesce(b.own_share, 0)::float AS own_band_share,
       CASE WHEN b.own_days >= 2 THEN ln((1 + b.today_patients) / (1 + b.own_day_mean)) ELSE 0 END::float
         AS day_vs_own,
       {_BASELINE_FR} AS baseline_fr,
       {_BASELINE_EN} AS baseline_en
FROM det_cand c
JOIN det_band b ON b.actor_id = c.actor_id AND b.day = c.day AND b.band = c.band
LEFT JOIN (SELECT h.actor_id, h.day, sum(h.points) AS points FROM det_hits h WHERE h.patient_id IS NULL
           GROUP BY h.actor_id, h.day) up ON up.actor_id = c.actor_id AND up.day = c.day
LEFT JOIN det_staff s ON s.actor_id = c.actor_id
LEFT JOIN patients_patient p ON p.id = c.patient_id
CROSS JOIN LATERAL (
    SELECT count(*)::int AS n FROM detection_unexplainedaccess x
    WHERE x.user_id = c.actor_id AND x.patient_id = c.patient_id AND x.day < c.day
      AND x.day >= c.day - %(model_long_days)s
) pu
CROSS JOIN LATERAL (
    SELECT count(DISTINCT x.patient_id)::int AS n FROM detection_unexplainedaccess x
    WHERE x.user_id = c.actor_id AND x.cold AND x.day <= c.day AND x.day > c.day - %(model_baseline_days)s
) cp
-- Refused patients per (user, day) of the candidates by one hash join (det_denied has no index: no loop over it).
LEFT JOIN (
    SELECT k.actor_id, k.day, count(DISTINCT x.patient_id)::int AS n
    FROM (SELECT DISTINCT actor_id, day FROM det_cand) k
    JOIN det_denied x ON x.actor_id = k.actor_id AND x.day <= k.day AND x.day > k.day - 7
    GROUP BY 1, 2
) dn0 ON dn0.actor_id = c.actor_id AND dn0.day = c.day
CROSS JOIN LATERAL (SELECT coalesce(dn0.n, 0) AS n) dn
"""  # noqa: S608 (constant SQL, values bound)


# User-level alerts (volume, browsing...): the day against the same kind of day, own and peers', with the
# busiest hour band of the day against its usual.
USER_BASELINE = f"""
WITH b0 AS (
    SELECT a.id, a.user_id AS actor_id, a.day, t.role, t.unit, t.n_patients AS today, t.patient_hours,
           extract(isodow FROM a.day)::int AS dow,
           (SELECT k FROM generate_series(0, 5) k ORDER BY {_band_sum("t.patient_hours", "k")} DESC, k LIMIT 1)
             AS band
    FROM detection_alert a JOIN detection_userday t ON t.user_id = a.user_id AND t.day = a.day
    WHERE a.id = ANY(%(ids)s::bigint[]) AND a.patient_id IS NULL AND cardinality(t.patient_hours) = 24
), b AS (
    SELECT b0.*, {_band_sum("b0.patient_hours", "b0.band")} AS k,
           (SELECT lower(cu.name) FROM patients_careunit cu WHERE cu.code = split_part(b0.unit, ',', 1)) AS unit_name
    FROM b0
), s AS (
    SELECT b.*, own.n AS own_days, own.day_mean, own.band_mean, peer.n AS peer_days, peer.day_mean AS peer_day,
           peer.band_mean AS peer_band
    FROM b
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n, avg(x.n_patients)::float AS day_mean,
               avg({_band_sum("x.patient_hours", "b.band")})::float AS band_mean
        FROM detection_userday x
        WHERE x.user_id = b.actor_id AND x.day < b.day AND x.day >= b.day - %(model_baseline_days)s
          AND cardinality(x.patient_hours) = 24 AND {_SAME_KIND}
    ) own
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n, avg(x.n_patients)::float AS day_mean,
               avg({_band_sum("x.patient_hours", "b.band")})::float AS band_mean
        FROM detection_userday x
        WHERE x.role = b.role AND x.unit = b.unit AND x.user_id <> b.actor_id
          AND x.day < b.day AND x.day >= b.day - %(model_baseline_days)s
          AND cardinality(x.patient_hours) = 24 AND {_SAME_KIND}
    ) peer
)
UPDATE detection_alert a SET context = jsonb_build_object(
    'fr', regexp_replace(coalesce(a.context ->> 'fr', ''), ' Habitudes \\(.*$', '') || ' Habitudes ('
          || {_DAY_FR}[s.dow] || ', dossiers ouverts) : '
          || CASE WHEN s.own_days >= 1
                  THEN 'd''habitude ' || replace(round(s.day_mean::numeric, 1)::text, '.', ',') || ' par jour, dont '
                       || replace(round(s.band_mean::numeric, 1)::text, '.', ',') || ' entre '
                       || mod(s.band * 4 + 22, 24) || ' h et '
                       || mod(s.band * 4 + 26, 24) || ' h (moyenne de ' || s.own_days || ' jour(s) comparable(s) sur '
                       || %(model_baseline_days)s || ' jours)'
                  ELSE 'pas d''historique propre' END
          || CASE WHEN s.peer_days >= 1
                  THEN ', ses pairs (' || {_case("s.role", _ROLE_FR)} || coalesce(' de ' || s.unit_name, '') || ') '
                       || replace(round(s.peer_day::numeric, 1)::text, '.', ',') || ' par jour, dont '
                       || replace(round(s.peer_band::numeric, 1)::text, '.', ',')
                       || ' dans cette tranche'
                  ELSE '' END
          || ' ; aujourd''hui ' || s.today || ', dont ' || s.k || ' entre ' || mod(s.band * 4 + 22, 24) || ' h et '
          || mod(s.band * 4 + 26, 24) || ' h.',
    'en', regexp_replace(coalesce(a.context ->> 'en', ''), ' Usual pattern \\(.*$', '') || ' Usual pattern ('
          || {_DAY_EN}[s.dow] || ', records opened): '
          || CASE WHEN s.own_days >= 1
                  THEN round(s.day_mean::numeric, 1) || ' a day, ' || round(s.band_mean::numeric, 1) || ' between '
                       || mod(s.band * 4 + 22, 24) || ':00 and ' || mod(s.band * 4 + 26, 24) || ':00 (mean of '
                       || s.own_days || ' comparable day(s) over ' || %(model_baseline_days)s || ' days)'
                  ELSE 'no history of their own' END
          || CASE WHEN s.peer_days >= 1
                  THEN ', their peers (' || {_case("s.role", _ROLE_EN)} || coalesce(', ' || s.unit_name, '') || ') '
                       || round(s.peer_day::numeric, 1) || ' a day, ' || round(s.peer_band::numeric, 1)
                       || ' in that band'
                  ELSE '' END
          || '; that day ' || s.today || ', ' || s.k || ' between ' || mod(s.band * 4 + 22, 24) || ':00 and '
          || mod(s.band * 4 + 26, 24) || ':00.')
FROM s WHERE a.id = s.id
"""  # noqa: S608 (constant SQL, values bound)


def compute(cur, params: dict) -> None:
    """Write the day's ``patient_hours`` and build ``det_cand``, ``det_band`` and ``det_feat`` (see module doc)."""
    cur.execute(_PATIENT_HOURS, params)
    cur.execute(_CAND0, params)
    cur.execute("ANALYZE det_cand0")
    cur.execute(_CAND, params)
    cur.execute("ANALYZE det_cand1")
    cur.execute(_CAND_TRAITS, params)
    cur.execute("ANALYZE det_cand")
    cur.execute(_BANDS, params)
    cur.execute(_FEAT, params)


def drop(cur) -> None:
    cur.execute("DROP TABLE IF EXISTS det_feat, det_band, det_cand, det_cand1, det_cand0, det_mscore")
