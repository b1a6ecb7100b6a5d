"""The detection rules: each one a set-based SQL statement with its rationale and its thresholds.

Every rule reads the temporary tables the engine builds for the days being analysed (see
``audit.detection.engine``) and returns *hits*: ``(actor_id, patient_id, day, points, detail, fr, en)``.
Patient-level rules score one (user, patient, day); user-level rules score the user's day as a whole and return
``patient_id = NULL``. The engine adds the points of each key and raises an alert at ``alert_score``.

Tables a rule may read:

- ``det_grp``: one row per (user, patient, day) with counts, flags, the event ids and ``explained_by``
  (``encounter``/``appointment``/``membership``/``order`` — a *strong* explanation linking the user or their
  unit —, ``hospital_wide`` — a *weak* one: a hospital-wide role and any unit's stay or appointment —, or NULL);
- ``det_unx``: the rows of ``det_grp`` that are not strongly explained, with the patient's normalised traits
  (``p_names``, ``p_addr``, ``p_city``, ``confidentiality``, ``date_of_death``, ``p_staff_user_id``...);
- ``det_staff``: the user's traits (``names``, ``addr_key``, ``street_key``, ``city_key``, ``own_patient_id``,
  contract dates);
- ``det_ud``: one row per (user, day): counts of events, patients, searches, exports, view-only charts;
- ``detection_userday``: the same summary for past days (baselines of the volume, hour and export rules).

Parameters are the thresholds of ``audit.detection.config`` (``%(name)s``), plus ``tz``, ``d_from``, ``d_to``
and ``history_from``.
"""

from __future__ import annotations

from dataclasses import dataclass

PATIENT = "patient"
USER = "user"


@dataclass(frozen=True)
class Rule:
    code: str
    level: str  # PATIENT or USER
    label_fr: str
    label_en: str
    rationale: str
    sql: str


# Not strongly explained, and no clinical or administrative action on the patient that day.
_VIEW_ONLY = "(u.n_clinical = 0 AND u.n_export = 0)"

SELF_ACCESS = Rule(
    "self_access", PATIENT, "Accès à son propre dossier", "Access to one's own record",
    "A professional account is not the way to read one's own file (the patient's right of access goes "
    "through the hospital's request procedure). Scored even when a care relationship explains it: staff "
    "treated in their own unit are still not to read their file through their work account.",
    """
    SELECT g.actor_id, g.patient_id, g.day, %(self_access_points)s,
           jsonb_build_object('events', g.n, 'explained_by', g.explained_by),
           'Le professionnel a ouvert son propre dossier (' || g.n || ' accès)',
           'The user opened their own record (' || g.n || ' accesses)'
    FROM det_grp g JOIN det_staff s ON s.actor_id = g.actor_id AND s.own_patient_id = g.patient_id
    """,
)

SAME_NAME = Rule(
    "same_name", PATIENT, "Même nom de famille", "Same family name",
    "Looking up a relative is the most common form of snooping. The patient's birth or used name equals the "
    "user's family name or birth name (accents, case, spaces and hyphens ignored). A name carried by many "
    "patients is weaker evidence (same_name_common_points); living in the same town adds weight.",
    """
    SELECT u.actor_id, u.patient_id, u.day,
           CASE WHEN (SELECT count(*) FROM patients_patient p2 WHERE p2.birth_name = u.p_birth_name)
                     >= %(same_name_common_min_patients)s
                THEN %(same_name_common_points)s ELSE %(same_name_points)s END
           + CASE WHEN u.p_city <> '' AND u.p_city = s.city_key THEN %(same_name_same_city_points)s ELSE 0 END,
           jsonb_build_object('events', u.n, 'same_city', u.p_city <> '' AND u.p_city = s.city_key,
                              'explained_by', u.explained_by),
           'Le patient porte le même nom de famille que le professionnel, sans lien de soins',
           'The patient has the same family name as the user, with no care relationship'
    FROM det_unx u JOIN det_staff s ON s.actor_id = u.actor_id
    WHERE u.p_names && s.names AND s.own_patient_id IS DISTINCT FROM u.patient_id
    """,
)

SAME_ADDRESS = Rule(
    "same_address", PATIENT, "Même adresse", "Same address",
    "A patient living at the user's address is family or a flatmate: reading their file without a care "
    "relationship is a typical breach. Street address and postal code are compared after normalisation.",
    """
    SELECT u.actor_id, u.patient_id, u.day, %(same_address_points)s,
           jsonb_build_object('events', u.n, 'explained_by', u.explained_by),
           'Le patient habite à la même adresse que le professionnel, sans lien de soins',
           'The patient lives at the user''s address, with no care relationship'
    FROM det_unx u JOIN det_staff s ON s.actor_id = u.actor_id
    WHERE u.p_addr <> '' AND u.p_addr = s.addr_key AND s.own_patient_id IS DISTINCT FROM u.patient_id
    """,
)

NEIGHBOUR = Rule(
    "neighbour", PATIENT, "Voisin", "Neighbour",
    "A patient living in the user's street (same street and postal code, another house number) whose file is "
    "opened with no care relationship at all and nothing done in it: curiosity about a neighbour. Addresses "
    "are compared after the same normalisation as same_address; a street shorter than neighbour_min_street_chars "
    "letters is ignored.",
    f"""
    SELECT u.actor_id, u.patient_id, u.day, %(neighbour_points)s,
           jsonb_build_object('events', u.n, 'view_only', {_VIEW_ONLY}),
           'Le patient habite la même rue que le professionnel, dossier ouvert sans lien de soins ni acte',
           'The patient lives in the user''s street; record opened with no care relationship and no action'
    FROM det_unx u JOIN det_staff s ON s.actor_id = u.actor_id
    WHERE u.explained_by IS NULL AND {_VIEW_ONLY}
      AND s.street_key <> '' AND u.p_street = s.street_key
      AND length(split_part(s.street_key, '|', 1)) >= %(neighbour_min_street_chars)s
      AND u.p_addr IS DISTINCT FROM s.addr_key AND s.own_patient_id IS DISTINCT FROM u.patient_id
    """,  # noqa: S608 (constant SQL, values bound)
)

