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


def test_a_client_cannot_act_on_behalf_of_a_privileged_principal(cast):
    """A client's token is no second factor of theirs: X-On-Behalf-Of a privileged account is refused."""
    from dpi.api.testing import bearer, make_api_client

    _, token = make_api_client(on_behalf=True)
    for role in (Role.DPO, Role.SECURITY_OFFICER, Role.IT_ADMIN, None):
        user = make_user(f"behalf.{role.value if role else 'superuser'}", role or Role.RECEPTION)
        if role is None:
            user.is_superuser = True
            user.save()
        for path in ("/api/audit-events/", "/fhir/AuditEvent?patient={pk}", "/api/patients/{pk}/"):
            rid = request_id()
            response = Client().get(path.format(pk=cast.patient.pk), HTTP_X_REQUEST_ID=rid,
                                    headers=bearer(token, **{"X-On-Behalf-Of": user.username}))
            assert response.status_code == 403, (role, path, response.content[:200])
            assert [e.basis for e in audit_events(request_id=rid, outcome="denied")] == ["deny:on_behalf_of"]
            assert not audit_events(request_id=rid, outcome="allowed")


def test_a_merge_is_never_made_on_behalf_of_the_identity_vigilance_cell(cast):
    from django.contrib.auth.models import Group

    from access.policy import IDENTITY_VIGILANCE_GROUP
    from dpi.api.testing import bearer, make_api_client, post_json
    from patients.models import Patient
    from tests.personas import make_patient

    member = make_user("idv.member", Role.RECEPTION)
    member.groups.add(Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)[0])
    kept, merged = make_patient(), make_patient()
    _, token = make_api_client(on_behalf=True)
    rid = request_id()
    response = post_json(Client(), f"/api/patients/{kept.pk}/merge/", {"merged": merged.pk, "reason": "doublon"},
                         **bearer(token, **{"X-On-Behalf-Of": member.username, "X-Request-ID": rid}))
    assert response.status_code == 403
    assert not Patient.objects.get(pk=merged.pk).is_merged
    # The group is a privilege (access.gate.holds_privilege): no client acts on behalf of a member at all.
    assert [e.basis for e in audit_events(request_id=rid, outcome="denied")] == ["deny:on_behalf_of"]


def test_the_admin_sites_password_change_is_the_throttled_one(cast):
    """Django's admin password form does not count wrong current passwords: it leads to the project's page."""
    client = verified_client(cast.reception)
    for path in ("/admin/password_change/", "/admin/password_change/done/"):
        response = client.post(path, {"old_password": "deviné", "new_password1": "Zz9!qwertyuiopLKJ",
                                      "new_password2": "Zz9!qwertyuiopLKJ"})
        assert response.status_code == 302 and response["Location"] == "/accounts/password/change/"
    assert cast.reception.check_password("Correct-Horse-Battery-9!")
