"""A privilege is not only a role: a maintenance provider, the admin-site or superuser flag, the identity-vigilance
group, any model permission (of the account or of one of its groups) each need a verified second factor on every
channel, even on an account whose role alone would not (reception with DPI_RECEPTION_REQUIRES_OTP off). The rule is
read at every request, so a privilege given to a session signed in with a password alone counts at once; a session
whose device is deleted is no longer verified."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone
from django_otp.middleware import OTPMiddleware
from django_otp.plugins.otp_totp.models import TOTPDevice

from access import gate
from access.policy import IDENTITY_VIGILANCE_GROUP, Action, Category, Role
from dpi.api.testing import request_id
from dpi.compliance.services import maintenance_window_approve
from tests.helpers import audit_events
from tests.personas import make_user
from tests.ui_support import _model_backend, verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _reception_without_codes(settings):
    settings.DPI_RECEPTION_REQUIRES_OTP = False  # the role alone asks nothing: only the privilege can


def _group(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def _permission() -> Permission:
    return Permission.objects.get(content_type__app_label="auth", codename="change_user")


def _grant(user, kind: str) -> None:
    """Give ``user`` one privilege besides its role."""
    if kind == "staff_flag":
        user.is_staff = True
        user.save()
    elif kind == "superuser":
        user.is_superuser = True
        user.save()
    elif kind == "identity_vigilance":
        user.groups.add(_group(IDENTITY_VIGILANCE_GROUP))
    elif kind == "model_permission":
        user.user_permissions.add(_permission())
    elif kind == "group_permission":
        helpdesk = _group("helpdesk")
        helpdesk.permissions.add(_permission())
        user.groups.add(helpdesk)
    else:
        raise AssertionError(kind)


def _window(provider) -> None:
    now = timezone.now()
    maintenance_window_approve(provider=provider, starts_at=now - timedelta(minutes=5),
                               ends_at=now + timedelta(hours=2), purpose="upgrade",
                               approved_by=make_user("rssi.approver", Role.SECURITY_OFFICER))


def _privileged(kind: str):
    if kind == "maintenance_role":
        user = make_user("maint.vendor", Role.MAINTENANCE)
        _window(user)
    elif kind == "maintenance_group":  # no staff profile: the group gives the role
        user = make_user("maint.group", None)
        user.groups.add(_group(Role.MAINTENANCE.value))
        _window(user)
    else:
        user = make_user(f"desk.{kind}", Role.RECEPTION)
        _grant(user, kind)
    return user


def _password_only(user) -> Client:
    client = Client()
    client.force_login(user, backend=_model_backend())
    return client


def _owes_a_second_factor(client: Client, what) -> None:
    for path in ("/", "/admin/", "/admin/patients/patient/", "/compliance/maintenance/status", "/security/"):
        response = client.get(path)
        assert response.status_code == 302, (what, path, response.status_code)
        assert response["Location"].startswith(("/accounts/second-factor/", "/accounts/enrol")), (what, path)
    for path in ("/api/patients/", "/fhir/Patient", "/api/audit-events/"):
        rid = request_id()
        response = client.get(path, HTTP_X_REQUEST_ID=rid)
        assert response.status_code == 403, (what, path, response.status_code)
        # no device yet: the step owed is the enrolment of one
        assert [e.basis for e in audit_events(request_id=rid)] in (["deny:second_factor"], ["deny:enrol"]), what


KINDS = ["maintenance_role", "maintenance_group", "staff_flag", "superuser", "identity_vigilance", "model_permission",
         "group_permission"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_password_alone_reaches_nothing(kind, cast):
    user = _privileged(kind)
    _owes_a_second_factor(_password_only(user), kind)


@pytest.mark.parametrize("kind", [k for k in KINDS if not k.startswith("maintenance")])
def test_the_gate_refuses_an_unverified_privileged_account(kind, cast):
    user = _privileged(kind)
    OTPMiddleware._init_user_fields(user)  # a session without a verified device
    decision = gate.decide(user, patient_id=cast.patient.pk, category=Category.ADMINISTRATIVE, action=Action.VIEW)
    assert (decision.allowed, decision.basis) == (False, "deny:second_factor")


@pytest.mark.parametrize("kind", ["staff_flag", "superuser", "identity_vigilance", "model_permission",
                                  "group_permission"])
def test_a_privilege_given_mid_session_asks_for_the_code_at_the_next_request(kind, cast):
    client = _password_only(cast.reception)
    assert client.get("/admin/").status_code == 200  # reception without codes, as configured
    _grant(cast.reception, kind)
    _owes_a_second_factor(client, kind)


def test_without_a_privilege_reception_keeps_its_configured_rule(cast):
    client = _password_only(cast.reception)
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/patients/").status_code == 403  # the API always wants a verified session


@pytest.mark.parametrize("role", [Role.DPO, Role.IT_ADMIN, Role.PHYSICIAN])
def test_deleting_the_device_ends_the_verified_session(role, cast):
    user = make_user(f"dev.{role.value}", role)
    client = verified_client(user)
    home = client.get("/")
    assert not home.get("Location", "").startswith("/accounts/"), role
    TOTPDevice.objects.filter(user=user).delete()
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/"), role
    assert client.get("/api/patients/").status_code == 403