COWORKER = Rule(
    "coworker", PATIENT, "Dossier d'un collègue", "A coworker's record",
    "Staff treated in their own hospital are a classic target of curiosity. The patient is a staff member "
    "(their staff profile points to this patient file) and the access is unexplained; opening without any "
    "clinical action, or a coworker of the same unit, adds weight. Reception's administrative handling of a "
    "coworker's stay is explained by that stay and does not count.",
    f"""
    SELECT u.actor_id, u.patient_id, u.day,
           %(coworker_points)s
           + CASE WHEN {_VIEW_ONLY} THEN %(coworker_view_only_points)s ELSE 0 END
           + CASE WHEN u.p_staff_unit_ids && u.unit_ids THEN %(coworker_same_unit_points)s ELSE 0 END,
           jsonb_build_object('events', u.n, 'view_only', {_VIEW_ONLY},
                              'same_unit', u.p_staff_unit_ids && u.unit_ids),
           'Le patient est un membre du personnel'
             || CASE WHEN u.p_staff_unit_ids && u.unit_ids THEN ' du même service' ELSE '' END
             || ', sans lien de soins',
           'The patient is a staff member'
             || CASE WHEN u.p_staff_unit_ids && u.unit_ids THEN ' of the same unit' ELSE '' END
             || ', with no care relationship'
    FROM det_unx u
    WHERE u.explained_by IS NULL AND u.p_staff_user_id IS NOT NULL AND u.p_staff_user_id <> u.actor_id
    """,  # noqa: S608 (constant SQL, values bound)
)

RESTRICTED = Rule(
    "restricted", PATIENT, "Patient à confidentialité renforcée", "Restricted (VIP) patient",
    "Public figures, staff treated as patients and protected identities are hidden from searches; opening "
    "their file without a strong care relationship is suspicious. Unlike most rules it also fires when only a "
    "hospital-wide role's weak explanation applies and nothing was done on the file, for the roles of "
    "restricted_weak_roles (a clerk browsing a celebrity who is indeed admitted somewhere). Denied attempts "
    "count too.",
    f"""
    SELECT u.actor_id, u.patient_id, u.day, %(restricted_points)s,
           jsonb_build_object('events', u.n, 'denied', u.n_denied, 'explained_by', u.explained_by),
           'Patient à confidentialité renforcée (VIP) consulté sans lien de soins'
             || CASE WHEN u.n_denied > 0 THEN ' (' || u.n_denied || ' tentative(s) refusée(s))' ELSE '' END,
           'Restricted (VIP) patient opened with no care relationship'
             || CASE WHEN u.n_denied > 0 THEN ' (' || u.n_denied || ' denied attempt(s))' ELSE '' END
    FROM det_unx u
    WHERE (u.confidentiality = 'restricted' OR u.restricted_flag)
      AND (u.explained_by IS NULL OR (u.role = ANY(%(restricted_weak_roles)s::text[]) AND {_VIEW_ONLY}))
    """,  # noqa: S608 (constant SQL, values bound)
)

# The reason is encrypted at rest: the engine decrypts the few reasons of the analysed break-the-glass uses in
# Python and leaves only a verdict in ``det_bg_weak`` (id, weak), never the text (engine.bg_reasons_judge).
_WEAK_REASON = "(ea.found AND ea.weak)"
# A repeat is a habit only when it is rare among colleagues: the chance that a colleague of the same role, with the
# user's number of days at work in the window, breaks the glass that often (Poisson, at the hospital's own rate) is
# below break_glass_habit_p. pv.p7 / pv.pl: that chance for the short and the long window.
_BG_REPEAT = "(r.n >= %(break_glass_repeat_min_patients)s AND pv.p7 < %(break_glass_habit_p)s)"
_BG_LONG = f"(NOT {_BG_REPEAT} AND r.n_long >= %(break_glass_long_min_patients)s AND pv.pl < %(break_glass_habit_p)s)"



def _poisson_at_least(mu: str, n: str) -> str:
    """SQL for P(X >= n), X ~ Poisson(mu): 1 - the sum of P(X = i) for i < n, each term as exp(i ln mu - mu - ln i!)
    (``factorial(171)``, ``mu ^ i`` and ``exp(-mu)`` leave a double precision's range: one user with that many
    patients by break-the-glass in the window failed the whole detection pass)."""
    return (
        f"(1 - (SELECT coalesce(sum(CASE WHEN {mu} <= 0 THEN (s.i = 0)::int::float"  # noqa: S608 (expressions written here)
        f" ELSE exp(greatest(s.i * ln({mu}) - {mu} - s.ln_fact, -700)) END), 0)"
        f" FROM (SELECT i, sum(ln(greatest(i, 1)::float)) OVER (ORDER BY i) AS ln_fact"
        f" FROM generate_series(0, {n} - 1) i) s))"
    )


