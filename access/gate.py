"""The gate: the one function that decides every access to patient data, and records it.

Every view, admin page, API endpoint, export, search and worker reaches patient data through
``authorize`` / ``require`` (one patient), ``visible_patients`` (searches) or ``authorize_system``
(background tasks). Deny by default: anything not explicitly allowed by the matrix (access.policy) *and*
the patient-level rules below is refused. Each decision, allowed or denied, is written by ``audit``:
allowed ones in the caller's transaction, denied ones on an independent connection so they survive the
rollback of the refused request.

Patient-level rules, in order:
1. the account is active, within its contract dates, signed in the way its kind allows (integration
   accounts by token only), and (for roles reading medical data and privileged roles) its session has a
   verified second factor;
2. the role may perform the action on the data category at all (matrix);
3. identity visibility: a restricted patient exists only for its care team, an active break-the-glass, or a
   purpose the policy names for the role (``RESTRICTED_PURPOSES``); anyone else gets ``deny:not_visible``,
   which every channel answers exactly as a missing patient (404). ``visible_patients`` applies the same rule
   to searches;
4. for medical and restricted categories, the role needs a care relationship (CareGrant valid now), or an
   active break-the-glass;
5. a patient's objection to this professional denies even with a care relationship (break-the-glass
   remains possible and is flagged);
6. (checked right after the matrix) nobody opens their own patient file through their professional account
   (``deny:own_record``), whatever their role and care relationships: staff treated here read their file
   through the patient's right of access.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from access.policy import (
    BREAK_GLASS_ROLES,
    EXACT_LOOKUP_MINUTES,
    EXACT_LOOKUP_ROLES,
    MEDICAL_ROLES,
    PRIVILEGE_GROUPS,
    PRIVILEGED_ROLES,
    TOKEN_ONLY_ROLES,
    Action,
    Category,
    Role,
    allowed_by_matrix,
    needs_care_relationship,
    restricted_purpose,
)
from audit.services import (
    EVENT_COLUMNS,
    STEP_COLUMNS,
    current_read_trace,
    event_params,
    event_record,
    event_step_params,
)
from audit.services import read_trace as read_trace  # for the channels: a read's trace committed beside it
from dpi import metrics
from dpi.converters import MAX_ID
from dpi.prepared import prepared_cursor


@dataclass(frozen=True)
class Decision:
    allowed: bool
    basis: str  # why it was allowed (e.g. "care:encounter", "break_glass", "role") or denied ("deny:...")
    reason: str = ""
    role: str = ""
    emergency_access_id: int | None = None
    can_break_glass: bool = False
    flags: tuple[str, ...] = field(default_factory=tuple)
    # The words ``reason`` was made of, when it was made from a template (``MATRIX_REASON``): the caller reads
    # the reason in its language from them (``reason_words``), the trace keeps ``reason`` in English.
    reason_args: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


# Refusals that must look exactly like a missing patient: the user may not know the patient exists.
HIDDEN_BASES = frozenset({"deny:not_found", "deny:not_visible"})


class AccessDenied(PermissionDenied):
    def __init__(self, decision: Decision):
        super().__init__(decision.reason or gettext_noop("access denied"))
        self.decision = decision


# The trace keeps each reason in English (gettext_noop marks them for translation); the caller reads them in its
# language (``reason_words``).
MATRIX_REASON = gettext_noop("role %(role)s may not %(action)s %(category)s data")


def reason_words(decision: Decision) -> str:
    """The refusal's reason in the active language, for the caller (the access event keeps the English)."""
    if decision.reason_args:
        return gettext(MATRIX_REASON) % dict(decision.reason_args)
    return gettext(decision.reason or "access denied")


class PatientNotFound(Http404):
    """A refusal that answers as a missing patient (404): unknown, or restricted and not visible."""

    def __init__(self, decision: Decision):
        super().__init__("no such patient")
        self.decision = decision


def is_hidden(decision: Decision) -> bool:
    return not decision.allowed and decision.basis in HIDDEN_BASES


