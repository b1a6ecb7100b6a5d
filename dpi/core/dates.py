"""Plausible dates, one rule for every channel (REST, HL7, forms).

Years 1900 to 2100 only: a feed sending year 237 or 2500 is broken, and before 1911 the Paris zone has an
offset in seconds that RFC 3339 cannot write. No birth date is before 1900-01-01 (nobody alive was born earlier).
"""

from __future__ import annotations

from datetime import date

from django.utils.translation import gettext

MIN_YEAR = 1900
MAX_YEAR = 2100
EARLIEST_BIRTH_DATE = date(MIN_YEAR, 1, 1)


def year_error(value: date) -> str:
    """Why ``value`` (a date or datetime) is out of bounds, or '' when it is within them (in the active
    language: the REST API's caller's; HL7 answers in English)."""
    if MIN_YEAR <= value.year <= MAX_YEAR:
        return ""
    return gettext("Out of range (years %(min)d to %(max)d).") % {"min": MIN_YEAR, "max": MAX_YEAR}