BREAK_GLASS = Rule(
    "break_glass", PATIENT, "Bris de glace", "Break-the-glass",
    "Every break-the-glass is reviewed by the DPO anyway (emergency-access review); alone it stays below the "
    "alert threshold. It becomes an alert when the patient had objected to this professional, when the user "
    "broke the glass on several patients in a few days (a habit, not an emergency) or spread over weeks "
    "(break_glass_long_days), when the reason typed is missing or weak (too short, or a stock phrase such as "
    "'urgence'), when the patient was neither in the hospital nor expected anywhere then (no stay, no appointment: "
    "an emergency has a patient), or with any other rule. A repeat counts only against the hospital's own rate: "
    "colleagues of the same role (and of the same unit, when it breaks the glass more: an emergency department) "
    "over break_glass_long_days, the user left out; several uses are a habit only when fewer than "
    "break_glass_habit_p of colleagues with as many days at work would reach that count. Uses the DPO reviewed "
    "and judged justified (emergency-access review) do not count as repeats, nor those judged violations in the "
    "colleagues' rate.",
    f"""
    WITH k AS (SELECT DISTINCT role, unit, day FROM det_grp WHERE break_glass),
    peer AS (
        -- Break-the-glass uses and days at work of everyone of the role (and of the role and unit) in the window.
        SELECT k.role, k.unit, k.day, d.d_role, d.d_unit, e.e_role, e.e_unit
        FROM k
        CROSS JOIN LATERAL (
            SELECT count(*)::float AS d_role, count(*) FILTER (WHERE b.unit = k.unit)::float AS d_unit
            FROM detection_userday b WHERE b.role = k.role AND b.day <= k.day
              AND b.day > k.day - %(break_glass_long_days)s
        ) d
        CROSS JOIN LATERAL (
            SELECT count(*)::float AS e_role, count(*) FILTER (WHERE b.unit = k.unit)::float AS e_unit
            FROM access_emergencyaccess a
            JOIN detection_userday b ON b.user_id = a.user_id AND b.day = (a.started_at AT TIME ZONE %(tz)s)::date
            WHERE b.role = k.role AND b.day <= k.day AND b.day > k.day - %(break_glass_long_days)s
              AND a.review_status <> 'violation'
        ) e
    )
    SELECT g.actor_id, g.patient_id, g.day,
           %(break_glass_points)s
           + CASE WHEN g.objection THEN %(break_glass_objection_points)s ELSE 0 END
           + CASE WHEN {_BG_REPEAT} THEN %(break_glass_repeat_points)s ELSE 0 END
           + CASE WHEN {_BG_LONG} THEN %(break_glass_long_points)s ELSE 0 END
           + CASE WHEN {_WEAK_REASON} THEN %(break_glass_weak_reason_points)s ELSE 0 END
           + CASE WHEN NOT g.in_hospital THEN %(break_glass_absent_points)s ELSE 0 END,
           jsonb_build_object('objection', g.objection, 'recent_patients', r.n, 'long_patients', r.n_long,
                              'expected_recent', round((rt.rate * greatest(o.d7, 1))::numeric, 2),
                              'expected_long', round((rt.rate * greatest(o.dl, 1))::numeric, 2),
                              'reason_category', ea.reason_category, 'weak_reason', {_WEAK_REASON},
                              'in_hospital', g.in_hospital),
           'Accès par bris de glace'
             || CASE WHEN g.objection THEN ' malgré l''opposition du patient' ELSE '' END
             || CASE WHEN {_BG_REPEAT}
                     THEN ' (' || r.n || ' patients en bris de glace sur ' || %(break_glass_repeat_days)s
                          || ' jours, ' || replace(round((rt.rate * greatest(o.d7, 1))::numeric, 1)::text, '.', ',')
                          || ' attendus d''après les collègues)' ELSE '' END
             || CASE WHEN {_BG_LONG}
                     THEN ' (' || r.n_long || ' patients en bris de glace sur ' || %(break_glass_long_days)s
                          || ' jours, ' || replace(round((rt.rate * greatest(o.dl, 1))::numeric, 1)::text, '.', ',')
                          || ' attendus d''après les collègues)' ELSE '' END
             || CASE WHEN {_WEAK_REASON} THEN ', motif absent ou insuffisant' ELSE '' END
             || CASE WHEN NOT g.in_hospital THEN ', patient ni hospitalisé ni attendu en consultation' ELSE '' END,
           'Break-the-glass access'
             || CASE WHEN g.objection THEN ' despite the patient''s objection' ELSE '' END
             || CASE WHEN {_BG_REPEAT}
                     THEN ' (' || r.n || ' patients by break-the-glass in ' || %(break_glass_repeat_days)s
                          || ' days, ' || round((rt.rate * greatest(o.d7, 1))::numeric, 1)
                          || ' expected from colleagues)' ELSE '' END
             || CASE WHEN {_BG_LONG}
                     THEN ' (' || r.n_long || ' patients by break-the-glass in ' || %(break_glass_long_days)s
                          || ' days, ' || round((rt.rate * greatest(o.dl, 1))::numeric, 1)
                          || ' expected from colleagues)' ELSE '' END
             || CASE WHEN {_WEAK_REASON} THEN ', reason missing or weak' ELSE '' END
             || CASE WHEN NOT g.in_hospital THEN ', patient neither in the hospital nor expected' ELSE '' END
    FROM det_grp g
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT e.patient_id) FILTER (
                   WHERE e.occurred_at >= g.day_end - make_interval(days => %(break_glass_repeat_days)s))::int AS n,
               count(DISTINCT e.patient_id)::int AS n_long
        FROM audit_accessevent e
        WHERE e.actor_id = g.actor_id AND e.occurred_at < g.day_end
          AND e.occurred_at >= g.day_end - make_interval(days => %(break_glass_long_days)s)
          AND (e.basis = 'break_glass' OR e.action = 'break_glass')
          AND NOT EXISTS (SELECT 1 FROM access_emergencyaccess j
                          WHERE j.user_id = e.actor_id AND j.patient_id = e.patient_id
                            AND j.review_status = 'justified'
                            AND j.started_at <= e.occurred_at AND j.expires_at > e.occurred_at)
    ) r
    -- The user's own days at work and uses in the window, to leave them out of the colleagues' rate.
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE b.day > g.day - %(break_glass_repeat_days)s)::float AS d7,
               count(*)::float AS dl,
               count(*) FILTER (WHERE b.role = g.role)::float AS d_role,
               count(*) FILTER (WHERE b.role = g.role AND b.unit = g.unit)::float AS d_unit
        FROM detection_userday b WHERE b.user_id = g.actor_id AND b.day <= g.day
          AND b.day > g.day - %(break_glass_long_days)s
    ) o
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE b.role = g.role)::float AS e_role,
               count(*) FILTER (WHERE b.role = g.role AND b.unit = g.unit)::float AS e_unit
        FROM access_emergencyaccess a
        JOIN detection_userday b ON b.user_id = a.user_id AND b.day = (a.started_at AT TIME ZONE %(tz)s)::date
        WHERE a.user_id = g.actor_id AND b.day <= g.day AND b.day > g.day - %(break_glass_long_days)s
          AND a.review_status <> 'violation'
    ) oe
    JOIN peer p ON p.role = g.role AND p.unit IS NOT DISTINCT FROM g.unit AND p.day = g.day
    -- The colleagues' rate per day at work: the role's across the hospital, or the unit's when the unit has
    -- enough days at work to tell and breaks the glass more.
    CROSS JOIN LATERAL (
        SELECT greatest(
                   coalesce((p.e_role - oe.e_role) / nullif(p.d_role - o.d_role, 0), 0),
                   CASE WHEN p.d_unit - o.d_unit >= %(break_glass_unit_min_days)s
                        THEN (p.e_unit - oe.e_unit) / (p.d_unit - o.d_unit) ELSE 0 END) AS rate
    ) rt
    -- P(X >= n) for X ~ Poisson(rate x days at work): 1 - sum of P(X = i) for i < n.
    CROSS JOIN LATERAL (
        SELECT {_poisson_at_least("m.mu7", "r.n")} AS p7, {_poisson_at_least("m.mul", "r.n_long")} AS pl
        FROM (SELECT rt.rate * greatest(o.d7, 1) AS mu7, rt.rate * greatest(o.dl, 1) AS mul) m
    ) pv
    LEFT JOIN LATERAL (
        SELECT true AS found, a.reason_category, coalesce(w.weak, true) AS weak FROM access_emergencyaccess a
        LEFT JOIN det_bg_weak w ON w.id = a.id
        WHERE a.user_id = g.actor_id AND a.patient_id = g.patient_id
          AND a.started_at < g.day_end AND a.expires_at > g.day_start
        ORDER BY a.started_at DESC LIMIT 1
    ) ea ON true
    WHERE g.break_glass
    """,  # noqa: S608 (constant SQL, values bound)
)

