"""Reads of access records that audit's verification needs (registered in ``audit.verification.record_checks``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from django.db import connection

from access.models import EmergencyAccess
from dpi.crypto import blind_index
from patients.models import Patient

JUSTIFICATION_DOMAIN = "break_glass_reason"


def justification_digest(text: str) -> str:
    """Keyed digest of a break-the-glass justification, kept in its chained event: the text itself is clinical
    (encrypted in the record), the key is the keyring's, so whoever holds only the database can neither read it
    from the trail nor make another justification match it."""
    return blind_index(text, domain=JUSTIFICATION_DOMAIN)


def emergency_accesses_against_trail() -> Iterator[str]:
    """Each break-the-glass against the event chained when it was opened (who, patient, reason category,
    expiry, justification digest) and its review against the last review event: what a superuser edited,
    created or deleted in ``access_emergencyaccess`` is named."""
    opened: dict[int, tuple[int | None, int | None, dict]] = {}
    reviews: dict[int, tuple[str, str | None]] = {}
    with connection.cursor() as cur:
        cur.execute("SELECT resource_id, actor_id, patient_id, details FROM audit_accessevent WHERE action = "
                    "'break_glass' AND outcome = 'allowed' AND resource_type = 'emergencyaccess' "
                    "AND resource_id ~ '^[0-9]+$'")
        for resource_id, actor_id, patient_id, details in cur.fetchall():
            details = json.loads(details) if isinstance(details, str) else details  # jsonb comes as text
            opened[int(resource_id)] = (actor_id, patient_id, details if isinstance(details, dict) else {})
        cur.execute("SELECT (details->>'emergency_access_id')::bigint, details->>'status', details->>'comment' "
                    "FROM audit_accessevent WHERE action = 'permission_change' AND basis = 'break_glass_review' "
                    "AND outcome = 'allowed' AND details->>'emergency_access_id' ~ '^[0-9]+$' ORDER BY occurred_at, id")
        for access_id, status, comment in cur.fetchall():
            reviews[access_id] = (status or "", comment)
        cur.execute(f"SELECT id FROM {Patient._meta.db_table}")  # noqa: S608
        patients = {row[0] for row in cur.fetchall()}
    seen: set[int] = set()
    for access in EmergencyAccess.objects.order_by("pk").iterator():
        seen.add(access.pk)
        name = f"break-the-glass #{access.pk}"
        event = opened.get(access.pk)
        if event is None:
            yield f"{name} has no event in the trail: created in the database, outside the application"
            continue
        actor_id, patient_id, details = event
        if actor_id != access.user_id:
            yield f"{name}: its user differs from the one the trail recorded (user {actor_id}): altered"
        if patient_id != access.patient_id:
            yield f"{name}: its patient differs from the one the trail recorded (patient {patient_id}): altered"
        if details.get("reason_category") not in (None, access.reason_category):
            yield (f"{name}: its reason category {access.reason_category} differs from the trail's "
                   f"{details['reason_category']}: altered")
        if details.get("expires_at") and datetime.fromisoformat(details["expires_at"]) != access.expires_at:
            yield (f"{name}: it expires {access.expires_at:%Y-%m-%d %H:%M} but the trail says "
                   f"{details['expires_at']}: altered")
        if details.get("reason_digest") and justification_digest(access.reason_text) != details["reason_digest"]:
            yield f"{name}: its justification is not the one given when it was opened: altered"
        review = reviews.get(access.pk)
        if review is None:
            if access.review_status != EmergencyAccess.Review.PENDING:
                yield (f"{name}: review {access.review_status} but the trail holds no review of it: set in the "
                       f"database")
        else:
            status, comment = review
            if access.review_status != status:
                yield f"{name}: review {access.review_status} but the trail's last review says {status}: altered"
            elif comment is not None and access.review_comment != comment:
                yield f"{name}: the DPO's review comment differs from the trail's: altered"
    for pk in sorted(set(opened) - seen):
        if opened[pk][1] in patients:  # a patient's file destroyed by retention takes its accesses with it
            yield f"break-the-glass #{pk}, opened in the trail, was deleted while its patient's file is still here"
