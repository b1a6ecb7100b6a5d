"""API and FHIR calls with a bearer token and no session cookie jump over the browser's middleware (session
authentication, CSRF, second factor, session expiry, maintenance sessions, messages; issue #18), and lose
nothing a browser's answer has: the security headers, the request id, the refusal's access event, the answer
itself. A call that carries a session cookie still goes through all of it."""

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from access.policy import Role
from audit.models import AccessEvent
from dpi.api.testing import bearer, make_api_client, request_id
from dpi.middleware import BrowserMiddlewareEnd, BrowserMiddlewareStart, bearer_call
from tests.auth_support import person, sign_in
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _skipped(monkeypatch) -> list[str]:
    """Paths that went through the browser's middleware (CSRF's process_request is one of them)."""
    from django.middleware.csrf import CsrfViewMiddleware

    seen: list[str] = []
    original = CsrfViewMiddleware.process_request

    def spy(self, request):
        seen.append(request.path)
        return original(self, request)

    monkeypatch.setattr(CsrfViewMiddleware, "process_request", spy)
    return seen


def test_a_token_read_skips_them_and_keeps_every_header(cast, client, monkeypatch):
    through = _skipped(monkeypatch)
    _, token = make_api_client()
    rid = request_id()
    response = client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token, **{"X-Request-ID": rid}))
    assert response.status_code == 200 and response.json()["id"] == str(cast.patient.pk)
    assert through == []
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response["Permissions-Policy"]
    assert "no-store" in response["Cache-Control"]
    assert response["X-Request-ID"] == rid
    assert "Set-Cookie" not in response and not response.cookies
    assert AccessEvent.objects.filter(request_id=rid, outcome="allowed", patient_id=cast.patient.pk).count() == 1


@pytest.mark.parametrize("path", ["/fhir/Patient/{pk}", "/api/patients/{pk}/"])
def test_a_bad_token_is_still_a_recorded_401(cast, client, path):
    rid = request_id()
    response = client.get(path.format(pk=cast.patient.pk),
                          headers=bearer("dpi_nope_nope", **{"X-Request-ID": rid}))
    assert response.status_code == 401
    assert response["X-Frame-Options"] == "DENY"
    assert [e.outcome for e in audit_events(request_id=rid)] == ["denied"]  # committed on its own connection


def test_a_call_with_a_session_cookie_goes_through_them(cast, client, monkeypatch):
    person("a.dpo", Role.DPO)
    sign_in(client, "a.dpo")
    through = _skipped(monkeypatch)
    _, token = make_api_client()
    client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token))
    assert through == [f"/fhir/Patient/{cast.patient.pk}"]


def test_which_calls_jump():
    factory = RequestFactory()
    token = {"HTTP_AUTHORIZATION": "Bearer dpi_x_y"}
    assert bearer_call(factory.get("/fhir/Patient/1", **token))
    assert bearer_call(factory.get("/api/patients/1/", **token))
    assert not bearer_call(factory.get("/fhir/Patient/1"))  # no token
    assert not bearer_call(factory.get("/patients/1/", **token))  # a browser page
    assert not bearer_call(factory.get("/api/docs/", **token))  # an HTML page under /api/
    assert not bearer_call(factory.get("/api/patients/1/", HTTP_AUTHORIZATION="Basic eA=="))
    with_cookie = factory.get("/api/patients/1/", **token)
    with_cookie.COOKIES[settings.SESSION_COOKIE_NAME] = "x"
    assert not bearer_call(with_cookie)


def test_the_start_marker_needs_its_end():
    with pytest.raises(ImproperlyConfigured):
        BrowserMiddlewareStart(lambda request: None)
    end = BrowserMiddlewareEnd(lambda request: "end")
    start = BrowserMiddlewareStart(lambda request: "through")
    assert start.skip_to is end.get_response
    assert end(RequestFactory().get("/")) == "end"