DENIED_CLINICAL = Rule(
    "denied_clinical", USER, "Tentatives refusées sur des données cliniques", "Refused attempts on clinical data",
    "The gate refused this account clinical (medical or restricted) data on several patients over "
    "denied_window_days. For roles with no clinical access at all (denied_admin_roles: reception, medical "
    "secretaries) a few refused patients suffice (denied_admin_min_patients): they are trying categories their "
    "role never needs. Other roles need more (denied_min_patients): an on-call physician's refused advice reads "
    "are routine. Fires on a day with a refusal.",
    """
    WITH d AS (SELECT DISTINCT actor_id, day FROM det_denied WHERE day BETWEEN %(d_from)s AND %(d_to)s),
    c AS (
        SELECT d.actor_id, d.day, count(DISTINCT x.patient_id)::int AS n_patients, count(*)::int AS n_events
        FROM d JOIN det_denied x ON x.actor_id = d.actor_id AND x.day <= d.day
                                AND x.day > d.day - %(denied_window_days)s
        GROUP BY d.actor_id, d.day
    )
    SELECT c.actor_id, NULL::bigint, c.day, %(denied_clinical_points)s,
           jsonb_build_object('patients', c.n_patients, 'events', c.n_events, 'role', u.role,
                              'days', %(denied_window_days)s),
           c.n_events || ' tentative(s) refusée(s) sur les données cliniques de ' || c.n_patients
             || ' patients en ' || %(denied_window_days)s || ' jours',
           c.n_events || ' refused attempt(s) on the clinical data of ' || c.n_patients || ' patients in '
             || %(denied_window_days)s || ' days'
    FROM c JOIN det_ud u ON u.actor_id = c.actor_id AND u.day = c.day
    WHERE c.n_patients >= CASE WHEN u.role = ANY(%(denied_admin_roles)s::text[])
                               THEN %(denied_admin_min_patients)s ELSE %(denied_min_patients)s END
    """,
)

DENIED_THEN_GRANTED = Rule(
    "denied_then_granted", PATIENT, "Refusé puis autorisé", "Denied, then granted",
    "The gate refused this account the patient's clinical data, and within denied_then_granted_days the same "
    "account read them, after creating itself the relationship that opened the door: a care-team membership it "
    "granted, or an encounter, appointment or membership it created (audit trail), between the refusal and the "
    "read. Scored even when that relationship explains the read: it is the 'covering' relationship.",
    """
    SELECT g.actor_id, g.patient_id, g.day, %(denied_then_granted_points)s,
           jsonb_build_object('denied_at', x.denied_at, 'granted_at', g.first_allowed_medical_at,
                              'explained_by', g.explained_by),
           'Accès clinique refusé puis obtenu après un lien de soins créé par le professionnel lui-même',
           'Clinical access refused, then obtained after a care relationship the user created themself'
    FROM det_grp g
    JOIN (  -- the first refusal before the read, within the window: one hash join, no loop over det_grp
        SELECT g.actor_id, g.patient_id, g.day, min(dn.at) AS denied_at
        FROM det_grp g JOIN det_denied dn ON dn.actor_id = g.actor_id AND dn.patient_id = g.patient_id
        WHERE g.first_allowed_medical_at IS NOT NULL AND dn.at < g.first_allowed_medical_at
          AND dn.at >= g.first_allowed_medical_at - make_interval(days => %(denied_then_granted_days)s)
        GROUP BY 1, 2, 3
    ) x ON x.actor_id = g.actor_id AND x.patient_id = g.patient_id AND x.day = g.day
    WHERE (EXISTS (SELECT 1 FROM access_careteammembership m
                   WHERE m.patient_id = g.patient_id AND m.granted_by_id = g.actor_id
                     AND m.created_at > x.denied_at AND m.created_at <= g.first_allowed_medical_at)
           OR EXISTS (SELECT 1 FROM audit_accessevent c
                      WHERE c.actor_id = g.actor_id AND c.patient_id = g.patient_id
                        AND c.occurred_at > x.denied_at AND c.occurred_at <= g.first_allowed_medical_at
                        AND c.action = 'create' AND c.outcome = 'allowed'
                        AND c.resource_type IN ('encounter', 'appointment', 'careteammembership')))
    """,
)

# Curiosity about a former patient (issue #20): the relationship ended, medical data is sought (a chart read,
# allowed or refused, or the same former patient on another day), nothing new in the data gives a reason (no
# appointment with the user or their unit ahead or just past unless the user booked it, no action on the patient
# by another member of their units and no stay anywhere in the last relationship_ended_reason_days, not in the
# hospital now), and the
# user was not in the care team of that earlier care (no allowed clinical access of theirs to the patient in the
# audit trail, no order, appointment or membership of theirs), or was in it but is not of a role that follows
# patients up after discharge (relationship_ended_followup_roles), or comes back on another day.
_RE_REASON = """
    u.in_hospital
    OR EXISTS (SELECT 1 FROM det_links l
               WHERE l.patient_id = u.patient_id AND l.prio = 1 AND l.creator IS DISTINCT FROM u.actor_id
                 AND l.vf <= u.day_end AND coalesce(l.ve, 'infinity')
                     >= u.day_start - make_interval(days => %(relationship_ended_reason_days)s))
    OR EXISTS (SELECT 1 FROM det_links l
               WHERE l.patient_id = u.patient_id AND l.prio = 2
                 AND (l.unit_id = ANY(u.unit_ids) OR l.user_id = u.actor_id)
                 AND l.creator IS DISTINCT FROM u.actor_id
                 AND l.vf >= u.day_start - make_interval(days => %(relationship_ended_reason_days)s)
                 AND l.vf < u.day_end + make_interval(days => %(appointment_call_days)s))
    OR EXISTS (SELECT 1 FROM audit_accessevent e
               JOIN access_staffprofile sp ON sp.user_id = e.actor_id
               JOIN access_staffprofile_units su ON su.staffprofile_id = sp.id
               WHERE e.patient_id = u.patient_id AND e.actor_id <> u.actor_id AND e.outcome = 'allowed'
                 AND e.occurred_at >= u.day_start - make_interval(days => %(relationship_ended_reason_days)s)
                 AND e.occurred_at < u.day_end AND su.careunit_id = ANY(u.unit_ids))
"""
_RE_TEAM = """
    EXISTS (SELECT 1 FROM det_links l WHERE l.patient_id = u.patient_id AND l.user_id = u.actor_id)
    OR EXISTS (SELECT 1 FROM audit_accessevent e
               WHERE e.patient_id = u.patient_id AND e.actor_id = u.actor_id AND e.outcome = 'allowed'
                 AND e.category IN ('medical', 'restricted') AND e.occurred_at < u.day_start
                 AND e.occurred_at >= u.day_start - make_interval(days => %(past_link_lookback_days)s))
"""

