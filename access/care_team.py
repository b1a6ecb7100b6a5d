"""Care relationships, materialised as ``CareGrant`` rows (guardian object permissions on the patient).

A professional is in a patient's care team when (R1110-4 CSP, "équipe de soins"):
- they are care staff of the unit of an encounter that is open, or ended less than
  ``DPI_POST_DISCHARGE_DAYS`` ago (default 30);
- they are the practitioner (a clinician) of a non-cancelled appointment, from 7 days before it to
  ``DPI_POST_DISCHARGE_DAYS`` after it;
- they hold an explicit ``CareTeamMembership`` covering that time;

and the fact was not created by themselves alone (provenance, access.policy): an encounter, appointment or
membership entered by the person it would let in counts for them only once another person confirmed it.

``care_grants_recompute`` rebuilds the rows for a set of patients (or all) in two set-based statements, so
the table always equals what the rules justify. It runs in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone

from access.policy import CARE_STAFF_ROLES, CLINICAL_ROLES

APPOINTMENT_LEAD_DAYS = 7

_DESIRED = """
WITH src AS (
    SELECT sp.user_id, e.patient_id, 'encounter' AS basis, e.start AS vf,
           CASE WHEN e."end" IS NULL THEN NULL ELSE e."end" + make_interval(days => %(days)s) END AS vu,
           CASE WHEN e.confirmed_by_id IS NOT NULL THEN 'confirmed' ELSE e.source END AS prov,
           e.created_by_id AS fact_by
    FROM patients_encounter e
    JOIN access_staffprofile_units su ON su.careunit_id = e.unit_id
    JOIN access_staffprofile sp ON sp.id = su.staffprofile_id
    JOIN auth_user u ON u.id = sp.user_id AND u.is_active
    WHERE sp.role = ANY(%(roles)s) AND (sp.end_date IS NULL OR sp.end_date >= %(today)s)
      AND (e."end" IS NULL OR e."end" + make_interval(days => %(days)s) > %(now)s)
      AND (%(all)s OR e.patient_id = ANY(%(pids)s))
      -- provenance: an admission entered by this very person lets them in only once someone else confirmed it
      AND (e.created_by_id IS DISTINCT FROM sp.user_id OR e.confirmed_by_id IS NOT NULL)
    UNION ALL
    SELECT a.practitioner_id, a.patient_id, 'appointment', a.start - make_interval(days => %(lead)s),
           a."end" + make_interval(days => %(days)s),
           CASE WHEN a.confirmed_by_id IS NOT NULL THEN 'confirmed' ELSE a.source END, a.created_by_id
    FROM patients_appointment a
    JOIN auth_user u ON u.id = a.practitioner_id AND u.is_active
    -- only a clinician is the practitioner of a consultation
    JOIN access_staffprofile psp ON psp.user_id = a.practitioner_id AND psp.role = ANY(%(clinical)s)
    WHERE a.status <> 'cancelled' AND a."end" + make_interval(days => %(days)s) > %(now)s
      AND (%(all)s OR a.patient_id = ANY(%(pids)s))
      AND (a.created_by_id IS DISTINCT FROM a.practitioner_id OR a.confirmed_by_id IS NOT NULL)
    UNION ALL
    SELECT m.user_id, m.patient_id, 'membership', m.start, m."end",
           CASE WHEN m.confirmed_by_id IS NOT NULL THEN 'confirmed' ELSE m.source END, m.granted_by_id
    FROM access_careteammembership m
    JOIN auth_user u ON u.id = m.user_id AND u.is_active
    WHERE m."end" > %(now)s AND (%(all)s OR m.patient_id = ANY(%(pids)s))
      AND (m.granted_by_id IS DISTINCT FROM m.user_id OR m.confirmed_by_id IS NOT NULL)
), desired AS (
    -- one row per (user, patient): prefer a basis valid now, then the longest-lasting one.
    SELECT DISTINCT ON (user_id, patient_id) user_id, patient_id, basis, vf, vu, prov, fact_by
    FROM src
    ORDER BY user_id, patient_id, (vf <= %(now)s) DESC, vu DESC NULLS FIRST, vf
)
"""

_UPSERT = (
    _DESIRED
    + """
