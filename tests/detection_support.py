"""Helpers of the detection tests: access events at chosen times, and one detector pass over a day."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from access.models import StaffProfile
from audit.detection import services
from audit.models import AccessEvent


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Import into a test module: the cast's passwords are hashed with MD5 there (Argon2 costs seconds)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(settings.TIME_ZONE))


def day_ago(n: int) -> date:
    return timezone.localdate() - timedelta(days=n)


def ev(user, patient=None, *, at: datetime, action: str = "view", outcome: str = "allowed",
       basis: str = "care:encounter", category: str = "medical", flags: list[str] | None = None,
       details: dict | None = None, role: str | None = None, unit: str | None = None,
       resource_type: str = "") -> AccessEvent:
    """An access event as the gate records it, but at ``at`` (history for the baselines)."""
    profile = StaffProfile.objects.filter(user=user).prefetch_related("units").first()
    extra = dict(details or {})
    if flags:
        extra["flags"] = flags
    patient_id = patient if isinstance(patient, int) or patient is None else patient.pk
    return AccessEvent.objects.create(
        occurred_at=at, actor_id=user.pk, actor_username=user.username,
        actor_role=role if role is not None else (profile.role if profile else ""),
        actor_unit=unit if unit is not None else (profile.unit_label if profile else ""),
        patient_id=patient_id, category=category if patient_id else "administrative",
        action=action, outcome=outcome, basis=basis, channel="web", details=extra, resource_type=resource_type,
    )


def run(day: date, day_to: date | None = None):
    """One replay pass over ``day`` (to ``day_to``), keeping every rule hit."""
    return services.detect_range(day_from=day, day_to=day_to or day, collect_hits=True)


def hits(summary, rule: str, *, user=None, patient=None, day: date | None = None) -> list[dict]:
    rows = [h for p in summary.passes for h in p.hit_rows if h["rule"] == rule]
    if day is not None:
        rows = [h for h in rows if h["day"] == day]
    if user is not None:
        rows = [h for h in rows if h["actor_id"] == user.pk]
    if patient is not None:
        pid = patient if isinstance(patient, int) else patient.pk
        rows = [h for h in rows if h["patient_id"] == pid]
    return rows


def history(user, *, days: range, hours: range = range(9, 17), per_hour: int = 2, patient=None) -> None:
    """Ordinary past activity: ``per_hour`` explained events each hour of ``hours``, on each day ``days`` ago."""
    for n in days:
        d = day_ago(n)
        for h in hours:
            for m in range(per_hour):
                ev(user, patient, at=local(d, h, m * 10), action="view" if patient else "login")
