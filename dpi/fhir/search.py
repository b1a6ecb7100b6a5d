"""FHIR R4 search semantics, shared by every resource type (see docs/api.md, "FHIR search").

- date: prefixes eq ne gt ge lt le sa eb, partial dates (YYYY, YYYY-MM, YYYY-MM-DD) and date-times; a value is
  the range it covers (``2024`` is the whole year) and is compared with the target's range as the specification
  says. Bounds beyond the calendar (``le9999-12-31``) are open ends, never errors.
- token: ``code``, ``system|code``, ``system|`` and ``|code``; a comma is an OR list.
- string: starts-with ignoring case, ``:exact`` (exact match) and ``:contains`` where declared.
- reference: ``Patient/<id>`` or ``<id>``.
Repeating a parameter is an AND; an unknown parameter is refused under ``Prefer: handling=strict`` and dropped
(from the search and from the ``self`` link) under the default lenient handling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework import exceptions

DATE_PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb")
STRING_MODIFIERS = ("exact", "contains")
# Result parameters (not filters) understood by every search.
RESULT_PARAMETERS = ("_count", "_sort", "_total", "_summary", "_offset", "_format")
SP = "http://hl7.org/fhir/SearchParameter/"


def bad(param: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({param: [message]})


# --- values -------------------------------------------------------------------------------------------------
def split_or(raw: str) -> list[str]:
    """A comma-separated OR list; ``\\,`` is a literal comma."""
    parts, current, escaped = [], [], False
    for char in raw:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def token(raw: str) -> tuple[str | None, str]:
    """``system|code`` -> (system, code); ``code`` -> (None, code); ``|code`` -> ("", code)."""
    if "|" in raw:
        system, _, code = raw.partition("|")
        return system, code
    return None, raw


_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d{1,9})?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class DateRange:
    """The range a search value covers: [low, high). ``None`` is an open end (beyond the calendar)."""

    low: datetime | None
    high: datetime | None
    has_time: bool

    def dates(self) -> tuple[date | None, date | None]:
        """The same range in whole days, for date (not date-time) columns."""
        low = self.low.date() if self.low else None
        if self.high is None:
            return low, None
        high = self.high.date()
        if self.high.timetz().replace(tzinfo=None) != datetime.min.time():
            high = _add_days(high, 1)
        return low, high


def _add_days(day: date, days: int) -> date | None:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return None


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def parse_date(raw: str, param: str) -> tuple[str, DateRange]:
    prefix = "eq"
    if raw[:2] in DATE_PREFIXES:
        prefix, raw = raw[:2], raw[2:]
    match = _DATE.match(raw)
    if not match:
        raise bad(param, "A date YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][Z|+hh:mm], with an optional "
                         "prefix eq, ne, gt, ge, lt, le, sa, eb.")
    g = match.groupdict()
    tz = timezone.get_current_timezone()
    if g["tz"]:
        if g["tz"] == "Z":
            tz = UTC
        else:
            sign = 1 if g["tz"][0] == "+" else -1
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
            if hours > 23 or minutes > 59:
                raise bad(param, "Not a valid time zone offset.")
            tz = dt_timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        year = int(g["y"])
        if g["H"] is not None:
            low = datetime(year, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"] or 0), tzinfo=tz)
            step = timedelta(seconds=1) if g["S"] is not None else timedelta(minutes=1)
            try:
                high: datetime | None = low + step
            except OverflowError:
                high = None
            return prefix, DateRange(low, high, True)
        if g["d"] is not None:
            start = date(year, int(g["m"]), int(g["d"]))
            end = _add_days(start, 1)
        elif g["m"] is not None:
            start = date(year, int(g["m"]), 1)
            y2, m2 = _next_month(year, int(g["m"]))
            end = date(y2, m2, 1) if y2 <= 9999 else None
        else:
            start = date(year, 1, 1)
            end = date(year + 1, 1, 1) if year < 9999 else None
    except ValueError as exc:
        raise bad(param, "Not a calendar date.") from exc

    def midnight(day: date | None) -> datetime | None:
        return None if day is None else datetime(day.year, day.month, day.day, tzinfo=tz)

    return prefix, DateRange(midnight(start), midnight(end), False)


def _date_q(prefix: str, rng: DateRange, start: str, end: str | None, *, is_date: bool) -> Q:
    """Compare a target (a point ``start``, or a period ``start``..``end`` with a null end meaning "ongoing")
    with the search range, for one prefix (FHIR R4 3.1.1.5.6 date)."""
    low, high = rng.dates() if is_date else (rng.low, rng.high)
    point = end is None
    end = end or start
    everything, nothing = Q(pk__isnull=False), Q(pk__isnull=True)

    def ge(column: str, bound) -> Q:
        return Q(**{f"{column}__gte": bound}) if bound is not None else Q(**{f"{column}__isnull": False})

    def lt(column: str, bound) -> Q:
        return Q(**{f"{column}__lt": bound}) if bound is not None else Q(**{f"{column}__isnull": False})

    ongoing = nothing if point else Q(**{f"{end}__isnull": True})
    if prefix in ("eq", "ne"):
        inside = ge(start, low) & (lt(end, high) if high is not None else Q(**{f"{end}__isnull": False}))
        # ne: a target without the value (a null column) matches neither eq nor ne.
        return (~inside & Q(**{f"{start}__isnull": False})) if prefix == "ne" else inside
    if prefix == "gt":  # the range above the value overlaps the target
        return nothing if high is None else (ge(end, high) | ongoing)
    if prefix == "sa":  # the target starts after the value
        return nothing if high is None else ge(start, high)
    if prefix == "ge":
        return ge(end, low) | ongoing if low is not None else everything
    if prefix == "lt":  # the range below the value overlaps the target
        return nothing if low is None else lt(start, low)
    if prefix == "eb":  # the target ends before the value
        return nothing if low is None else lt(end, low)
    # le
    return lt(start, high) if high is not None else everything


# --- parameter declarations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A declared search parameter. ``build(values, modifier)`` returns the filter for one occurrence, where
    ``values`` is the OR list (already split)."""

    name: str
    type: str  # date | token | string | reference
    definition: str
    documentation: str
    build: Callable[[list[str], str, str], Q] | None = None  # (values, modifier, param) -> Q
    modifiers: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    sort: str = ""  # column when the parameter is also a _sort key


