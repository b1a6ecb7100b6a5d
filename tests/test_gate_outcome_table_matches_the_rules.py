"""The one-statement gate (issue #18) writes the event PostgreSQL computes from ``_outcomes``'s table: for every
role, category and action, and every combination of the patient's facts (normal or restricted; care basis null,
empty, short or longer than the basis column; objection or not; break-the-glass or not), the statement's table
index, basis and details expressions give exactly what ``_decide_from_facts`` decides (allowed, basis cut to
40 characters, flags, break-the-glass id; a refusal only has to be one: it inserts nothing). The SQL fragments
are the gate's own (``_TABLE_INDEX``, ``_FROM_TABLE``), evaluated in one query over every combination."""

from __future__ import annotations

import itertools
import json

import pytest
from django.db import connection

from access.gate import _FROM_TABLE, _TABLE_INDEX, _decide_from_facts, _outcomes
from access.policy import Action, Category, Role

pytestmark = pytest.mark.django_db

GLASS_ID = 4242
REQUEST_DETAILS = {"k": "v"}
FACTS = list(itertools.product(
    ("normal", "restricted"),
    (None, "", "encounter", "a care basis much longer than the forty characters of the column"),
    (False, True),
    (None, GLASS_ID),
))
TRIPLES = list(itertools.product(Role, Category, Action))


def _sql(index: str) -> str:
    facts = ", ".join(f"(%(c{i}_0)s::text, %(c{i}_1)s::text, %(c{i}_2)s::boolean, %(c{i}_3)s::bigint)"
                      for i in range(len(FACTS)))
    return (
        f"WITH c(confidentiality, care_basis, objected, break_glass_id) AS (VALUES {facts}), "  # noqa: S608
        "f AS (SELECT k.k, c.* FROM c CROSS JOIN generate_series(0, %(n)s - 1) AS k(k)), "
        f"t AS (SELECT f.*, (%(tables)s::jsonb -> f.k) -> {index} AS d FROM f) "
        "SELECT t.k, t.confidentiality, t.care_basis, t.objected, t.break_glass_id, (t.d->>'a')::boolean, "
        f"{_FROM_TABLE['basis']}, {_FROM_TABLE['details']} FROM t"
    )


def _params() -> dict:
    params: dict = {f"c{i}_{j}": value for i, facts in enumerate(FACTS) for j, value in enumerate(facts)}
    params.update({
        "n": len(TRIPLES),
        "tables": "[" + ",".join(_outcomes(role, str(cat), str(act)) for role, cat, act in TRIPLES) + "]",
        "ev_details": json.dumps(REQUEST_DETAILS),
    })
    return params


def _expected(role: Role, category: Category, action: Action, facts: tuple) -> tuple:
    decision = _decide_from_facts(role, category, action, facts)
    details = dict(REQUEST_DETAILS)
    if decision.flags:
        details["flags"] = list(decision.flags)
    if decision.emergency_access_id:
        details["emergency_access_id"] = decision.emergency_access_id
    return decision.allowed, decision.basis[:40], details


def _run(index: str = _TABLE_INDEX) -> list[str]:
    """The combinations where the statement (with this table index) and the rules disagree."""
    with connection.cursor() as cur:
        cur.execute(_sql(index), _params())
        rows = cur.fetchall()
    assert len(rows) == len(TRIPLES) * len(FACTS)
    wrong = []
    for k, confidentiality, care_basis, objected, glass, allowed, basis, details in rows:
        role, category, action = TRIPLES[k]
        facts = (confidentiality, care_basis, objected, glass)
        want = _expected(role, category, action, facts)
        if not want[0]:
            # A refusal inserts nothing (its event is written from Python): only "not allowed" is asked.
            if allowed:
                wrong.append(f"{role.value}/{category.value}/{action.value} {facts}: sql allows, rules refuse")
            continue
        got = (allowed, basis, details if isinstance(details, dict) else json.loads(details))
        if got != want:
            wrong.append(f"{role.value}/{category.value}/{action.value} {facts}: sql {got} != rules {want}")
    return wrong


def test_every_fact_combination_gives_the_rules_outcome_basis_and_details():
    wrong = _run()
    assert not wrong, f"{len(wrong)} combinations differ, e.g.:\n" + "\n".join(wrong[:10])


def test_the_check_sees_a_wrong_index():
    """The comparison is not vacuous: the index with its objection and break-the-glass terms swapped fails it."""
    objection = "CASE WHEN f.objected THEN 1 ELSE 0 END"
    glass = "CASE WHEN f.break_glass_id IS NULL THEN 0 ELSE 1 END"
    assert objection in _TABLE_INDEX and glass in _TABLE_INDEX
    swapped = _TABLE_INDEX.replace(objection, "@").replace(glass, objection).replace("@", glass)
    assert _run(swapped)


def test_every_statement_stays_in_psycopgs_cache_of_converted_queries():
    """Each (role, category, action) has its own statement, the outcome table written into it: psycopg converts
    a query's placeholders once and caches it only up to 4 kB, so a longer statement would be re-parsed in
    Python on every read (0.2 ms each)."""
    from psycopg import _queries

    from access.gate import _one_statement
    from patients.selectors import patient_reader

    longest = max(len(_one_statement(read, _outcomes(role, str(cat), str(act))))
                  for role, cat, act in TRIPLES for read in (None, patient_reader.select_sql("rk")))
    assert longest <= _queries.MAX_CACHED_STATEMENT_LENGTH
