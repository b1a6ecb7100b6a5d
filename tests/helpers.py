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


def page_queries(ctx) -> int:
    """Queries a page made, less the session's activity stamp (written at most once a minute, whenever that
    falls: not the page's doing) and savepoints."""
    return len([q for q in ctx.captured_queries if "django_session" not in q["sql"] and "SAVEPOINT" not in q["sql"]])