# --- who is asking ----------------------------------------------------------------------------------------
def profile_of(user: Any):
    """The user's StaffProfile (cached on the user object for the request), or None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    cached = getattr(user, "_dpi_profile", False)
    if cached is not False:
        return cached
    from access.models import StaffProfile

    profile = StaffProfile.objects.filter(user_id=user.pk).prefetch_related("units").first()
    user._dpi_profile = profile
    return profile


def role_of(user: Any) -> Role | None:
    profile = profile_of(user)
    if profile is None:
        return None
    try:
        return Role(profile.role)
    except ValueError:
        return None


def unit_of(user: Any) -> str:
    profile = profile_of(user)
    if profile is None:
        return ""
    label = getattr(profile, "_dpi_unit_label", None)
    if label is None:  # the units are prefetched with the profile, cached for the request with it
        label = profile._dpi_unit_label = profile.unit_label
    return label


def requires_second_factor(role: Role | None) -> bool:
    if role is None:
        return False
    if role in TOKEN_ONLY_ROLES:
        return False  # no interactive session at all (see token_only_problem)
    if role in MEDICAL_ROLES or role in PRIVILEGED_ROLES:
        return True
    return role == Role.RECEPTION and settings.DPI_RECEPTION_REQUIRES_OTP


def holds_privilege(user: Any) -> bool:
    """Privileges held besides the role (``access.policy.PRIVILEGE_GROUPS``): the superuser or admin-site flag, a
    privilege group, or any model permission of the account or its groups. Read once per request (cached on the
    user object, like its profile)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        return True
    cached = getattr(user, "_dpi_privileged", None)
    if cached is None:
        from django.contrib.auth import get_user_model

        cached = user._dpi_privileged = get_user_model().objects.filter(
            Q(groups__name__in=PRIVILEGE_GROUPS) | Q(user_permissions__isnull=False)
            | Q(groups__permissions__isnull=False), pk=user.pk,
        ).exists()
    return cached


def user_requires_second_factor(user: Any) -> bool:
    """Whether this account must have a verified second factor on every page and API call: its role asks for one
    (``requires_second_factor``), or it holds a privilege besides its role (``holds_privilege``). Asked on every
    request from what the account holds now, so a privilege given to a session already signed in with a password
    alone takes effect at its next request."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return requires_second_factor(role_of(user)) or holds_privilege(user)


TOKEN_ATTR = "_dpi_via_token"  # noqa: S105 - an attribute name, not a secret


def mark_token_principal(user: Any) -> None:
    """Called by the API's token authentication: this request's user came with a bearer token."""
    setattr(user, TOKEN_ATTR, True)


def is_token_only(user: Any) -> bool:
    return role_of(user) in TOKEN_ONLY_ROLES


def _account_problem(user: Any, role: Role | None, now: datetime) -> tuple[str, str] | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return "deny:anonymous", gettext_noop("not signed in")
    if not user.is_active:
        return "deny:inactive", gettext_noop("account disabled")
    profile = profile_of(user)
    if profile is None or role is None:
        return "deny:no_role", gettext_noop("account has no care role")
    if role in TOKEN_ONLY_ROLES and not getattr(user, TOKEN_ATTR, False):
        return "deny:token_only", gettext_noop("integration accounts act by API token only")
    today = timezone.localdate(now)
    if profile.start_date and profile.start_date > today:
        return "deny:contract", gettext_noop("account not yet valid")
    if profile.end_date and profile.end_date < today:
        return "deny:contract", gettext_noop("account past its end date")
    verified = getattr(user, "is_verified", None)
    if getattr(user, TOKEN_ATTR, False) or not callable(verified) or verified():
        return None
    if requires_second_factor(role) or holds_privilege(user):
        return "deny:second_factor", gettext_noop("a verified second factor is required")
    return None


# --- the decision -----------------------------------------------------------------------------------------
_PATIENT_FACTS = """
SELECT
  p.confidentiality,
  (SELECT g.basis FROM access_caregrant g
    WHERE g.user_id = %(u)s AND g.content_object_id = p.id AND g.valid_from <= %(now)s
      AND (g.valid_until IS NULL OR g.valid_until > %(now)s) LIMIT 1) AS care_basis,
  EXISTS (SELECT 1 FROM access_patientobjection o WHERE o.patient_id = p.id AND o.professional_id = %(u)s)
    AS objected,
  (SELECT b.id FROM access_emergencyaccess b
    WHERE b.user_id = %(u)s AND b.patient_id = p.id AND b.started_at <= %(now)s AND b.expires_at > %(now)s
    ORDER BY b.expires_at DESC LIMIT 1) AS break_glass_id