def date_param(name: str, definition: str, start: str, end: str | None = None, *, is_date: bool = False,
               documentation: str = "") -> Param:
    def build(values: list[str], modifier: str, param: str) -> Q:
        q = Q(pk__isnull=True)
        for raw in values:
            prefix, rng = parse_date(raw, param)
            q |= _date_q(prefix, rng, start, end, is_date=is_date)
        return q

    return Param(name, "date", definition, documentation or f"Date with prefixes {', '.join(DATE_PREFIXES)}; "
                 "partial dates YYYY and YYYY-MM.", build, prefixes=DATE_PREFIXES, sort=start)


class UnknownCode(Exception):
    """A code outside a closed value set: the request is wrong (400), not the server."""

    def __init__(self, code: str, allowed: list[str]):
        super().__init__(code)
        self.code, self.allowed = code, allowed


def token_param(name: str, definition: str, match: Callable[[str | None, str], Q | None], *,
                documentation: str = "", sort: str = "") -> Param:
    """``match(system, code)`` returns the filter for one token, or None when it cannot match anything; it raises
    ``UnknownCode`` for a code outside a closed value set (a 400 naming the parameter)."""

    def build(values: list[str], modifier: str, param: str) -> Q:
        q = Q(pk__isnull=True)
        for raw in values:
            system, code = token(raw)
            try:
                one = match(system, code)
            except UnknownCode as exc:
                raise bad(param, f"Unknown code {exc.code[:50]!r}: one of {', '.join(exc.allowed)}.") from exc
            if one is not None:
                q |= one
        return q

    return Param(name, "token", definition, documentation or "Token: code or system|code; comma for OR.", build,
                 sort=sort)


def coded(column: str, systems: tuple[str, ...], *, translate: Callable[[str], Any] | None = None,
          codes: dict[str, Any] | None = None, closed: bool = False) -> Callable[[str | None, str], Q | None]:
    """A token matcher on one column whose codes belong to ``systems`` ("" = codes sent without a system).
    ``closed``: ``codes`` is the whole value set (a required binding), and any other code is refused."""

    def match(system: str | None, code: str) -> Q | None:
        if system is not None and system not in systems:
            return None
        if code == "":
            return Q(pk__isnull=False) if system else None  # "system|": any code of that system
        if codes is not None:
            if code not in codes:
                if closed:
                    raise UnknownCode(code, sorted(codes))
                return None
            value = codes[code]
            return Q(**{f"{column}__in": value}) if isinstance(value, list | tuple | set) else Q(**{column: value})
        return Q(**{column: translate(code) if translate else code})

    return match


def string_param(name: str, definition: str, columns: tuple[str, ...], *, documentation: str = "",
                 sort: str = "") -> Param:
    def build(values: list[str], modifier: str, param: str) -> Q:
        q = Q(pk__isnull=True)
        for value in values:
            if len(value) > 100:
                raise bad(param, "At most 100 characters.")
            lookup = {"": "istartswith", "exact": "exact", "contains": "icontains"}[modifier]
            for column in columns:
                q |= Q(**{f"{column}__{lookup}": value})
        return q

    return Param(name, "string", definition, documentation or "String: starts with, ignoring case; :exact for an "
                 "exact match, :contains for a substring.", build, modifiers=STRING_MODIFIERS, sort=sort)


def id_param() -> Param:
    def build(values: list[str], modifier: str, param: str) -> Q:
        ids = [int(v) for v in values if v.isdigit() and 1 <= int(v) <= 2**53]
        return Q(pk__in=ids)

    return Param("_id", "token", SP + "Resource-id", "Logical id; comma for OR.", build, sort="pk")


def reference_param(name: str, definition: str, documentation: str = "") -> Param:
    """Patient reference: handled by the view (each patient goes through the gate)."""
    return Param(name, "reference", definition, documentation or "Patient/<id> or <id>; comma for OR.")