INSERT INTO access_caregrant (user_id, permission_id, content_object_id, basis, valid_from, valid_until, provenance,
                              fact_created_by_id)
SELECT user_id, %(perm)s, patient_id, basis, vf, vu, prov, fact_by FROM desired
ON CONFLICT (user_id, permission_id, content_object_id) DO UPDATE
SET basis = EXCLUDED.basis, valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until,
    provenance = EXCLUDED.provenance, fact_created_by_id = EXCLUDED.fact_created_by_id
WHERE (access_caregrant.basis, access_caregrant.valid_from, access_caregrant.valid_until,
       access_caregrant.provenance, access_caregrant.fact_created_by_id)
      IS DISTINCT FROM (EXCLUDED.basis, EXCLUDED.valid_from, EXCLUDED.valid_until, EXCLUDED.provenance,
                        EXCLUDED.fact_created_by_id)
"""
)

_DELETE = (
    _DESIRED  # noqa: S608 - constant SQL; values are bound parameters
    + """
DELETE FROM access_caregrant g
WHERE (%(all)s OR g.content_object_id = ANY(%(pids)s))
  AND NOT EXISTS (SELECT 1 FROM desired d WHERE d.user_id = g.user_id AND d.patient_id = g.content_object_id)
"""
)

_perm_id: int | None = None


def access_medical_permission_id() -> int:
    """Looked up each time (one indexed query): a cached id goes stale when permissions are recreated."""
    return Permission.objects.get(content_type__app_label="patients", codename="access_medical").pk


def _params(patient_ids: list[int] | None, now: datetime) -> dict:
    return {
        "days": settings.DPI_POST_DISCHARGE_DAYS,
        "lead": APPOINTMENT_LEAD_DAYS,
        "roles": [r.value for r in CARE_STAFF_ROLES],
        "clinical": [r.value for r in CLINICAL_ROLES],
        "today": timezone.localdate(now),
        "now": now,
        "all": patient_ids is None,
        "pids": list(patient_ids or []),
        "perm": access_medical_permission_id(),
    }


def care_grants_recompute(*, patient_ids: list[int] | None, now: datetime | None = None) -> tuple[int, int]:
    """Make the grants of these patients (``None``: every patient) equal to what the rules justify.

    Returns (rows inserted or changed, rows deleted).
    """
    params = _params(patient_ids, now or timezone.now())
    with connection.cursor() as cur:
        cur.execute(_UPSERT, params)
        changed = cur.rowcount
        cur.execute(_DELETE, params)
        deleted = cur.rowcount
    return changed, deleted


def care_grants_for_unit_recompute(*, unit_ids: list[int], now: datetime | None = None) -> None:
    """After staff join or leave units: recompute the patients with a recent encounter there."""
    now = now or timezone.now()
    with connection.cursor() as cur:
        cur.execute(
            """SELECT DISTINCT patient_id FROM patients_encounter WHERE unit_id = ANY(%s)
               AND ("end" IS NULL OR "end" + make_interval(days => %s) > %s)""",
            [unit_ids, settings.DPI_POST_DISCHARGE_DAYS, now],
        )
        pids = [r[0] for r in cur.fetchall()]
    # Grants of users who left the unit are removed by the recompute of those same patients.
    care_grants_recompute(patient_ids=pids, now=now)


def care_grants_sweep(*, now: datetime | None = None) -> int:
    """Remove obsolete access permissions (expired validity). Run by Celery beat."""
    now = now or timezone.now()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM access_caregrant WHERE valid_until IS NOT NULL AND valid_until <= %s", [now])
        return cur.rowcount
