"""Scopes of API credentials: ``<category>:<action>`` (a data category of the authorization matrix and an
action), plus ``audit:view`` for reading the access trace (DPO acting through a client).

A scope narrows what a credential may ask for; it never widens the rights of the account the gate sees.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from access.policy import Action, Category

AUDIT_VIEW = "audit:view"

ALL_SCOPES: tuple[str, ...] = tuple(f"{c.value}:{a.value}" for c in Category for a in Action) + (AUDIT_VIEW,)


def scope(category: Category | str, action: Action | str) -> str:
    return f"{category}:{action}"


def validate_scopes(values: list[str]) -> list[str]:
    """Normalised, de-duplicated scopes; ValidationError naming the unknown ones."""
    if not isinstance(values, list | tuple):
        raise ValidationError({"scopes": ["A list of scopes like 'medical:view'."]})
    cleaned = sorted({str(v).strip().lower() for v in values if str(v).strip()})
    unknown = [v for v in cleaned if v not in ALL_SCOPES]
    if unknown:
        raise ValidationError({"scopes": [f"Unknown scope: {v}" for v in unknown]})
    return cleaned