RELATIONSHIP_ENDED = Rule(
    "relationship_ended", PATIENT, "Lien de soins terminé", "Care relationship ended",
    "The user's unit (or the user) did treat the patient, but that stay, appointment or membership ended more "
    "than explain_after_days before: the legitimate need has lapsed. Merely looking, with no clinical action, "
    "adds weight; alone this stays below the alert threshold, because following up a former patient is "
    "routine. A legitimate follow-up has a reason in the data and is done by someone who treated the patient: "
    "an appointment with the user or their unit booked by someone else (relationship_ended_reason_days before "
    "to appointment_call_days ahead), an action on the patient by another member of the user's units in the "
    "last relationship_ended_reason_days (the patient or their GP phoned the secretary, a letter or result was "
    "registered), a stay anywhere in the hospital in that time or now (a readmission: the former unit is asked). "
    "With such a reason the rule does not fire at all. Curiosity has none of these: when medical data is sought "
    "(a chart read, allowed or refused, or the same former patient on another day within repeated_days), with "
    "no such reason, by a user who was not in the care team of that earlier care (no allowed clinical access of "
    "theirs to the patient in the audit trail, no order, appointment or membership of theirs), "
    "relationship_ended_curiosity_points are added. Having been in that care team excuses a single day's look only "
    "for the roles that follow patients up after discharge (relationship_ended_followup_roles: physicians, "
    "midwives); a nurse's care ends at discharge, and anyone coming back on another day with no new reason is not "
    "doing a one-off follow-up task.",
    f"""
    SELECT u.actor_id, u.patient_id, u.day,
           %(relationship_ended_points)s
           + CASE WHEN {_VIEW_ONLY} THEN %(relationship_ended_view_only_points)s ELSE 0 END
           + CASE WHEN u.n_medical > 0 THEN %(relationship_ended_medical_points)s ELSE 0 END
           + CASE WHEN c.curious THEN %(relationship_ended_curiosity_points)s ELSE 0 END,
           jsonb_build_object('events', u.n, 'view_only', {_VIEW_ONLY}, 'medical', u.n_medical > 0,
                              'other_days', x.n, 'reason', c.reason, 'care_team', c.team, 'curious', c.curious,
                              'role', u.role, 'why', CASE WHEN c.curious THEN c.why END),
           'Accès après la fin de la prise en charge par le service'
             || CASE WHEN c.curious THEN ' : données médicales recherchées'
                       || CASE WHEN x.n > 0 THEN ' (dossier déjà ouvert ' || x.n || ' autre(s) jour(s))' ELSE '' END
                       || ', sans motif récent (ni rendez-vous, ni démarche du service, ni hospitalisation), '
                       || CASE c.why WHEN 'not_in_team' THEN 'par un professionnel qui ne l''avait pas pris en charge'
                                     WHEN 'came_back' THEN 'par un professionnel qui l''avait pris en charge mais '
                                          || 'revient au dossier un autre jour sans motif nouveau'
                                     ELSE 'par un soignant de l''équipe de l''époque dont la fonction n''assure pas '
                                          || 'le suivi après la sortie' END
                  ELSE '' END,
           'Access after the care relationship ended'
             || CASE WHEN c.curious THEN ': medical data sought'
                       || CASE WHEN x.n > 0 THEN ' (record opened on ' || x.n || ' other day(s))' ELSE '' END
                       || ', with no recent reason (no appointment, no action by the unit, not in the hospital), '
                       || CASE c.why WHEN 'not_in_team' THEN 'by a user who had not treated the patient'
                                     WHEN 'came_back' THEN 'by a user who had treated the patient but comes back to '
                                          || 'the record on another day with no new reason'
                                     ELSE 'by a member of the care team of the time whose role does not follow '
                                          || 'patients up after discharge' END
                  ELSE '' END
    FROM det_unx u
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n FROM detection_unexplainedaccess x
        WHERE x.user_id = u.actor_id AND x.patient_id = u.patient_id
          AND x.day < u.day AND x.day >= u.day - %(repeated_days)s
    ) x
    CROSS JOIN LATERAL (
        SELECT r.reason, t.team,
               (u.n_medical > 0 OR x.n > 0) AND NOT r.reason
               AND (NOT t.team OR x.n > 0 OR u.role <> ALL(%(relationship_ended_followup_roles)s::text[]))
                 AS curious,
               CASE WHEN NOT t.team THEN 'not_in_team' WHEN x.n > 0 THEN 'came_back' ELSE 'role' END AS why
        FROM (SELECT {_RE_REASON} AS reason) r, LATERAL (SELECT {_RE_TEAM} AS team) t
    ) c
    WHERE u.explained_by IS NULL AND u.past_link AND NOT c.reason
    """,  # noqa: S608 (constant SQL, values bound)
)

DECEASED = Rule(
    "deceased", PATIENT, "Patient décédé", "Deceased patient",
    "The file of a patient who died more than deceased_grace_days ago is opened with no care relationship: "
    "deaths of known people attract curiosity; paperwork right after the death is normal.",
    """
    SELECT u.actor_id, u.patient_id, u.day, %(deceased_points)s,
           jsonb_build_object('events', u.n, 'days_since_death', u.day - u.date_of_death),
           'Dossier d''un patient décédé depuis ' || (u.day - u.date_of_death) || ' jours, sans lien de soins',
           'Record of a patient deceased ' || (u.day - u.date_of_death) || ' days ago, with no care relationship'
    FROM det_unx u
    WHERE u.explained_by IS NULL AND u.date_of_death IS NOT NULL
      AND u.day > u.date_of_death + %(deceased_grace_days)s
    """,
)

UNUSUAL_HOUR = Rule(
    "unusual_hour", PATIENT, "Horaire inhabituel", "Unusual hour",
    "Learned from the user's own history, not a fixed clock: night staff work at night. An hour is unusual "
    "when, over the user's previous hour_baseline_days, less than hour_max_share of their events fell within "
    "hour_window hours of it (needs hour_min_history_events over hour_min_history_days). Only unexplained "
    "accesses to a patient who is not in the hospital at all at that time count (no stay or consultation in "
    "any unit near then): the night's legitimate unexplained reads are advice on a patient being treated "
    "here, and an on-call night in one's own unit is explained.",
    """
    SELECT u.actor_id, u.patient_id, u.day, %(unusual_hour_points)s,
           jsonb_build_object('hours', x.hours, 'history_events', hp.tot),
           'Accès sans lien de soins à une heure inhabituelle pour ce professionnel ('
             || array_to_string(x.hours, 'h, ') || 'h)',
           'Unexplained access at an hour unusual for this user ('
             || array_to_string(x.hours, ':00, ') || ':00)'
    FROM det_unx u
    JOIN det_hourprof hp ON hp.actor_id = u.actor_id AND hp.day = u.day
    CROSS JOIN LATERAL (
        SELECT array_agg(h ORDER BY h) AS hours FROM generate_series(0, 23) h
        WHERE u.hours[h + 1] > 0
          AND (SELECT sum(hp.s[mod(h + o + 24, 24) + 1])
               FROM generate_series(-%(hour_window)s, %(hour_window)s) o) < %(hour_max_share)s * hp.tot
    ) x
    WHERE u.explained_by IS NULL AND NOT u.in_hospital AND x.hours IS NOT NULL
      AND hp.tot >= %(hour_min_history_events)s AND hp.ndays >= %(hour_min_history_days)s
    """,
)

