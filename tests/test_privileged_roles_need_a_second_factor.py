"""Finding 4 of issue 13: the DPO, the security officer, IT administrators and superusers owe a verified second
factor on every page and API call; every export of patient data asks a fresh one-time code."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from access.authn.services import FRESH_OTP_AT
from access.policy import Role
from dpi.api.testing import request_id
from tests.helpers import audit_events
from tests.personas import make_user
from tests.ui_support import _model_backend, totp_code, totp_device, verified_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", [Role.DPO, Role.SECURITY_OFFICER, Role.IT_ADMIN, None])
def test_password_only_sessions_reach_nothing(role, cast):
    user = make_user(f"priv.{role.value if role else 'superuser'}", role)
    if role is None:
        user.is_superuser = True
        user.save()
    totp_device(user)
    client = Client()
    client.force_login(user, backend=_model_backend())
    for path in ("/dpo/", "/dpo/access-log/", f"/audit/patients/{cast.patient.pk}/access-report.csv",
                 "/compliance/breaches", "/retention/status"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/second-factor/" in response["Location"], (role, path)
    rid = request_id()
    response = client.get("/api/audit-events/", HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 403
    assert audit_events(request_id=rid, outcome="denied")


def test_an_access_report_needs_a_fresh_code(cast):
    client = verified_client(cast.dpo)
    path = f"/audit/patients/{cast.patient.pk}/access-report.csv"
    response = client.get(path)
    assert response.status_code == 403 and 'name="token"' in response.content.decode()
    assert not audit_events(actor_id=cast.dpo.pk, action="export", outcome="allowed")
    code = totp_code(totp_device(cast.dpo), steps_ahead=1)
    response = client.post("/accounts/second-factor/confirm/?next=" + path, {"token": code})
    assert response.status_code == 302
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    session = client.session
    session[FRESH_OTP_AT] = time.time() - 3600
    session.save()
    assert client.get(path).status_code == 403
