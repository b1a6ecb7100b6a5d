"""Bearer tokens: stored as digests, refused (401 and an access event) when wrong, revoked or expired."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from dpi.api.models import ApiClient, ApiToken
from dpi.api.services import api_token_revoke
from dpi.api.testing import bearer, make_api_client, request_id
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_a_wrong_secret_is_401_and_recorded(cast, client):
    api, token = make_api_client()
    forged = token[:-4] + "AAAA"
    rid = request_id()
    response = client.get(f"/api/patients/{cast.patient.pk}/", headers=bearer(forged, **{"X-Request-ID": rid}))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    [event] = audit_events(request_id=rid)
    assert (event.action, event.outcome, event.basis) == ("login_failure", "denied", "deny:bad_token")
    assert forged.split("_", 2)[2] not in str(event.details)  # never the secret


def test_revoked_and_expired_tokens_are_refused(cast, client):
    api, token = make_api_client()
    url = f"/api/patients/{cast.patient.pk}/"
    assert client.get(url, headers=bearer(token)).status_code == 200
    row = ApiToken.objects.get(client=api)
    # Shortened by the application (admin site, service): the verified-token cache is told at once.
    row.expires_at = timezone.now() - timedelta(seconds=1)
    row.save(update_fields=["expires_at"])
    assert client.get(url, headers=bearer(token)).status_code == 401
    row.expires_at = timezone.now() + timedelta(days=1)
    row.save(update_fields=["expires_at"])
    assert client.get(url, headers=bearer(token)).status_code == 200
    api_token_revoke(actor=None, token=row)
    assert client.get(url, headers=bearer(token)).status_code == 401


def test_no_credentials_is_401(cast, client):
    assert client.get(f"/api/patients/{cast.patient.pk}/").status_code == 401
    assert client.get("/api/schema/").status_code == 401


def test_only_a_digest_of_the_token_is_stored(cast):
    api, token = make_api_client()
    row = ApiToken.objects.get(client=api)
    assert token.split("_")[2] not in (row.digest, row.prefix)
    assert row.last_used_at is None


def test_the_management_command_creates_issues_and_revokes(cast, capsys):
    call_command("api_client", "create", "lab-sil-cmd", "--scopes", "medical:view,medical:create")
    out = capsys.readouterr().out
    client = ApiClient.objects.get(name="lab-sil-cmd")
    assert client.user.staff.role == "integration"
    assert not client.user.has_usable_password()
    token = out.split("token (shown once): ")[1].strip()
    prefix = token.split("_")[1]
    call_command("api_client", "revoke", prefix)
    assert ApiToken.objects.get(prefix=prefix).revoked_at is not None
    call_command("api_client", "list")
    assert "lab-sil-cmd" in capsys.readouterr().out
