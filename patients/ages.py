"""A patient's age as a clinician writes it: years from one year old, months below, days below one month."""

from __future__ import annotations

from datetime import date

from django.utils.translation import ngettext


def completed_months(born: date, on: date) -> int:
    """Whole months from ``born`` to ``on`` (a month is complete on the same day number of a later month)."""
    return (on.year - born.year) * 12 + on.month - born.month - (on.day < born.day)


def age_label(born: date | None, on: date) -> str:
    """"47 ans", "3 mois", "12 jours" (in the active language); "" without a birth date or before it."""
    if born is None or on < born:
        return ""
    months = completed_months(born, on)
    if months >= 12:
        years = months // 12
        return ngettext("%(n)d year", "%(n)d years", years) % {"n": years}
    if months >= 1:
        return ngettext("%(n)d month", "%(n)d months", months) % {"n": months}
    days = (on - born).days
    return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}
