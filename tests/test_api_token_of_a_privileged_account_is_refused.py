"""A token is nobody's second factor: it authenticates only a plain integration account. A service account that
is given a privileged role (the DPO's, to read the trace), the superuser or admin-site flag, the identity-vigilance
group or a model permission — after its token was issued and cached — is refused at its next call, recorded."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from access.models import StaffProfile
from access.policy import IDENTITY_VIGILANCE_GROUP
from dpi.api.testing import bearer, make_api_client, request_id
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _make_privileged(user, kind: str) -> None:
    if kind in {"dpo", "it_admin", "reception"}:
        profile = StaffProfile.objects.get(user=user)
        profile.role = kind
        profile.save()
    elif kind == "superuser":
        user.is_superuser = True
        user.save()
    elif kind == "staff_flag":
        user.is_staff = True
        user.save()
    elif kind == "identity_vigilance":
        user.groups.add(Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)[0])
    elif kind == "model_permission":
        user.user_permissions.add(Permission.objects.get(content_type__app_label="auth", codename="change_user"))
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["dpo", "it_admin", "reception", "superuser", "staff_flag", "identity_vigilance",
                                  "model_permission"])
def test_the_token_of_a_service_account_given_a_privilege_is_refused(kind, cast):
    app, token = make_api_client()
    first = Client().get(f"/api/observations/?patient={cast.patient.pk}", headers=bearer(token))
    assert first.status_code == 200  # and now cached as verified
    _make_privileged(app.user, kind)
    pk = cast.patient.pk
    for path in ("/api/audit-events/", f"/api/observations/?patient={pk}", f"/fhir/Patient/{pk}", "/fhir/AuditEvent"):
        rid = request_id()
        response = Client().get(path, headers=bearer(token), HTTP_X_REQUEST_ID=rid)
        assert response.status_code == 401, (kind, path, response.status_code)
        assert [e.basis for e in audit_events(request_id=rid)] == ["deny:token_account"], (kind, path)
