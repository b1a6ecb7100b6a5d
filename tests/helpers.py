"""Test helpers."""

from __future__ import annotations

from audit.models import AccessEvent


def audit_events(**filters) -> list[AccessEvent]:
    """Events visible from both connections (in a rolled-back test, denied events live on `audit`)."""
    seen: dict[int, AccessEvent] = {}
    for alias in ("default", "audit"):
        for event in AccessEvent.objects.using(alias).filter(**filters).order_by("id"):
            seen[event.id] = event
    return [seen[k] for k in sorted(seen)]
