"""Never a 500 (issue #13 finding 8): every URL pattern of the project (UI, admin, API, FHIR, DPO, compliance,
retention), walked as signed-in personas with a verified second factor, gets out-of-range ids, NUL bytes,
extreme and invalid dates, overlong strings and bad enumerations in every path parameter, in the query
parameters dpi reads, and in the form fields of POST endpoints. Any answer is fine but a server error.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from dpi.fhir.views import TYPES
from tests.test_gate_every_route import PARAM_RE, all_routes
from tests.ui_support import verified_client

# One transaction per persona, rolled back (a flush per test would cost more than the walk). A server error
# that aborts the transaction makes later requests fail too: the first failure listed is the real one.
pytestmark = pytest.mark.django_db

HUGE = "9" * 20  # beyond PostgreSQL's bigint
BAD_VALUES = [
    HUGE,
    "-" + HUGE,
    "-1",
    "0",
    "a\x00b",
    "le9999-12-31",
    "ge0001-01-01",
    "9999-12-31T23:59:59+14:00",
    "0000-00-00",
    "2026-02-30",
    "31/02/2026",
    "x" * 5000,
    "zz",
    "1e309",
    "%",
]
# On every route, a subset (the whole list on the areas that parse most: FHIR, API, DPO filters).
GET_VALUES = [HUGE, "-1", "a\x00b", "le9999-12-31", "9999-12-31T23:59:59+14:00", "2026-02-30", "x" * 5000, "zz", "%"]
POST_VALUES = [HUGE, "a\x00b", "x" * 5000]
# Query parameters dpi reads anywhere (search, filters, paging, FHIR search parameters, admin changelists).
QUERY_NAMES = [
    "q", "ins", "family", "given", "name", "birth_date", "birthdate", "identifier", "patient", "subject",
    "encounter", "user", "date", "since", "until", "start", "end", "from", "to", "day", "period", "page",
    "page_size", "_count", "_cursor", "_id", "_lastUpdated", "_sort", "_include", "_format", "status", "kind",
    "category", "code", "action", "outcome", "basis", "severity", "state", "rule", "reviewed", "unit", "fmt",
    "format", "ordering", "o", "p", "all", "lang", "next", "cursor", "limit", "offset", "id", "pk", "type",
    "sex", "gender", "ipp", "confidentiality",
]
FORM_NAMES = [
    *QUERY_NAMES, "reason", "reason_category", "body", "comment", "decision", "otp_token", "token", "language",
    "title", "label", "value", "unit_code", "practitioner", "sensitive", "role", "scope", "ends_at", "starts_at",
    "effective_at", "archive_id", "request_id", "note", "amendment_reason", "description", "discovered_at",
]
SKIP = ("static/", "media/", "accounts/logout/", "session/lock/")
# Who reaches the inside of each area (others are turned away at its door, which the fuzzer also checks once).
AREAS = {
    "dpo/": ["dpo"], "audit/": ["dpo"], "compliance/": ["dpo"], "retention/": ["dpo"], "admin/": ["reception"],
    "api/": ["physician", "reception"], "fhir/": ["physician", "reception"], "patients/": ["physician"],
}
PERSONAS = ["physician", "reception", "dpo"]


def _personas(route: str) -> list[str]:
    for prefix, personas in AREAS.items():
        if route.startswith(prefix):
            return personas
    return ["physician"]


def _routes() -> list[str]:
    """Every route, with FHIR's type parameter expanded to the served resource types."""
    routes = []
    for route, _pattern in all_routes():
        if route.startswith(SKIP):
            continue
        if "<resource_type>" in route:
            routes.extend(route.replace("(?P<resource_type>[A-Za-z]+)", name) for name in TYPES)
        routes.append(route)
    # Sign-in pages last: wrong codes posted there may lock the account.
    return sorted(routes, key=lambda r: r.startswith(("accounts/", "i18n/", "session/")))


def _fill(route: str, value: str) -> str:
    def sub(m):
        if (m.group("rname") or "") == "fmt":
            return "csv"
        return value

    path = "/" + PARAM_RE.sub(sub, route).lstrip("^")
    return re.sub(r"\.\*$|/\?$", "/", path).replace("\\", "").replace("$", "")


def _query(value: str) -> dict[str, str]:
    return dict.fromkeys(QUERY_NAMES, value)


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _check(client: Client, method: str, path: str, data: dict, failures: list[str], persona: str) -> None:
    accept = "application/json" if path.startswith(("/api/", "/fhir/")) else "text/html"
    try:
        if method == "GET":
            response = client.get(path, data, HTTP_ACCEPT=accept)
        else:
            response = client.post(path, data, HTTP_ACCEPT=accept)
    except Exception as exc:  # noqa: BLE001 - the test client re-raises what would have been a 500
        failures.append(f"{persona} {method} {path} {sorted(data)[:3]}...={_short(data)}: {exc.__class__.__name__}")
        return
    if response.status_code >= 500:
        failures.append(f"{persona} {method} {path} ={_short(data)}: {response.status_code}")
    _body(response)


def _short(data: dict) -> str:
    values = set(data.values())
    return repr(next(iter(values))[:20]) if len(values) == 1 else "mixed"


@pytest.fixture
def quiet_request_log():
    """Thousands of 4xx answers: Django's request log would only slow the walk down."""
    import logging

    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("persona", PERSONAS)
def test_no_route_answers_500_to_bad_input(cast, persona, quiet_request_log):
    user = getattr(cast, persona)
    valid_id = str(cast.patient.pk)
    failures: list[str] = []
    requests = 0
    routes = [r for r in _routes() if persona in _personas(r)]
    client = verified_client(user)
    device_id = client.session[DEVICE_ID_SESSION_KEY]
    for route in routes:
        # Every route starts signed in with a verified second factor: the session is reused while it is (signing
        # in again for each route cost more than the walk); a POST elsewhere that signed the persona out, locked
        # the session or dropped its second factor gets a fresh one.
        if client.session.get(DEVICE_ID_SESSION_KEY) != device_id or client.post("/session/ping/").status_code != 204:
            client = verified_client(user)
            assert client.post("/session/ping/").status_code == 204, "the persona is not signed in"
        has_params = bool(PARAM_RE.search(route))
        # Bad values in every path parameter.
        if has_params:
            for value in (HUGE, "a\x00b", "x" * 300):
                _check(client, "GET", _fill(route, value), {}, failures, persona)
                requests += 1
        # Bad values in every query parameter and form field, on a valid path.
        path = _fill(route, valid_id)
        for value in BAD_VALUES if route.startswith(("fhir/", "api/", "dpo/")) else GET_VALUES:
            _check(client, "GET", path, _query(value), failures, persona)
            requests += 1
        for value in POST_VALUES:
            _check(client, "POST", path, dict.fromkeys(FORM_NAMES, value), failures, persona)
            requests += 1
    assert len(routes) >= 7 and requests >= 10 * len(routes)
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures[:60])
