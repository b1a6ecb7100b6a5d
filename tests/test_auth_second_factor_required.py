"""A user whose role reads medical data reaches no patient data before a verified second factor: the gate
refuses, every page redirects to the second-factor step, the API and FHIR answer 403. Reception needs it too
(DPI_RECEPTION_REQUIRES_OTP, on by default)."""

import pytest
from django.urls import reverse
from django_otp.middleware import OTPMiddleware

from access import gate
from access.policy import Action, Category
from tests.auth_support import sign_in, sign_in_verified, totp_code, totp_device
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_the_gate_refuses_an_unverified_session(cast):
    user = cast.physician
    OTPMiddleware._init_user_fields(user)  # what the middleware gives a session without a verified device
    decision = gate.authorize(user, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW)
    assert not decision.allowed and decision.basis == "deny:second_factor"
    assert audit_events(basis="deny:second_factor", actor_id=user.pk)


def test_an_unverified_physician_reaches_no_patient_page_nor_the_api(cast, client):
    totp_device(cast.physician)
    response = sign_in(client, "dr.house")
    assert response.status_code == 302 and response["Location"].startswith(reverse("authn-second-factor"))
    chart = reverse("web:chart", args=[cast.patient.pk])
    for path in [chart, reverse("web:patient_search"), "/", f"/patients/{cast.patient.pk}/notes/new/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(reverse("authn-second-factor")), path
    for path in ["/api/patients/", f"/api/patients/{cast.patient.pk}/", "/fhir/Patient", "/api/schema/"]:
        response = client.get(path)
        assert response.status_code == 403, path
        body = response.json()
        code = body["issue"][0]["details"]["text"] if path.startswith("/fhir/") else body["code"]
        assert code == "second_factor_required"
    assert client.post(chart + "break-glass/", {"reason_category": "emergency"}).status_code == 302
    # no gate decision was even asked for this user: nothing reached patient data (the refusals name the file
    # the request asked for, and are refusals for the second factor only)
    events = audit_events(actor_id=cast.physician.pk, patient_id=cast.patient.pk)
    assert [(e.outcome, e.basis) for e in events] == [("denied", "deny:second_factor")] * len(events)
    assert not audit_events(actor_id=cast.physician.pk, outcome="allowed", category__in=["medical", "administrative"])


def test_after_the_code_the_chart_opens(cast, client):
    sign_in_verified(client, cast.physician)
    response = client.get(reverse("web:chart", args=[cast.patient.pk]))
    assert response.status_code == 200
    assert [e.basis for e in audit_events(action="login", actor_id=cast.physician.pk)] == ["password", "second_factor"]


def test_a_wrong_code_is_refused_traced_and_counted(cast, client, settings):
    settings.DPI_LOGIN_MAX_FAILURES = 2
    device = totp_device(cast.nurse)
    sign_in(client, "nurse.joy")
    response = client.post(reverse("authn-second-factor"), {"token": "000000"})
    assert response.status_code == 403
    assert audit_events(action="login_failure", basis="second_factor", actor_id=cast.nurse.pk)
    response = client.post(reverse("authn-second-factor"), {"token": "999999"})
    # the account is now locked: the session is ended, and even a right code no longer helps
    assert response.status_code == 302 and "_auth_user_id" not in client.session
    assert audit_events(action="logout", basis="locked", actor_id=cast.nurse.pk)
    sign_in(client, "nurse.joy")
    assert "_auth_user_id" not in client.session
    assert totp_code(device)


def test_reception_needs_a_second_factor_unless_configured_otherwise(cast, client, settings):
    response = sign_in(client, "front.desk")
    assert response["Location"].startswith(reverse("authn-enrol"))
    assert client.get(reverse("web:patient_search")).status_code == 302
    settings.DPI_RECEPTION_REQUIRES_OTP = False
    response = client.get(reverse("web:patient_search"))
    assert not response.get("Location", "").startswith("/accounts/")  # the page's own rules apply now


def test_a_role_without_medical_data_is_not_stopped(cast, client):
    # Reception is not stopped when its second factor is not required; privileged roles (DPO, security, IT)
    # always are (issue #13): see tests/test_privileged_roles_need_a_second_factor.py.
    from django.test import override_settings

    with override_settings(DPI_RECEPTION_REQUIRES_OTP=False):
        response = sign_in(client, "front.desk")
    assert response.status_code == 302
    assert not response["Location"].startswith("/accounts/")


def test_the_session_key_changes_at_sign_in_and_at_the_second_factor(cast, client):
    client.get(reverse("login"))
    anonymous_key = client.session.session_key
    device = totp_device(cast.physician)
    sign_in(client, "dr.house")
    password_key = client.session.session_key
    client.post(reverse("authn-second-factor"), {"token": totp_code(device)})
    verified_key = client.session.session_key
    assert len({anonymous_key, password_key, verified_key} - {None}) >= 2
    assert password_key != verified_key
