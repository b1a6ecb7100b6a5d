"""Recording access events. The gate (access.gate) and the authentication code call ``event_record``.

Allowed accesses are recorded on the request's own connection, inside its transaction: the trace
commits if and only if the access does. Denied accesses are recorded on the separate ``audit`` connection
(autocommit), so the trace survives the rollback of the refused request.
"""

from __future__ import annotations

from typing import Any

from audit import context
from audit.models import AccessEvent


def event_record(
    *,
    action: str,
    outcome: str,
    actor: Any = None,
    actor_role: str = "",
    actor_unit: str = "",
    patient_id: int | None = None,
    category: str = "",
    resource_type: str = "",
    resource_id: str | int = "",
    basis: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
    independent: bool | None = None,
) -> AccessEvent:
    """Write one event. ``independent`` (default: True when denied) writes it outside the current transaction."""
    ctx = context.current()
    if independent is None:
        independent = outcome == AccessEvent.Outcome.DENIED
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    username = getattr(actor, "username", "") if actor is not None else ""
    event = AccessEvent(
        actor_id=actor_id,
        actor_username=username or "",
        actor_role=actor_role[:100],
        actor_unit=actor_unit[:100],
        patient_id=patient_id,
        category=category,
        resource_type=resource_type,
        resource_id=str(resource_id)[:64],
        action=action,
        outcome=outcome,
        basis=basis[:40],
        reason=reason[:300],
        channel=ctx.channel,
        request_id=ctx.request_id,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        details=details or {},
    )
    event.save(using="audit" if independent else "default", force_insert=True)
    return event
