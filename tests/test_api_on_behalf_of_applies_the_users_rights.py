"""X-On-Behalf-Of: the gate decides with the represented user's rights, and every event names both the user
and the client's service account."""

import pytest
from django.utils import timezone

from dpi import services as clinical_services
from dpi.api.testing import bearer, make_api_client, request_id
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def observation(cast):
    return clinical_services.observation_record(
        patient=cast.patient,
        author=cast.physician,
        label="Hémoglobine",
        value="13.1",
        unit="g/dL",
        effective_at=timezone.now(),
    )


def _get(client, token, url, user):
    rid = request_id()
    return client.get(url, headers=bearer(token, **{"X-On-Behalf-Of": user, "X-Request-ID": rid})), rid


def test_a_member_of_the_care_team_reads_through_the_client(cast, client, observation):
    api, token = make_api_client(on_behalf=True)
    response, rid = _get(client, token, f"/api/observations/{observation.pk}/", cast.physician.username)
    assert response.status_code == 200
    [event] = audit_events(request_id=rid)
    assert (event.actor_username, event.outcome, event.basis) == ("dr.house", "allowed", "care:encounter")
    assert event.details["on_behalf_of"] == "dr.house"
    assert event.details["service_account"] == api.user.username
    assert event.details["api_client"] == api.name


def test_a_user_outside_the_care_team_is_refused_even_through_a_trusted_client(cast, client, observation):
    _, token = make_api_client(on_behalf=True)
    response, rid = _get(client, token, f"/api/observations/{observation.pk}/", cast.other_physician.username)
    assert response.status_code == 403
    [event] = audit_events(request_id=rid)
    assert (event.actor_username, event.basis) == ("dr.other", "deny:no_care_relationship")
    assert event.details["on_behalf_of"] == "dr.other"


def test_the_tokens_scopes_still_narrow_what_the_user_may_ask(cast, client, observation):
    _, token = make_api_client(on_behalf=True, scopes=["administrative:view"])
    response, rid = _get(client, token, f"/api/observations/{observation.pk}/", cast.physician.username)
    assert response.status_code == 403
    [event] = audit_events(request_id=rid)
    assert event.basis == "deny:scope"


def test_a_client_not_trusted_to_act_on_behalf_is_refused(cast, client, observation):
    api, token = make_api_client(on_behalf=False)
    response, rid = _get(client, token, f"/api/observations/{observation.pk}/", cast.physician.username)
    assert response.status_code == 403
    [event] = audit_events(request_id=rid)
    assert (event.basis, event.actor_username) == ("deny:on_behalf_of", api.user.username)


def test_unknown_accounts_and_accounts_without_a_role_get_the_same_refusal(cast, client, observation):
    _, token = make_api_client(on_behalf=True)
    answers = [_get(client, token, f"/api/patients/{cast.patient.pk}/", name)[0] for name in ("nobody", "no.role")]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].json() == answers[1].json()