VOLUME = Rule(
    "volume", USER, "Volume inhabituel", "Unusual volume",
    "Distinct patients opened in the day against the user's own previous volume_baseline_days of the same kind "
    "(weekdays against weekdays, weekends against weekends: weekend rounds cover more patients) AND against "
    "peers of the same role and unit that day, each with a robust z-score (0.6745 (x - median) / MAD, the "
    "MAD floored at max(1, 10 % of the median)). Both must be exceeded (volume_min_z and volume_min_ratio x "
    "the median) when known; a baseline with too little data (volume_min_history_days, volume_min_peers) is "
    "skipped, and with neither the rule stays silent. For staff of a unit the day must also include at least "
    "volume_min_unexplained_patients patients with no care relationship: a day spent on the patients one's units "
    "care for (weekend rounds, covering an absent colleague) is the job whatever their number, and is bounded by "
    "those units' patients; hospital-wide roles (whose accesses are explained by any unit's stay) are not "
    "held to it.",
    """
    WITH cand AS (
        SELECT * FROM det_ud WHERE n_patients >= %(volume_min_patients)s
          AND (role = ANY(%(hospital_wide_roles)s::text[])
               OR n_unexplained_patients >= %(volume_min_unexplained_patients)s)
    ), peers AS (
        SELECT b.role, b.unit, b.day, count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY b.n_patients) AS med
        FROM detection_userday b
        WHERE (b.role, b.unit, b.day) IN (SELECT role, unit, day FROM cand)
        GROUP BY 1, 2, 3
    ), peers_mad AS (
        SELECT p.role, p.unit, p.day, p.n, p.med,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(b.n_patients - p.med)) AS mad
        FROM peers p JOIN detection_userday b ON b.role = p.role AND b.unit = p.unit AND b.day = p.day
        GROUP BY 1, 2, 3, 4, 5
    ), own AS (
        SELECT c.actor_id, c.day, o.n, o.med,
               (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(b.n_patients - o.med))
                FROM detection_userday b WHERE b.user_id = c.actor_id AND b.day < c.day
                  AND b.day >= c.day - %(volume_baseline_days)s
                  AND (extract(isodow FROM b.day) >= 6) = (extract(isodow FROM c.day) >= 6)) AS mad
        FROM cand c CROSS JOIN LATERAL (
            SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY b.n_patients) AS med
            FROM detection_userday b WHERE b.user_id = c.actor_id AND b.day < c.day
              AND b.day >= c.day - %(volume_baseline_days)s
              AND (extract(isodow FROM b.day) >= 6) = (extract(isodow FROM c.day) >= 6)
        ) o
    ), z AS (
        SELECT c.actor_id, c.day, c.n_patients AS x,
               CASE WHEN o.n >= %(volume_min_history_days)s THEN o.med END AS own_med,
               CASE WHEN o.n >= %(volume_min_history_days)s
                    THEN 0.6745 * (c.n_patients - o.med) / greatest(o.mad, 1, 0.1 * o.med) END AS own_z,
               CASE WHEN pm.n >= %(volume_min_peers)s THEN pm.med END AS peer_med,
               CASE WHEN pm.n >= %(volume_min_peers)s
                    THEN 0.6745 * (c.n_patients - pm.med) / greatest(pm.mad, 1, 0.1 * pm.med) END AS peer_z
        FROM cand c
        JOIN own o ON o.actor_id = c.actor_id AND o.day = c.day
        LEFT JOIN peers_mad pm ON pm.role = c.role AND pm.unit = c.unit AND pm.day = c.day
    )
    SELECT actor_id, NULL::bigint, day, %(volume_points)s,
           jsonb_build_object('patients', x, 'own_median', own_med, 'own_z', round(own_z::numeric, 1),
                              'peer_median', peer_med, 'peer_z', round(peer_z::numeric, 1)),
           x || ' patients distincts dans la journée (médiane habituelle '
             || coalesce(replace(round(own_med::numeric, 1)::text, '.', ','), 'inconnue') || ', médiane des pairs '
             || coalesce(replace(round(peer_med::numeric, 1)::text, '.', ','), 'inconnue') || ')',
           x || ' distinct patients in the day (usual median '
             || coalesce(round(own_med::numeric, 1)::text, 'unknown') || ', peer median '
             || coalesce(round(peer_med::numeric, 1)::text, 'unknown') || ')'
    FROM z
    WHERE (own_z IS NOT NULL OR peer_z IS NOT NULL)
      AND (own_z IS NULL OR (own_z >= %(volume_min_z)s AND x >= %(volume_min_ratio)s * own_med))
      AND (peer_z IS NULL OR (peer_z >= %(volume_min_z)s AND x >= %(volume_min_ratio)s * peer_med))
    """,
)

BROWSING = Rule(
    "browsing", USER, "Navigation sans motif", "Browsing",
    "Many charts opened in one day without a care relationship and without doing anything in them (no note, "
    "no order, no export), or many searches with several such charts: the pattern of someone browsing "
    "rather than treating.",
    """
    SELECT d.actor_id, NULL::bigint, d.day, %(browsing_points)s,
           jsonb_build_object('view_only_unexplained', d.n_view_only_unexplained, 'searches', d.n_searches),
           d.n_view_only_unexplained || ' dossiers ouverts sans lien de soins ni acte, ' || d.n_searches
             || ' recherches',
           d.n_view_only_unexplained || ' records opened with no care relationship and no action, '
             || d.n_searches || ' searches'
    FROM det_ud d
    WHERE d.n_view_only_unexplained >= %(browsing_min_patients)s
       OR (d.n_searches >= %(browsing_min_searches)s
           AND d.n_view_only_unexplained >= %(browsing_min_with_searches)s)
    """,
)

DORMANT = Rule(
    "dormant", USER, "Compte dormant réactivé", "Dormant account active again",
    "An account with no activity for dormant_days suddenly opens files without a care relationship: a "
    "borrowed or stolen account, or someone back from leave looking around. Back from leave and working in "
    "one's own unit (everything explained) does not count. A never-seen account counts only when the "
    "detector's history (history_from) covers the dormancy period and the account is older than it.",
    """
    SELECT d.actor_id, NULL::bigint, d.day, %(dormant_points)s,
           jsonb_build_object('last_active', l.last_day, 'unexplained_patients', d.n_unexplained_patients),
           'Compte sans activité '
             || CASE WHEN l.last_day IS NULL THEN 'connue' ELSE 'depuis le ' || l.last_day END
             || ', de nouveau actif : ' || d.n_unexplained_patients || ' dossier(s) sans lien de soins',
           'Account inactive '
             || CASE WHEN l.last_day IS NULL THEN 'as far as known' ELSE 'since ' || l.last_day END
             || ', active again: ' || d.n_unexplained_patients || ' record(s) with no care relationship'
    FROM det_ud d
    JOIN det_staff s ON s.actor_id = d.actor_id
    CROSS JOIN LATERAL (
        SELECT max(b.day) AS last_day FROM detection_userday b WHERE b.user_id = d.actor_id AND b.day < d.day
    ) l
    WHERE d.n_unexplained_patients > 0
      AND (d.day - l.last_day >= %(dormant_days)s
           OR (l.last_day IS NULL AND %(history_from)s::date <= d.day - %(dormant_days)s
               AND s.joined_on <= d.day - %(dormant_days)s))
    """,
)

