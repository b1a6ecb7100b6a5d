"""Template filters that put the trace's and the accounts' codes into words (audit.labels)."""

from django import template

from audit import labels

register = template.Library()


@register.filter
def role_label(code: str) -> str:
    """``physician`` -> "médecin"."""
    return labels.role_label(code or "")