@dataclass
class Query:
    """A parsed search: filters (AND of ORs), paging, sorting, and the canonical parameters for links."""

    filters: list[Q] = field(default_factory=list)
    # The patients every patient/subject occurrence allows (AND of the occurrences, each an OR list), None
    # without any; ``named_patients`` every patient named (each goes through the gate).
    patients: list[int] | None = None
    named_patients: list[int] = field(default_factory=list)
    patient_param: str = ""
    count: int = 20
    offset: int = 0
    sort: list[str] = field(default_factory=list)
    sort_raw: str = ""
    total: bool = True
    summary_count: bool = False
    kept: list[tuple[str, str]] = field(default_factory=list)  # (key, value) echoed in links, in request order
    used: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # unknown parameters left out (lenient handling)


def strict_handling(request) -> bool:
    prefer = request.headers.get("Prefer", "")
    return any(part.strip().replace(" ", "") == "handling=strict" for part in prefer.split(";") + prefer.split(","))


def parse(request, params: dict[str, Param], *, default_count: int, max_count: int, max_id: int,
          sort_default: str = "-pk") -> Query:
    strict = strict_handling(request)
    query = Query(count=default_count)
    patient_groups: list[set[int]] = []
    for key, values in request.query_params.lists():
        name, _, modifier = key.partition(":")
        if name in RESULT_PARAMETERS:
            if modifier:
                raise bad(key, "Result parameters take no modifier.")
            _result_parameter(query, name, values[-1], params, max_count=max_count)
            continue
        spec = params.get(name)
        if spec is None:
            if strict:
                raise bad(key, "Unknown search parameter (Prefer: handling=strict); see /fhir/metadata.")
            query.ignored.append(key)
            continue  # lenient: ignored, and left out of the self link
        if modifier and modifier not in spec.modifiers:
            raise bad(key, f"Modifier :{modifier} is not supported on {name}"
                           + (f" (supported: {', '.join(spec.modifiers)})." if spec.modifiers else "."))
        for raw in values:
            if raw == "":
                continue  # an empty parameter is ignored (FHIR R4 3.1.1.4)
            parts = split_or(raw)
            if spec.type == "reference":
                group = set()
                for part in parts:
                    value = part.split("/", 1)[1] if part.startswith("Patient/") else part
                    if not value.isdigit() or not 1 <= int(value) <= max_id:
                        raise bad(name, "A patient id or Patient/<id>.")
                    group.add(int(value))
                patient_groups.append(group)
                query.patient_param = query.patient_param or name
            else:
                assert spec.build is not None
                query.filters.append(spec.build(parts, modifier, key))
            query.kept.append((key, raw))
            if name not in query.used:
                query.used.append(name)
    if patient_groups:
        # Repeating the parameter is an AND, as for every other parameter (a comma is the OR).
        query.patients = sorted(set.intersection(*patient_groups))
        query.named_patients = sorted(set.union(*patient_groups))
    if not query.sort:
        query.sort = [sort_default]
    if "pk" not in {s.lstrip("-") for s in query.sort}:
        query.sort.append("-pk" if query.sort[0].startswith("-") else "pk")
    return query


def _result_parameter(query: Query, name: str, raw: str, params: dict[str, Param], *, max_count: int) -> None:
    if name == "_count":
        if not raw.isdigit() or not 0 <= int(raw) <= max_count:
            raise bad("_count", f"An integer from 0 to {max_count}.")
        query.count = int(raw)
    elif name == "_offset":
        if not raw.isdigit() or int(raw) > 1_000_000:
            raise bad("_offset", "A non-negative integer (at most 1000000).")
        query.offset = int(raw)
    elif name == "_sort":
        keys = []
        for part in raw.split(","):
            desc = part.startswith("-")
            spec = params.get(part.lstrip("-"))
            if spec is None or not spec.sort:
                sortable = sorted(n for n, p in params.items() if p.sort)
                raise bad("_sort", f"Cannot sort on {part.lstrip('-')!r}; sortable: {', '.join(sortable)}.")
            keys.append(("-" if desc else "") + spec.sort)
        query.sort = keys
        query.sort_raw = raw
    elif name == "_total":
        if raw not in ("none", "estimate", "accurate"):
            raise bad("_total", "none, estimate or accurate.")
        query.total = raw != "none"
    elif name == "_summary":
        if raw not in ("count", "false"):
            raise bad("_summary", "Only _summary=count (or false) is supported.")
        query.summary_count = raw == "count"
    # _format is checked before the search (406 for formats not served).


def apply(queryset: QuerySet, query: Query) -> QuerySet:
    for condition in query.filters:
        queryset = queryset.filter(condition)
    return queryset


def link_params(query: Query, *, offset: int | None) -> list[tuple[str, str]]:
    """The parameters identifying one page: the kept filters, then _count, _sort, _total/_summary, _offset."""
    out = list(query.kept)
    out.append(("_count", str(query.count)))
    if query.sort_raw:
        out.append(("_sort", query.sort_raw))
    if not query.total:
        out.append(("_total", "none"))
    if query.summary_count:
        out.append(("_summary", "count"))
    if offset:
        out.append(("_offset", str(offset)))
    return out