BULK_EXPORT = Rule(
    "bulk_export", USER, "Export ou impression en masse", "Bulk export or print",
    "Exports and prints take data out of the system. Flag a day with at least bulk_export_min_patients "
    "distinct patients exported or printed and bulk_export_ratio times the user's usual daily count (median "
    "over their active days of the previous volume_baseline_days): DIM coders who export daily do not alert. "
    "At least bulk_export_min_export_only of those patients must have been exported or printed with nothing else "
    "done in their file that day (no read, no note), or be patients with no care relationship (opened or not): "
    "printing the letters and prescriptions of the patients one is working on (weekend rounds) is care, taking out "
    "files one did not otherwise touch, or of patients one does not care for, is extraction.",
    """
    SELECT d.actor_id, NULL::bigint, d.day, %(bulk_export_points)s,
           jsonb_build_object('patients', d.n_export_patients, 'usual', o.med,
                              'export_only', d.n_export_only_patients),
           d.n_export_patients || ' patients exportés ou imprimés (habituellement '
             || coalesce(replace(round(o.med::numeric, 1)::text, '.', ','), '0') || ')',
           d.n_export_patients || ' patients exported or printed (usually '
             || coalesce(round(o.med::numeric, 1)::text, '0') || ')'
    FROM det_ud d CROSS JOIN LATERAL (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY b.n_export_patients) AS med
        FROM detection_userday b WHERE b.user_id = d.actor_id AND b.day < d.day
          AND b.day >= d.day - %(volume_baseline_days)s
    ) o
    WHERE d.n_export_patients >= %(bulk_export_min_patients)s
      AND d.n_export_patients >= %(bulk_export_ratio)s * coalesce(o.med, 0)
      AND d.n_export_only_patients >= %(bulk_export_min_export_only)s
    """,
)

AFTER_END_DATE = Rule(
    "after_end_date", USER, "Compte après la fin du contrat", "Account used after its end date",
    "An account used after its holder's contract ended (staff profile end date), or refused by the gate for "
    "that reason: a departed employee's credentials are being used. Scored high on its own.",
    """
    SELECT d.actor_id, NULL::bigint, d.day, %(after_end_date_points)s,
           jsonb_build_object('end_date', s.end_date, 'events', d.n_events, 'refused', d.contract_denied),
           'Compte utilisé après la fin de contrat de son titulaire'
             || CASE WHEN s.end_date IS NOT NULL THEN ' (' || s.end_date || ')' ELSE '' END
             || ' : ' || d.n_events || ' événement(s)',
           'Account used after its holder''s end date'
             || CASE WHEN s.end_date IS NOT NULL THEN ' (' || s.end_date || ')' ELSE '' END
             || ': ' || d.n_events || ' event(s)'
    FROM det_ud d JOIN det_staff s ON s.actor_id = d.actor_id
    WHERE s.end_date < d.day OR d.contract_denied
    """,
)


COVERING = Rule(
    "covering", PATIENT, "Lien de soins créé par le professionnel lui-même", "Self-made care relationship",
    "The clinical read is explained only by a link the user created themself (an appointment booked, a visit "
    "registered, a care-team place self-granted) for a patient who has no other link to the hospital: neither "
    "in the hospital elsewhere, nor a former patient of the user's units. The 'covering' relationship made to "
    "open the record. A follow-up booked by the physician for a former patient is explained (own_link).",
    """
    SELECT u.actor_id, u.patient_id, u.day, %(covering_points)s,
           jsonb_build_object('events', u.n, 'medical', u.n_medical),
           'Lecture clinique expliquée seulement par un rendez-vous ou une venue que le professionnel a créé '
             || 'lui-même, pour un patient sans autre lien avec l''hôpital',
           'Clinical read explained only by an appointment or visit the user created themself, for a patient '
             || 'with no other link to the hospital'
    FROM det_unx u
    WHERE u.explained_by IS NULL AND u.own_link AND u.n_medical > 0
    """,
)

REPEATED = Rule(
    "repeated", PATIENT, "Même dossier sans lien, plusieurs jours", "Same unrelated record on several days",
    "The user opened the record of a patient with whom nothing connects them (not in the hospital, never "
    "treated by their units) on another day within repeated_days before: one look may be a misclick, coming "
    "back is interest in that person (an ex-partner, an acquaintance, with no shared name or address).",
    """
    SELECT u.actor_id, u.patient_id, u.day, %(repeated_points)s,
           jsonb_build_object('days', x.n + 1, 'window_days', %(repeated_days)s),
           'Dossier sans aucun lien avec le professionnel ouvert ' || (x.n + 1) || ' jours différents en '
             || %(repeated_days)s || ' jours',
           'Record with no link to the user opened on ' || (x.n + 1) || ' different days in '
             || %(repeated_days)s || ' days'
    FROM det_unx u
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n FROM detection_unexplainedaccess x
        WHERE x.user_id = u.actor_id AND x.patient_id = u.patient_id AND x.cold
          AND x.day < u.day AND x.day >= u.day - %(repeated_days)s
    ) x
    WHERE u.explained_by IS NULL AND NOT u.in_hospital AND NOT u.past_link AND NOT u.own_link AND x.n > 0
    """,
)

SLOW_AND_LOW = Rule(
    "slow_and_low", USER, "Curiosité lente et régulière", "Slow-and-low curiosity",
    "A few unrelated records every day or so add up: over slow_days the user opened at least slow_min_patients "
    "records with which nothing connects them (not in the hospital, never treated by their units), today "
    "included. A misclick now and then stays far below; one chart a day for weeks does not.",
    """
    WITH d AS (SELECT DISTINCT actor_id, day FROM det_unx
               WHERE explained_by IS NULL AND NOT in_hospital AND NOT past_link AND NOT own_link)
    SELECT d.actor_id, NULL::bigint, d.day, %(slow_points)s,
           jsonb_build_object('patients', x.n, 'days', x.ndays, 'window_days', %(slow_days)s),
           x.n || ' dossiers sans aucun lien avec le professionnel ouverts en ' || %(slow_days)s
             || ' jours (' || x.ndays || ' jours différents)',
           x.n || ' records with no link to the user opened in ' || %(slow_days)s || ' days ('
             || x.ndays || ' different days)'
    FROM d CROSS JOIN LATERAL (
        SELECT count(DISTINCT x.patient_id)::int AS n, count(DISTINCT x.day)::int AS ndays
        FROM detection_unexplainedaccess x
        WHERE x.user_id = d.actor_id AND x.cold AND x.day <= d.day AND x.day > d.day - %(slow_days)s
    ) x
    WHERE x.n >= %(slow_min_patients)s AND x.ndays >= %(slow_min_days)s
    """,
)

