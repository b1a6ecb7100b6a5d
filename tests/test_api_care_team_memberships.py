"""Care-team memberships through the API: medical data category (adding someone opens the chart to them);
prescribers in the team and the integration feed manage them, not nurses nor the DIM."""

from datetime import timedelta

import pytest
from django.utils import timezone

from access import gate
from access.policy import Action, Category
from dpi.api.testing import bearer, make_api_client, post_json, request_id
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _can_read_chart(user, patient_id) -> bool:
    return gate.decide(user, patient_id=patient_id, category=Category.MEDICAL, action=Action.VIEW).allowed


def _body(cast, user="dr.other"):
    return {
        "patient": cast.patient.pk,
        "user": user,
        "end": (timezone.now() + timedelta(days=3)).isoformat(),
        "reason": "avis pneumologique",
    }


def test_the_integration_feed_adds_and_ends_a_membership(cast, client):
    _, token = make_api_client()
    assert not _can_read_chart(cast.other_physician, cast.patient.pk)
    created = post_json(client, "/api/care-team-memberships/", _body(cast), **bearer(token))
    assert created.status_code == 201
    assert _can_read_chart(cast.other_physician, cast.patient.pk)
    ended = post_json(client, f"/api/care-team-memberships/{created.json()['id']}/end/", {}, **bearer(token))
    assert ended.status_code == 200
    assert not _can_read_chart(cast.other_physician, cast.patient.pk)


def test_a_physician_of_the_team_adds_a_colleague_through_a_client(cast, client):
    _, token = make_api_client(on_behalf=True)
    response = post_json(
        client, "/api/care-team-memberships/", _body(cast), **bearer(token, **{"X-On-Behalf-Of": "dr.house"})
    )
    assert response.status_code == 201
    assert response.json()["granted_by"] == "dr.house"


@pytest.mark.parametrize("username", ["nurse.joy", "dr.dim", "dr.other"])
def test_others_cannot_change_the_team(cast, client, username):
    _, token = make_api_client(on_behalf=True)
    rid = request_id()
    response = post_json(
        client,
        "/api/care-team-memberships/",
        _body(cast, user="nurse.joy"),
        **bearer(token, **{"X-On-Behalf-Of": username, "X-Request-ID": rid}),
    )
    assert response.status_code == 403
    assert [e.outcome for e in audit_events(request_id=rid)] == ["denied"]


def test_only_an_active_care_professional_can_join(cast, client):
    _, token = make_api_client()
    for user in ("the.dpo", "nobody"):
        response = post_json(client, "/api/care-team-memberships/", _body(cast, user=user), **bearer(token))
        assert response.status_code == 400 and "user" in response.json()
