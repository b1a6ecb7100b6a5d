"""Only a DIM physician may ask for an archived record to come back, for a stated reason; a second authorised person
(another DIM physician or the DPO) must approve; every step is in the access trace."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.policy import Role
from retention import services
from retention.models import RestoreRequest
from retention.testing import age, full_record, where_is
from tests.helpers import audit_events
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"


@pytest.fixture
def archived(cast):
    patient = make_patient(birth_name="RESTAURE")
    full_record(patient=patient, author=cast.physician, unit=cast.cardio)
    age([patient.pk], last_activity=timezone.now() - timedelta(days=365 * 6))
    services.retention_run()
    assert where_is(patient.pk) == {"archived"}
    return patient


REASON = "Recours du patient : communication du dossier (art. L1111-7 CSP)"


def test_only_the_dim_may_request(cast, archived):
    for user in (cast.physician, cast.reception, cast.dpo, cast.outsider):
        with pytest.raises(PermissionDenied):
            services.restore_request_create(user=user, patient_id=archived.pk, reason=REASON)
        assert [e.outcome for e in audit_events(actor_id=user.pk, patient_id=archived.pk)] == ["denied"]
    with pytest.raises(ValidationError) as exc:
        services.restore_request_create(user=cast.dim, patient_id=archived.pk, reason="parce que")
    assert "reason" in exc.value.message_dict
    assert not RestoreRequest.objects.exists()


def test_dim_without_a_verified_second_factor_is_refused(cast, archived):
    cast.dim.is_verified = lambda: False
    with pytest.raises(PermissionDenied):
        services.restore_request_create(user=cast.dim, patient_id=archived.pk, reason=REASON)
    assert audit_events(actor_id=cast.dim.pk)[-1].basis == "deny:second_factor"


def test_the_requester_cannot_approve_and_a_second_person_can(cast, archived, django_capture_on_commit_callbacks):
    req = services.restore_request_create(user=cast.dim, patient_id=archived.pk, reason=REASON)
    with pytest.raises(PermissionDenied):
        services.restore_request_approve(user=cast.dim, request_id=req.pk)
    for user in (cast.physician, cast.reception):
        with pytest.raises(PermissionDenied):
            services.restore_request_approve(user=user, request_id=req.pk)
    assert where_is(archived.pk) == {"archived"}
    assert audit_events(actor_id=cast.dim.pk, basis="deny:four_eyes")

    second_dim = make_user("dr.dim2", Role.DIM)
    with django_capture_on_commit_callbacks(execute=True):
        req = services.restore_request_approve(user=second_dim, request_id=req.pk, comment="accord")
    assert req.state == "restored" and req.decided_by == second_dim
    assert where_is(archived.pk) == {"live"}

    steps = [(e.actor_id, e.details.get("step"), e.action) for e in audit_events(patient_id=archived.pk)
             if e.outcome == "allowed"]
    assert (cast.dim.pk, "restore_request", "other") in steps
    assert (second_dim.pk, "restore_approve", "other") in steps
    assert (None, "restore", "create") in steps
    # Nothing but ids in those traces.
    for e in audit_events(patient_id=archived.pk):
        assert "RESTAURE" not in str(e.details) and REASON not in str(e.details)


def test_a_rejected_request_restores_nothing(cast, archived):
    req = services.restore_request_create(user=cast.dim, patient_id=archived.pk, reason=REASON)
    req = services.restore_request_reject(user=cast.dpo, request_id=req.pk, comment="motif insuffisant")
    assert req.state == "rejected"
    services.retention_run()
    assert where_is(archived.pk) == {"archived"}


def verified_client(client, user):
    device = TOTPDevice.objects.create(user=user, name="t", confirmed=True)
    client.force_login(user, backend="access.authn.backends.ThrottledModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def test_json_endpoints(client, cast, archived, django_capture_on_commit_callbacks):
    from django.test import Client

    assert client.post("/retention/restore-requests", {"patient_id": archived.pk, "reason": REASON}).status_code == 401
    verified_client(client, cast.physician)
    assert client.post("/retention/restore-requests", {"patient_id": archived.pk, "reason": REASON}).status_code == 403
    assert client.get("/retention/status").status_code == 403

    dim = verified_client(Client(), cast.dim)
    found = dim.post("/retention/archives/find", {"ipp": archived.ipp}).json()
    assert [a["patient_id"] for a in found["archives"]] == [archived.pk]
    bad = dim.post("/retention/restore-requests", {"patient_id": archived.pk, "reason": "court"})
    assert bad.status_code == 400 and "reason" in bad.json()["errors"]
    created = dim.post("/retention/restore-requests", {"patient_id": archived.pk, "reason": REASON},
                       content_type="application/json")
    assert created.status_code == 201
    req_id = created.json()["id"]
    assert dim.post(f"/retention/restore-requests/{req_id}/approve").status_code == 403

    dpo = verified_client(Client(), cast.dpo)
    status = dpo.get("/retention/status").json()
    assert status["restore_requests_pending"] == 1 and status["archives"] == {"archived": 1}
    with django_capture_on_commit_callbacks(execute=True):
        approved = dpo.post(f"/retention/restore-requests/{req_id}/approve", {"comment": "ok"})
    assert approved.status_code == 200 and approved.json()["state"] == "restored"
    assert where_is(archived.pk) == {"live"}