CROWD = Rule(
    "crowd", PATIENT, "Dossier regardé par plusieurs professionnels sans lien", "Record looked at by several staff",
    "Several staff with no link at all to the patient (not in the hospital, never treated by their units) open "
    "the same record within crowd_days: a public figure or a local news story that is not flagged restricted. "
    "Every such access counts from crowd_min_users users.",
    """
    SELECT u.actor_id, u.patient_id, u.day, %(crowd_points)s,
           jsonb_build_object('users', x.n, 'window_days', %(crowd_days)s),
           x.n || ' professionnels sans lien avec le patient ont ouvert son dossier en ' || %(crowd_days)s
             || ' jours',
           x.n || ' staff with no link to the patient opened the record in ' || %(crowd_days)s || ' days'
    FROM det_unx u
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT x.user_id)::int AS n FROM detection_unexplainedaccess x
        WHERE x.patient_id = u.patient_id AND x.cold AND x.day <= u.day AND x.day > u.day - %(crowd_days)s
    ) x
    WHERE u.explained_by IS NULL AND NOT u.in_hospital AND NOT u.past_link AND NOT u.own_link
      AND x.n >= %(crowd_min_users)s
    """,
)

RESTRICTED_DAY_OFF = Rule(
    "restricted_day_off", PATIENT, "Patient VIP du service, professionnel sans autre activité",
    "Restricted patient of the unit, user otherwise idle",
    "A restricted (VIP) patient of the user's own unit, explained only because they are in the unit (no "
    "appointment, membership or order of the user's own), opened on a day when the user took care of at most "
    "restricted_day_off_max_patients other patients: someone of the unit coming in, or logging in from a day "
    "off, to look at the celebrity.",
    """
    SELECT g.actor_id, g.patient_id, g.day, %(restricted_day_off_points)s,
           jsonb_build_object('events', g.n, 'patients_that_day', d.n_patients),
           'Patient à confidentialité renforcée du service ouvert un jour où le professionnel n''a pris en charge '
             || (d.n_patients - 1) || ' autre(s) patient(s)',
           'Restricted patient of the unit opened on a day the user took care of ' || (d.n_patients - 1)
             || ' other patient(s)'
    FROM det_grp g JOIN det_ud d ON d.actor_id = g.actor_id AND d.day = g.day
    WHERE g.restricted_flag AND g.explained_by = 'encounter' AND NOT g.personal
      AND d.n_patients <= %(restricted_day_off_max_patients)s + 1
    """,
)

# --- the DPO's verdicts as labels: a closed alert changes the next scores -------------------------------------
# These two read the hits of the other rules (they run last) and add a signed adjustment to their keys.
_KEYS = "(SELECT actor_id, patient_id, day, array_agg(rule) AS rules FROM det_hits GROUP BY 1, 2, 3)"

DPO_JUSTIFIED = Rule(
    "dpo_justified", PATIENT, "Jugé justifié par le DPO", "Judged justified by the DPO",
    "The DPO closed as justified an alert on the same user and patient (for a user-level alert: the same user "
    "and a rule in common) within dpo_verdict_days before: the same situation scores dpo_justified_points less, "
    "so a known, legitimate pattern stops alerting while something new on top of it still does.",
    f"""
    SELECT k.actor_id, k.patient_id, k.day, -%(dpo_justified_points)s,
           jsonb_build_object('alert', a.id, 'alert_day', a.day),
           'Une alerte semblable (n° ' || a.id || ' du ' || to_char(a.day, 'DD/MM/YYYY')
             || ') a été jugée justifiée par le DPO',
           'A similar alert (#' || a.id || ' of ' || a.day || ') was judged justified by the DPO'
    FROM {_KEYS} k CROSS JOIN LATERAL (
        SELECT a.id, a.day FROM detection_alert a
        WHERE a.user_id = k.actor_id AND a.status = 'justified' AND a.day < k.day
          AND a.day >= k.day - %(dpo_verdict_days)s
          AND ((k.patient_id IS NOT NULL AND a.patient_id = k.patient_id)
               OR (k.patient_id IS NULL AND a.patient_id IS NULL AND a.rules::text[] && k.rules))
        ORDER BY a.day DESC LIMIT 1
    ) a
    """,  # noqa: S608 (constant SQL, values bound)
)

DPO_VIOLATION = Rule(
    "dpo_violation", PATIENT, "Antécédent de violation", "Earlier violation",
    "The DPO closed an alert on this user as a violation within dpo_verdict_days before: any new signal about "
    "them weighs dpo_violation_points more.",
    f"""
    SELECT k.actor_id, k.patient_id, k.day, %(dpo_violation_points)s,
           jsonb_build_object('alert', a.id, 'alert_day', a.day),
           'Le DPO a déjà qualifié de violation une alerte sur ce professionnel (n° ' || a.id || ' du '
             || to_char(a.day, 'DD/MM/YYYY') || ')',
           'The DPO already judged an alert on this user a violation (#' || a.id || ' of ' || a.day || ')'
    FROM {_KEYS} k CROSS JOIN LATERAL (
        SELECT a.id, a.day FROM detection_alert a
        WHERE a.user_id = k.actor_id AND a.status = 'violation' AND a.day < k.day
          AND a.day >= k.day - %(dpo_verdict_days)s
        ORDER BY a.day DESC LIMIT 1
    ) a
    """,  # noqa: S608 (constant SQL, values bound)
)

RULES: tuple[Rule, ...] = (
    SELF_ACCESS, SAME_NAME, SAME_ADDRESS, NEIGHBOUR, COWORKER, RESTRICTED, BREAK_GLASS, DENIED_THEN_GRANTED,
    RELATIONSHIP_ENDED, DECEASED, UNUSUAL_HOUR, VOLUME, BROWSING, DORMANT, BULK_EXPORT, AFTER_END_DATE,
    DENIED_CLINICAL, COVERING, REPEATED, SLOW_AND_LOW, CROWD, RESTRICTED_DAY_OFF,
    DPO_JUSTIFIED, DPO_VIOLATION,  # last: they adjust the hits of the others
)
RULES_BY_CODE: dict[str, Rule] = {r.code: r for r in RULES}