FROM patients_patient p WHERE p.id = %(p)s
"""


def _patient_facts(user_id: int, patient_id: int, now: datetime) -> tuple[str, str | None, bool, int | None] | None:
    """One indexed round trip: confidentiality, care basis, objection, active break-the-glass (a prepared
    statement: planned once per connection)."""
    with prepared_cursor() as cur:
        cur.execute(_PATIENT_FACTS, {"u": user_id, "p": patient_id, "now": now})
        return cur.fetchone()


def decide(
    user: Any,
    *,
    patient_id: int | None,
    category: Category | str,
    action: Action | str,
    now: datetime | None = None,
) -> Decision:
    """The decision alone, without recording it (use ``authorize``)."""
    now = now or timezone.now()
    role = role_of(user)
    early = _decide_without_facts(user, role, patient_id=patient_id, category=category, action=action, now=now)
    if early is not None:
        return early
    assert role is not None and patient_id is not None
    return _decide_from_facts(role, category, action, _patient_facts(user.pk, patient_id, now))


def refused_by_matrix(user: Any, *, category: Category | str, action: Action | str) -> bool:
    """The user's role may not do ``action`` on ``category`` whatever the patient (the matrix alone: no account
    check, no query; ``decide`` still makes the decision)."""
    role = role_of(user)
    return role is not None and not allowed_by_matrix(role, category, action)


_UNCHECKED: Any = object()


def _decide_without_facts(user: Any, role: Role | None, *, patient_id: int | None, category: Category | str,
                          action: Action | str, now: datetime, problem: Any = _UNCHECKED) -> Decision | None:
    """The decision when it does not depend on the patient's row (the account, the matrix, the id), else None.
    ``problem``: the account's ``_account_problem`` at ``now`` when the caller already has it."""
    if problem is _UNCHECKED:
        problem = _account_problem(user, role, now)
    if problem:
        return Decision(False, problem[0], problem[1], role=role.value if role else "")
    assert role is not None
    if not allowed_by_matrix(role, category, action):
        words = {"role": role.value, "action": str(action), "category": str(category)}
        return Decision(False, "deny:matrix", MATRIX_REASON % words, role=role.value,
                        reason_args=tuple(words.items()))
    if patient_id is None:
        return Decision(True, "role", role=role.value)
    if not 1 <= int(patient_id) <= MAX_ID:
        return Decision(False, "deny:not_found", "no such patient", role=role.value)
    if getattr(profile_of(user), "patient_id", None) == int(patient_id):
        # A professional account is not the way to one's own file, even when one's own unit treats one: the
        # patient's right of access goes through the hospital's request procedure (detection: self_access).
        return Decision(False, "deny:own_record",
                        gettext_noop("a professional account does not open its holder's own file"), role=role.value)
    return None


def _decide_from_facts(role: Role, category: Category | str, action: Action | str,
                       facts: tuple[str, str | None, bool, int | None] | None) -> Decision:
    """The patient-level rules (identity visibility, care relationship, objection, break-the-glass) over the
    facts of ``_PATIENT_FACTS``."""
    if facts is None:
        return Decision(False, "deny:not_found", "no such patient", role=role.value)
    confidentiality, care_basis, objected, break_glass_id = facts
    flags: tuple[str, ...] = ()
    if confidentiality == "restricted":
        flags = ("restricted_patient",)
        if care_basis is None and break_glass_id is None:
            if not restricted_purpose(role, category, action):
                # Identity visibility: the same answer as a missing patient (and no break-the-glass offer,
                # which would tell that the patient exists).
                return Decision(False, "deny:not_visible", "no such patient", role=role.value, flags=flags)
            flags = flags + ("restricted_purpose",)
    if not needs_care_relationship(role, category):
        return Decision(True, "role", role=role.value, flags=flags)
    if break_glass_id is not None:
        return Decision(
            True,
            "break_glass",
            role=role.value,
            emergency_access_id=break_glass_id,
            flags=flags + (("patient_objection",) if objected else ()),
        )
    can_bg = role in BREAK_GLASS_ROLES
    if objected:
        return Decision(
            False,
            "deny:objection",
            gettext_noop("the patient objected to this professional"),
            role=role.value,
            can_break_glass=can_bg,
            flags=flags,
        )
    if care_basis:
        return Decision(True, f"care:{care_basis}", role=role.value, flags=flags)
    return Decision(
        False,
        "deny:no_care_relationship",
        gettext_noop("not in the patient's care team"),
        role=role.value,
        can_break_glass=can_bg,
        flags=flags,
    )


# --- the decision and its event in one statement ----------------------------------------------------------
# An allowed access costs one round trip: the facts query, the event's INSERT when the facts allow the access,
# and (for a by-id read) the row, in one statement. PostgreSQL does not decide anything of its own: for the
# principal's role, the category and the action, ``_decide_from_facts`` is evaluated here on every combination
# of the facts that matter to it (restricted or not; care basis null, empty or set; objection; break-the-glass),
# and the statement looks its facts' combination up in that table. A refusal reads nothing and is recorded
# on the independent connection, as before; the Python decision on the returned facts is what the caller gets,
# and it must agree with what the statement did.
_CARE_STATES = (None, "", "care")


@functools.cache
def _outcomes(role: Role, category: str, action: str) -> str:
    """JSON array, indexed by ``_TABLE_INDEX``: for an allowed combination {"a": true, "b": basis (absent:
    "care:" + the basis), "f": flags (absent: none), "g": true when the event names the break-the-glass}; for
    a refused one {} (the statement inserts nothing; the refusal is recorded from Python)."""
    table = []
    for restricted in (False, True):
        for care in _CARE_STATES:
            for objected in (False, True):
                for glass in (None, 1):
                    d = _decide_from_facts(role, category, action,
                                           ("restricted" if restricted else "normal", care, objected, glass))
                    if not d.allowed:
                        table.append({})  # nothing is inserted: the refusal is recorded from Python
                        continue
                    entry: dict[str, Any] = {"a": True, "g": d.emergency_access_id is not None}
                    if not d.basis.startswith("care:"):
                        entry["b"] = d.basis[:40]
                    if d.flags:
                        entry["f"] = list(d.flags)
                    table.append(entry)
    return json.dumps(table, separators=(",", ":"))


