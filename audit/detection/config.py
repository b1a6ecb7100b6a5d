"""Every tunable number of the detector, in one dictionary.

``DEFAULTS`` is the reference; a hospital overrides any key with the ``DPI_DETECTION_THRESHOLDS`` environment
variable (a JSON object, read by ``dpi/settings.py``), e.g. ``{"alert_score": 60, "volume_min_z": 4}``.
Unknown keys are refused so that a typo does not silently leave a default in place.
``docs/detection.md`` explains each rule and the numbers it uses.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # --- scoring --------------------------------------------------------------------------------------------
    "alert_score": 50,  # a (user, patient, day) whose points reach this becomes an alert
    "high_score": 90,  # ... and this makes it high severity (the DPO is e-mailed)
    "medium_score": 60,
    # --- explanation ----------------------------------------------------------------------------------------
    "explain_lead_days": 7,  # a link starting up to this many days after the access still explains it
    "explain_after_days": 30,  # ... and one that ended up to this many days before (post-discharge follow-up)
    "past_link_lookback_days": 730,  # how far back "the care relationship ended" looks for a former link
    # Roles that work for the whole hospital rather than one unit: any unit's encounter or appointment with
    # the patient near that time explains their access (front desk, pharmacy, medical information).
    "hospital_wide_roles": ["reception", "pharmacist", "dim"],
    # An administrative touch never explains a clinical read: for these hospital-wide roles, any unit's stay or
    # appointment explains only administrative accesses (reception handles identities, not charts).
    "administrative_roles": ["reception"],
    # The medical information department codes and audits stays: any stay that ended within this many days
    # explains their access (explained_by = coding).
    "coding_roles": ["dim"],
    "dim_coding_days": 365,
    # An appointment of the user's unit up to this many days ahead explains an administrative access (the
    # secretary phoning the patient about it), never a clinical read.
    "appointment_call_days": 120,
    # Roles not analysed at all: machine accounts whose volume is not a person's behaviour.
    "exempt_roles": ["system", "integration"],
    # --- patient-level rules (points) -------------------------------------------------------------------
    "self_access_points": 70,
    "same_name_points": 50,
    "same_name_common_points": 25,  # the name is common (many patients carry it): weaker evidence
    "same_name_common_min_patients": 30,  # "common": at least this many patients have that family name
    "same_name_same_city_points": 20,  # extra when the patient also lives in the user's town
    "same_address_points": 60,
    # A neighbour: same street and postal code, another number; unexplained and nothing done in the file.
    "neighbour_points": 50,
    "neighbour_min_street_chars": 6,  # "RUE" alone or a number-only street says nothing
    "coworker_points": 35,
    "coworker_view_only_points": 15,  # extra when the user did nothing clinical (no note, no order)
    "coworker_same_unit_points": 15,  # extra when the patient works in one of the user's units
    "restricted_points": 60,
    # Roles whose legitimate contact with a patient leaves an administrative action (registration, booking):
    # for them a weak (hospital-wide) explanation does not cover merely viewing a restricted patient.
    # Pharmacists and DIM read by role and never write administrative data, so they are not listed.
    "restricted_weak_roles": ["reception"],
    "break_glass_points": 35,
    "break_glass_objection_points": 40,  # the patient had objected to this professional
    "break_glass_repeat_points": 30,  # the user broke the glass on several patients recently
    "break_glass_repeat_min_patients": 3,
    "break_glass_repeat_days": 7,
    # Repeats spread over a longer period (one a week escapes the 7-day count): this many patients by
    # break-the-glass over break_glass_long_days, when the 7-day count did not already fire.
    "break_glass_long_points": 30,
    "break_glass_long_min_patients": 3,
    "break_glass_long_days": 90,
    # ... each only when rare at the hospital's own rate: fewer than this share of colleagues (same role; same unit
    # when it breaks the glass more, e.g. an emergency department) with as many days at work would reach that count
    # (Poisson). Where emergencies are many per physician, three in a quarter is the job, not a habit.
    "break_glass_habit_p": 0.01,
    "break_glass_unit_min_days": 60,  # the unit's own rate counts from this many days at work of its colleagues
    # The reason typed when breaking the glass (access_emergencyaccess.reason_text): missing or weak adds points
    # (below this many letters, or one of the stock phrases below, compared without accents, case or spaces).
    "break_glass_weak_reason_points": 30,
    "break_glass_min_reason_letters": 20,
    "break_glass_weak_reasons": [
        "urgence", "urgent", "urgence vitale", "test", "essai", "vérification", "contrôle", "besoin", "accès",
        "accès urgent", "consultation", "avis", "patient", "continuité des soins", "besoin d'accès au dossier",
        "besoin du dossier", "pour voir", "information", "infos", "ras", "xxx",
    ],
    "break_glass_absent_points": 20,  # the patient was neither in the hospital nor expected (no stay, no appointment)
    "relationship_ended_points": 30,
    "relationship_ended_view_only_points": 15,
    # Extra when medical data was sought (read, or refused by the gate). 0 since issue #20: a physician's follow-up of
    # a former patient (identity, then a refused chart read) looks exactly the same and is routine; the rule no
    # longer alerts alone (30 + 15 = 45) and weighs with the others.
    "relationship_ended_medical_points": 0,
    # Curiosity about a former patient: medical data sought (or the record on another day), no reason in the data
    # (appointment of the unit booked by someone else, action by the unit in the last reason_days, in the hospital)
    # and the user not in the care team of the earlier care. 30 + 15 + 25 alerts.
    "relationship_ended_curiosity_points": 25,
    "relationship_ended_reason_days": 14,
    # Roles that follow up former patients (the consultation, the results, the call of the patient or their GP):
    # having been in the care team of the stay makes their later look a follow-up. For other roles (nurses, whose
    # care ends at discharge) it does not: with no reason in the data, seeking medical data is curiosity. Nor does
    # it for anyone coming back to the same former patient on another day with no reason (a follow-up is a task
    # done once: answer the call, check the result).
    "relationship_ended_followup_roles": ["physician", "midwife"],
    # Refusals are signals: the gate's denials of clinical (medical or restricted) data, over denied_window_days.
    "denied_clinical_points": 60,
    "denied_window_days": 7,
    # Roles with no clinical access at all (front desk, medical secretaries): a few refused patients suffice.
    "denied_admin_roles": ["reception", "medical_secretary"],
    "denied_admin_min_patients": 3,
    "denied_min_patients": 10,  # other roles (an on-call physician's refused advice reads are routine)
    # Denied, then granted: a refusal on a patient, then within denied_then_granted_days an allowed clinical
    # access to that patient after the same account created the relationship that opened it (a care-team
    # membership it granted, or an encounter, appointment or membership it created per the audit trail).
    "denied_then_granted_points": 70,
    "denied_then_granted_days": 7,
    "deceased_points": 55,
    "deceased_grace_days": 7,  # death paperwork and coding right after a death are normal
    "unusual_hour_points": 50,
    "hour_baseline_days": 28,  # the user's own history used to learn their hours
    "hour_min_history_events": 100,  # below this the user's hours are not known well enough
    "hour_min_history_days": 5,
    "hour_window": 1,  # hours either side of the access looked at in the user's history
    "hour_max_share": 0.01,  # unusual: the window holds less than this share of the user's past events
    # A clinical read explained only by a link the user created themself, for a patient with no other link.
    "covering_points": 60,
    # The same unrelated ("cold": not in the hospital, never treated by the user's units) record on another day.
    "repeated_points": 50,
    "repeated_days": 30,
    # Several staff with no link open the same cold record within crowd_days (an unflagged public figure).
    "crowd_points": 50,
    "crowd_days": 3,
    "crowd_min_users": 3,
    # A restricted patient of the unit opened on a day the user took care of (almost) nobody else.
    "restricted_day_off_points": 60,
    "restricted_day_off_max_patients": 1,
    # --- user-level rules (points, on the user's day: one alert per user and day) --------------------------
    "volume_points": 60,
    "volume_baseline_days": 28,
    "volume_min_patients": 20,  # never flag fewer distinct patients than this in a day
    "volume_min_z": 3.5,  # robust z-score (0.6745 (x - median) / MAD), against own history AND peers
    "volume_min_history_days": 5,
    "volume_min_peers": 5,
    "volume_min_ratio": 2.0,  # and at least this many times the own / peer median
    # Staff of a unit: the day must include this many patients with no care relationship (their units' own patients,
    # however many, are the job: weekend rounds, covering a colleague). Hospital-wide roles are not held to it.
    "volume_min_unexplained_patients": 10,
    "browsing_points": 60,
    "browsing_min_patients": 12,  # unexplained charts opened without any clinical action, in one day
    "browsing_min_searches": 40,  # ... or this many searches with at least browsing_min_with_searches charts
    "browsing_min_with_searches": 5,
    "dormant_points": 60,
    "dormant_days": 30,  # no activity at all for this long before the day
    "bulk_export_points": 60,
    "bulk_export_min_patients": 15,  # distinct patients exported or printed in one day
    "bulk_export_ratio": 3.0,  # ... and at least this many times the user's usual daily count
    # ... and this many of them exported or printed with nothing else done in the file that day, or with no care
    # relationship (printing the letters of the patients one is working on is care; taking out files one did not
    # otherwise touch, or opened only to print them without caring for the patient, is extraction).
    "bulk_export_min_export_only": 10,
    "after_end_date_points": 90,
    # Slow and low: cold records (see repeated) opened over slow_days, on at least slow_min_days different days.
    "slow_points": 60,
    "slow_days": 28,
    "slow_min_patients": 7,
    "slow_min_days": 5,
    # --- the DPO's verdicts (labels) --------------------------------------------------------------------------
    "dpo_verdict_days": 180,  # how long a closed alert weighs on the next scores
    "dpo_justified_points": 40,  # subtracted when a similar alert was judged justified
    "dpo_violation_points": 20,  # added to any new signal on a user with a violation
    # --- the learned model (audit/detection/model.py; none stored: rules only) --------------------------------
    # The model's probability p of a violation adds round(model_points * (2p - 1)) to a (user, patient, day)
    # that a rule scored: at most model_points up (a confirmed pattern) or down (a pattern the DPO justified).
    "model_points": 30,
    "model_baseline_days": 28,  # own and peers' (role x unit) baselines by weekday / weekend and hour band
    "model_long_days": 90,  # "first unexplained access" and earlier unexplained days look this far back
    "model_min_labels": 20,  # detect_retrain refuses to train on fewer closed alerts...
    "model_min_per_class": 5,  # ... or on fewer than this many of either verdict
    # --- evidence and runs ----------------------------------------------------------------------------------
    "evidence_max_events": 50,  # event ids kept per alert
    "evidence_max_patients": 50,  # patient ids kept in a user-level alert
    "incremental_overlap_minutes": 10,  # re-scan before the watermark: late commits are caught, idempotently
    "first_run_days": 1,  # the first incremental run (no watermark yet) starts this many days back
    "work_mem": "64MB",  # PostgreSQL work_mem for the detection transaction (sorts and hash joins in memory)
}


def thresholds() -> dict[str, Any]:
    """The defaults merged with the hospital's overrides (``settings.DPI_DETECTION_THRESHOLDS``)."""
    overrides = getattr(settings, "DPI_DETECTION_THRESHOLDS", None) or {}
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(f"DPI_DETECTION_THRESHOLDS: unknown keys {', '.join(unknown)}")
    return {**DEFAULTS, **overrides}