# What the event's basis and details become in the statement: the table's basis, or "care:" + the care basis;
# the request's details with the decision's flags and break-the-glass (as ``_event_fields`` adds them).
_FROM_TABLE = {
    "basis": "COALESCE(t.d->>'b', left('care:' || t.care_basis, 40))",
    "details": "%(ev_details)s::jsonb"
               " || CASE WHEN t.d->'f' IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('flags', t.d->'f') END"
               " || CASE WHEN (t.d->>'g')::boolean"
               " THEN jsonb_build_object('emergency_access_id', t.break_glass_id) ELSE '{}'::jsonb END",
}


def _step_names(i: int) -> tuple[str, str]:
    """The outcome column and the event parameters' prefix of a statement's ``i``-th decision."""
    return ("d", "ev_") if i == 0 else (f"d{i}", f"ev{i}_")


def _event_values(i: int) -> str:
    """The SELECT list of the ``i``-th decision's event (columns of ``EVENT_COLUMNS``) over the row ``t``: the
    first decision's parameters, but for the ``STEP_COLUMNS`` of the others."""
    column, own = _step_names(i)
    values = []
    for name, kind in EVENT_COLUMNS:
        prefix = own if name in STEP_COLUMNS else "ev_"
        if name in _FROM_TABLE:
            values.append(_FROM_TABLE[name].replace("t.d-", f"t.{column}-").replace("%(ev_", f"%({prefix}"))
        else:
            values.append(f"%({prefix}{name})s::{kind}")
    return ", ".join(values)


# The position in ``_outcomes``'s table of the facts' combination (the loops' order there: restricted, care
# basis null / empty / set, objection, break-the-glass), over the facts row ``f``.
_TABLE_INDEX = (
    "(((CASE WHEN f.confidentiality = 'restricted' THEN 3 ELSE 0 END"
    " + CASE WHEN f.care_basis IS NULL THEN 0 WHEN f.care_basis = '' THEN 1 ELSE 2 END) * 2"
    " + CASE WHEN f.objected THEN 1 ELSE 0 END) * 2"
    " + CASE WHEN f.break_glass_id IS NULL THEN 0 ELSE 1 END)"
)


def _head(tables: tuple[str, ...]) -> str:
    """The statement up to its final SELECT list: the facts, each decision's outcome (one table each), and the
    events: the ``i``-th inserted when decisions 0 to ``i`` are allowed."""
    columns = ", ".join(name for name, _ in EVENT_COLUMNS)
    outcomes = ", ".join(f"({_sql_literal(table)}::jsonb) -> {_TABLE_INDEX} AS {_step_names(i)[0]}"
                         for i, table in enumerate(tables))
    selects = []
    for i in range(len(tables)):
        allowed = " AND ".join(f"(t.{_step_names(j)[0]}->>'a')::boolean" for j in range(i + 1))
        selects.append(f"SELECT {_event_values(i)} FROM t WHERE {allowed}")  # noqa: S608
    # Every part is SQL written here or in audit.services (the outcome tables too, JSON constants built by
    # ``_outcomes``); every value of the request is a bound parameter.
    return (
        f"WITH f AS ({_PATIENT_FACTS}), "  # noqa: S608
        f"t AS (SELECT f.*, {outcomes} FROM f), "
        f"e AS (INSERT INTO audit_accessevent ({columns}) {' UNION ALL '.join(selects)} RETURNING id) "
        "SELECT f.confidentiality, f.care_basis, f.objected, f.break_glass_id"
    )


@functools.cache
def _one_statement(read_sql: str | None, table: str) -> str:
    """The statement for one outcome table (``_outcomes``: one per role, category and action), written into
    it as a constant: prepared once per connection, the server parses the table once. It returns the facts and
    the event's id."""
    sql = _head((table,)) + ", e.id"
    if read_sql is None:
        return sql + " FROM f LEFT JOIN e ON true"
    return sql + f", r.* FROM f LEFT JOIN e ON true LEFT JOIN ({read_sql}) r ON e.id IS NOT NULL"  # noqa: S608


@functools.cache
def _steps_statement(read_sql: str | None, tables: tuple[str, ...]) -> str:
    """The statement for several decisions on one patient (``authorize_steps``), one outcome table each, the
    row read (if any) when they are all allowed. It returns the facts and the number of events inserted."""
    sql = _head(tables) + ", n.n"
    if read_sql is None:
        return sql + " FROM f CROSS JOIN (SELECT count(*) AS n FROM e) n"  # noqa: S608
    return (sql + f", r.* FROM f CROSS JOIN (SELECT count(*) AS n FROM e) n "  # noqa: S608
            f"LEFT JOIN ({read_sql}) r ON n.n = {len(tables)}")


def _sql_literal(text: str) -> str:
    """A SQL string constant of ``text`` (JSON written here), with the driver's ``%`` escaped."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


@dataclass(frozen=True)
class Step:
    """One of the decisions ``authorize_steps`` makes on a patient, with what its event names."""

    category: Category | str
    action: Action | str
    resource_type: str = ""
    resource_id: str | int = ""
    details: dict[str, Any] | None = None


def _decide_and_record(user: Any, *, patient_id: int, category: Category | str, action: Action | str,
                       resource_type: str, resource_id: str | int, details: dict[str, Any] | None,
                       reader: Any = None) -> tuple[Decision, Any | None]:
    """``authorize`` (and, with ``reader``, the row's read) in one statement when the decision rests on the
    patient's facts (prepared on a direct connection, planned each time behind a transaction pooler)."""
    decisions, row = _decide_and_record_steps(
        user, patient_id, (Step(category, action, resource_type, resource_id, details),), reader)
    return decisions[-1], row


def _decide_and_record_steps(user: Any, patient_id: int, steps: tuple[Step, ...] | list[Step],
                             reader: Any) -> tuple[list[Decision], Any | None]:
    """The decisions of ``steps`` in order, up to the first refusal, with their events; the row of ``reader``
    when they are all allowed. Those that rest on the patient's facts are made in one statement."""
    now = timezone.now()
    role = role_of(user)
    early, made = None, len(steps)  # the first decision made without the facts (a refusal), and where
    problem = _account_problem(user, role, now)  # the same account at the same instant for every step
    for i, step in enumerate(steps):
        early = _decide_without_facts(user, role, patient_id=patient_id, category=step.category,
                                      action=step.action, now=now, problem=problem)
        if early is not None:
            made = i
            break
    decisions: list[Decision] = []
    instance = None
    if made:
        assert role is not None
        decisions, instance = _decide_from_statement(user, role, patient_id, steps[:made],
                                                     reader if made == len(steps) else None, now)
        if not decisions[-1].allowed:
            return decisions, None
    if early is not None:
        step = steps[made]
        event_record(**_event_fields(user, early, patient_id=patient_id, category=step.category,
                                     action=step.action, resource_type=step.resource_type,
                                     resource_id=step.resource_id, details=step.details))
        return [*decisions, early], None
    return decisions, instance


def _decide_from_statement(user: Any, role: Role, patient_id: int, steps: tuple[Step, ...] | list[Step],
                           reader: Any, now: datetime) -> tuple[list[Decision], Any | None]:
    first = steps[0]
    params = event_params(**_event_fields(
        user, Decision(True, "", role=role.value), patient_id=patient_id, category=first.category,
        action=first.action, resource_type=first.resource_type, resource_id=first.resource_id,
        details=first.details, count=False))
    params.update({"u": user.pk, "p": patient_id, "now": now})
    tables = [_outcomes(role, str(first.category), str(first.action))]
    for i, step in enumerate(steps[1:], start=1):  # the same request and patient: only these columns differ
        params.update(event_step_params(_step_names(i)[1], category=str(step.category), action=str(step.action),
                                        resource_type=step.resource_type, resource_id=step.resource_id,
                                        details=step.details))
        tables.append(_outcomes(role, str(step.category), str(step.action)))
    read_sql = None
    if reader is not None:
        read_sql = reader.select_sql("rk")
        params["rk"] = patient_id
    if len(steps) == 1:
        sql = _one_statement(read_sql, tables[0])
    else:
        sql = _steps_statement(read_sql, tuple(tables))
    trace = current_read_trace()  # within ``audit.services.read_trace``: the events commit beside the read
    if trace is not None:
        row = trace.fetch_one(sql, params)
    else:
        with prepared_cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
    facts = None if row is None else tuple(row[:4])
    if row is None or row[4] is None:
        recorded = 0
    else:
        recorded = 1 if len(steps) == 1 else row[4]  # the event's id, or the number of events
    decisions = []
    for step in steps:
        decision = _decide_from_facts(role, step.category, step.action, facts)  # type: ignore[arg-type]
        metrics.gate_decision(allowed=decision.allowed, basis=decision.basis)
        decisions.append(decision)
        if not decision.allowed:
            break
    if recorded != sum(d.allowed for d in decisions):  # pragma: no cover - the tables come from the same function
        raise RuntimeError(f"gate: the statement and the decisions disagree ({decisions[-1].basis})")
    if not decisions[-1].allowed:
        step = steps[len(decisions) - 1]
        event_record(**_event_fields(user, decisions[-1], patient_id=patient_id, category=step.category,
                                     action=step.action, resource_type=step.resource_type,
                                     resource_id=step.resource_id, details=step.details, count=False))
        return decisions, None
    if reader is None:
        return decisions, None
    rest = row[5:]
    return decisions, (None if rest[0] is None else reader.instance(rest))


def authorize(
    user: Any,
    *,
    patient_id: int | None,
    category: Category | str,
    action: Action | str,
    resource_type: str = "",
    resource_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> Decision:
    """Decide and record. Allowed: event in the current transaction. Denied: event committed independently."""
    if patient_id is not None:
        return _decide_and_record(user, patient_id=patient_id, category=category, action=action,
                                  resource_type=resource_type, resource_id=resource_id, details=details)[0]
    decision = decide(user, patient_id=patient_id, category=category, action=action)
    event_record(**_event_fields(user, decision, patient_id=patient_id, category=category, action=action,
                                 resource_type=resource_type, resource_id=resource_id, details=details))
    return decision


def authorize_read(
    user: Any,
    *,
    reader: Any,
    patient_id: int,
    category: Category | str,
    action: Action | str,
    resource_type: str = "",
    resource_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> tuple[Decision, Any | None]:
    """``authorize`` for a by-id read of a row keyed by ``patient_id`` (the patient itself): when allowed, its
    event and the row (``reader``, a ``dpi.prepared.ByIdReader``) are written and read in one statement, so
    the row leaves the database only with its trace, in one round trip (issue #18). Returns (decision, the
    instance or None); a refusal reads nothing and is recorded as by ``authorize``."""
    return _decide_and_record(user, patient_id=patient_id, category=category, action=action,
                              resource_type=resource_type, resource_id=resource_id, details=details, reader=reader)


def require_read(
    user: Any,
    *,
    reader: Any,
    patient_id: int,
    category: Category | str,
    action: Action | str,
    resource_type: str = "",
    resource_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> tuple[Decision, Any | None]:
    """``authorize_read`` that raises when refused, as ``require`` does."""
    decision, row = authorize_read(user, reader=reader, patient_id=patient_id, category=category, action=action,
                                   resource_type=resource_type, resource_id=resource_id, details=details)
    raise_if_refused(decision)
    return decision, row


def authorize_steps(user: Any, *, patient_id: int, steps: tuple[Step, ...] | list[Step],
                    reader: Any = None) -> tuple[list[Decision], Any | None]:
    """Several decisions on one patient, in order, each made only if those before it were allowed (the chart
    page: the medical record, then the identity in its banner), and the row of ``reader`` when they all are.
    The decisions that rest on the patient's facts, their events and the row cost one statement (one facts
    query), as one ``authorize_read``; the refusal that stops them is recorded as by ``authorize``, and nothing
    after it is decided or recorded. Returns the decisions made (all allowed, or ending with the refusal) and
    the instance or None."""
    if not steps:
        raise ValueError("authorize_steps needs at least one step")
    return _decide_and_record_steps(user, patient_id, steps, reader)


def _event_fields(user: Any, decision: Decision, *, patient_id: int | None, category: Category | str,
                  action: Action | str, resource_type: str, resource_id: str | int,
                  details: dict[str, Any] | None, count: bool = True) -> dict[str, Any]:
    if count:
        metrics.gate_decision(allowed=decision.allowed, basis=decision.basis)
    extra = dict(details or {})
    if decision.flags:
        extra["flags"] = list(decision.flags)
    if decision.emergency_access_id:
        extra["emergency_access_id"] = decision.emergency_access_id
    return {
        "actor": user if getattr(user, "is_authenticated", False) else None,
        "actor_role": decision.role,
        "actor_unit": unit_of(user),
        "patient_id": patient_id,
        "category": str(category),
        "action": str(action),
        "outcome": "allowed" if decision.allowed else "denied",
        "basis": decision.basis,
        "reason": decision.reason,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "details": extra,
    }


def require(
    user: Any,
    *,
    patient_id: int | None,
    category: Category | str,
    action: Action | str,
    resource_type: str = "",
    resource_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> Decision:
    """``authorize`` that raises when refused: ``PatientNotFound`` (HTTP 404) when the user may not know the
    patient exists, else ``AccessDenied`` (a PermissionDenied: HTTP 403)."""
    decision = authorize(
        user,
        patient_id=patient_id,
        category=category,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )
    raise_if_refused(decision)
    return decision


def refusal_if_unknown(
    user: Any,
    *,
    patient_id: int,
    category: Category | str,
    action: Action | str,
    known_by: tuple[Category | str, Action | str] | None = None,
    resource_type: str = "",
    resource_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> Decision | None:
    """Before a write that names a patient by id does anything else: the recorded refusal when the user may not
    know that the patient exists (unknown id, or restricted and not visible), which the caller answers exactly
    as a missing patient; else None, and nothing is recorded (the write's own ``authorize`` records it).

    ``known_by``: the (category, action) whose decision tells whether the user may know the patient, when it
    is not the write's own. Acts on the identity itself (its update, an INSi call) pass (administrative, view):
    a purpose of ``RESTRICTED_PURPOSES`` lets a feed write beside a patient it cannot read, never read or
    rewrite the identity it may not see (its ETag included). The refusal is recorded as the write asked for."""
    known_category, known_action = known_by or (category, action)
    decision = decide(user, patient_id=patient_id, category=known_category, action=known_action)
    if allowed_by_purpose_only(decision) and not _found_by_exact_lookup(user, patient_id):
        decision = Decision(False, "deny:not_visible", "no such patient", role=decision.role,
                            flags=("restricted_patient", "no_exact_lookup"))
    if not is_hidden(decision):
        return None
    event_record(**_event_fields(user, decision, patient_id=patient_id, category=category, action=action,
                                 resource_type=resource_type, resource_id=resource_id, details=details))
    return decision


def _found_by_exact_lookup(user: Any, patient_id: int) -> bool:
    """For the roles whose purpose rests on an exact lookup (``EXACT_LOOKUP_ROLES``: reception registering an
    arrival): whether this user found this patient by exact IPP / INS in the last ``EXACT_LOOKUP_MINUTES``
    (the lookup's recorded event). Other roles' purposes (the feeds) need none."""
    if role_of(user) not in EXACT_LOOKUP_ROLES:
        return True
    from audit.models import AccessEvent

    since = timezone.now() - timedelta(minutes=EXACT_LOOKUP_MINUTES)
    return AccessEvent.objects.filter(actor_id=user.pk, patient_id=patient_id, basis="purpose:exact_lookup",
                                      outcome="allowed", occurred_at__gte=since).exists()


def allowed_by_purpose_only(decision: Decision) -> bool:
    """An allowed decision that rests on a purpose of the policy (``RESTRICTED_PURPOSES``) on a restricted
    patient outside the care team: the user may do the act, but may not read the patient's data, so the answer
    (refusal messages included) must not carry any (birth date, current stay...)."""
    return decision.allowed and "restricted_purpose" in decision.flags


def split_visible(user: Any, patient_ids: list[int], *, resource_type: str = "patient",
                  details: dict[str, Any] | None = None) -> tuple[set[int], list[int]]:
    """Which of these patients a write's answer may name (a new file's probable duplicates): those the user
    may know exist (``visibility_condition``), and the others, each recorded as a refused view
    (``deny:not_visible``, flagged ``restricted_patient``) so the DPO sees what was asked and not shown."""
    from patients.models import Patient

    if not patient_ids:
        return set(), []
    now = timezone.now()
    visible = set(Patient.objects.filter(visibility_condition(user, now), pk__in=patient_ids)
                  .values_list("pk", flat=True))
    hidden = [pk for pk in patient_ids if pk not in visible]
    role = role_of(user)
    for pk in hidden:
        decision = Decision(False, "deny:not_visible", "no such patient", role=role.value if role else "",
                            flags=("restricted_patient",))
        event_record(**_event_fields(user, decision, patient_id=pk, category=Category.ADMINISTRATIVE,
                                     action=Action.VIEW, resource_type=resource_type, resource_id=pk,
                                     details=details))
    return visible, hidden


def raise_if_refused(decision: Decision) -> None:
    """``PatientNotFound`` (HTTP 404) when the user may not know the patient exists, ``AccessDenied`` (403)
    for another refusal, nothing when allowed: what ``require`` does with its decision."""
    if not decision.allowed:
        if is_hidden(decision):
            raise PatientNotFound(decision)
        raise AccessDenied(decision)


# --- searches ---------------------------------------------------------------------------------------------
def visible_patients(
    user: Any, queryset: QuerySet, *, query: str = "", record: bool = True, exact_identifier: bool = False
) -> QuerySet:
    """Restrict a Patient queryset to what the user may find, and record the search.

    Anyone whose role may search administrative data finds normal patients; restricted patients (VIP,
    staff, protected identity) are masked unless the user is in their care team or holds an active
    break-the-glass on them: the identity-visibility rule of ``decide``. ``exact_identifier``: the queryset
    is an exact IPP / INS lookup; roles of ``EXACT_LOOKUP_ROLES`` (reception registering an arrival) then
    find restricted patients too, each one found recorded and flagged for the detection rules. Returns an
    empty queryset when the search itself is refused.
    """
    now = timezone.now()
    decision = decide(user, patient_id=None, category=Category.ADMINISTRATIVE, action=Action.SEARCH, now=now)
    metrics.gate_decision(allowed=decision.allowed, basis=decision.basis)
    if record:
        event_record(
            actor=user if getattr(user, "is_authenticated", False) else None,
            actor_role=decision.role,
            actor_unit=unit_of(user),
            category=Category.ADMINISTRATIVE,
            action=Action.SEARCH,
            outcome="allowed" if decision.allowed else "denied",
            basis=decision.basis,
            reason=decision.reason,
            resource_type="patient",
            details={"query_length": len(query)} if query else {},
        )
    if not decision.allowed:
        return queryset.none()
    if exact_identifier and role_of(user) in EXACT_LOOKUP_ROLES:
        return _exact_lookup(user, queryset, now)
    return queryset.filter(visibility_condition(user, now))


def visibility_condition(user: Any, now: datetime | None = None) -> Q:
    """The identity-visibility rule as a condition on Patient rows (for searches and lists)."""
    from access.models import CareGrant, EmergencyAccess

    now = now or timezone.now()
    in_team = CareGrant.objects.filter(user_id=user.pk, content_object_id=OuterRef("pk"), valid_from__lte=now).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=now)
    )
    bg = EmergencyAccess.objects.filter(
        user_id=user.pk, patient_id=OuterRef("pk"), started_at__lte=now, expires_at__gt=now
    )
    return Q(confidentiality="normal") | Exists(in_team) | Exists(bg)


EXACT_LOOKUP_MAX = 5


def _exact_lookup(user: Any, queryset: QuerySet, now: datetime) -> QuerySet:
    """Reception registering an arrival finds a restricted patient by exact identifier: recorded, flagged."""
    found = list(queryset.values_list("pk", "confidentiality")[:EXACT_LOOKUP_MAX])
    visible = queryset.model.objects.filter(visibility_condition(user, now), pk__in=[pk for pk, _ in found])
    already = set(visible.values_list("pk", flat=True))
    for pk, confidentiality in found:
        if confidentiality == "restricted" and pk not in already:
            event_record(
                actor=user,
                actor_role=str(role_of(user) or ""),
                actor_unit=unit_of(user),
                patient_id=pk,
                category=Category.ADMINISTRATIVE,
                action=Action.VIEW,
                outcome="allowed",
                basis="purpose:exact_lookup",
                resource_type="patient",
                resource_id=pk,
                details={"flags": ["restricted_patient", "restricted_exact_lookup"]},
            )
    return queryset.filter(pk__in=[pk for pk, _ in found])


# --- background tasks -------------------------------------------------------------------------------------
SYSTEM_TASKS: dict[str, dict[Category, frozenset[str]]] = {
    # Retention moves whole records to the archive and destroys them at the end of the archive period.
    "retention": {c: frozenset({"view", "export", "delete", "create"}) for c in Category},
    # Detection reads identity traits (names, addresses) to compare them with staff.
    "detection": {Category.ADMINISTRATIVE: frozenset({"view", "search"})},
    # Backups dump the whole database (encrypted) and the patient's-rights export builds a full record.
    "backup": {c: frozenset({"export"}) for c in Category},
    "rights": {c: frozenset({"export", "view"}) for c in Category},
    # The HL7 v2 feed (dpi.hl7): the patient administration system writes identities and movements, the
    # laboratory writes results; it reads nothing back.
    "hl7_feed": {
        Category.ADMINISTRATIVE: frozenset({"create", "amend"}),
        Category.MEDICAL: frozenset({"create", "amend"}),
    },
    # The integration team reads a refused message as received (`hl7_deadletters --show`) to fix its cause.
    "hl7_support": {Category.ADMINISTRATIVE: frozenset({"view"}), Category.MEDICAL: frozenset({"view"})},
}


def authorize_system(
    task: str,
    *,
    patient_id: int | None,
    category: Category | str,
    action: str,
    resource_type: str = "",
    resource_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> Decision:
    """The gate for Celery workers and management commands: a declared task purpose, always recorded."""
    allowed = action in SYSTEM_TASKS.get(task, {}).get(Category(category), frozenset())
    decision = Decision(
        allowed,
        f"system:{task}" if allowed else "deny:system_task",
        "" if allowed else f"task {task} may not {action} {category} data",
        role="system",
    )
    metrics.gate_decision(allowed=allowed, basis=decision.basis)
    event_record(
        actor=None,
        actor_role="system",
        actor_unit=task,
        patient_id=patient_id,
        category=str(category),
        action=action,
        outcome="allowed" if allowed else "denied",
        basis=decision.basis,
        reason=decision.reason,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )
    if not allowed:
        raise AccessDenied(decision)
    return decision


# --- principals a client may not stand for ------------------------------------------------------------------
def is_privileged(user: Any) -> bool:
    """DPO, security officer, IT administrator, maintenance, superuser, or any privilege held besides the role
    (``holds_privilege``): they reach the trace, the accounts, the keys or the servers."""
    return role_of(user) in PRIVILEGED_ROLES or holds_privilege(user)


def may_be_represented(user: Any) -> bool:
    """Whether an API client may act on behalf of this user (``X-On-Behalf-Of``). Privileged principals act
    only in their own session, with their own verified second factor: a client's token is none of theirs."""
    return not is_privileged(user)


def may_manage_identities(user: Any, *, represented: bool = False) -> bool:
    """Merges, unmerges and splits of patient files (identity vigilance): the cell's members, never through a
    client acting on behalf of them (``represented``: the client has not checked their second factor)."""
    from access.policy import may_manage_identities as by_role_and_group

    if represented:
        return False
    return by_role_and_group(role_of(user), set(user.groups.values_list("name", flat=True)))
