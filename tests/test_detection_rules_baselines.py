"""Rules learned from history: unusual hour (the user's own hours), volume (own baseline AND peers, robust
z-score), browsing, bulk export — each with a positive and a negative case."""

from datetime import timedelta

import pytest

from access.policy import Role
from tests.detection_support import day_ago, ev, fast_password_hashing, history, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D = day_ago(3)
FAKE = 50_000_000  # patient ids without a file: volume rules only count them


def test_access_at_an_hour_unusual_for_this_user(cast):
    history(cast.other_physician, days=range(4, 14))  # ten days, 9:00-17:00
    stranger = make_patient()
    ev(cast.other_physician, stranger, at=local(D, 3, 10))
    summary = run(D - timedelta(days=10), D)
    found = hits(summary, "unusual_hour", user=cast.other_physician)
    assert [(h["patient_id"], h["detail"]["hours"]) for h in found] == [(stranger.pk, [3])]


def test_daytime_access_by_a_day_worker_is_not_unusual(cast):
    history(cast.other_physician, days=range(4, 14))
    ev(cast.other_physician, make_patient(), at=local(D, 10))
    assert not hits(run(D - timedelta(days=10), D), "unusual_hour")


def test_night_worker_at_night_is_not_unusual(cast):
    night_nurse = make_user("night.nurse", Role.NURSE, [cast.other_unit])
    history(night_nurse, days=range(4, 14), hours=range(0, 6), per_hour=3)
    ev(night_nurse, make_patient(), at=local(D, 3, 10))
    assert not hits(run(D - timedelta(days=10), D), "unusual_hour")


def test_unusual_hour_needs_enough_history(cast):
    history(cast.other_physician, days=range(4, 6))  # two days only
    ev(cast.other_physician, make_patient(), at=local(D, 3, 10))
    assert not hits(run(D - timedelta(days=10), D), "unusual_hour")


def _ward(cast, n_peers=6, per_day=5, days=range(4, 12)):
    nurses = [make_user(f"ward.nurse{i}", Role.NURSE, [cast.cardio]) for i in range(n_peers)]
    for n in days:
        for k, nurse in enumerate(nurses):
            for j in range(per_day):
                ev(nurse, FAKE + k * 100 + j, at=local(day_ago(n), 9, j))
    return nurses


def test_volume_spike_against_own_history_and_peers(cast):
    # three weeks of history: enough days of the same kind (weekdays or weekends) as D, whatever today is
    nurses = _ward(cast, per_day=5, days=range(4, 25))
    for k, nurse in enumerate(nurses[1:]):
        for j in range(5):
            ev(nurse, FAKE + (k + 1) * 100 + j, at=local(D, 9, j))
    for j in range(40):
        ev(nurses[0], FAKE + 10_000 + j, at=local(D, 10, j))
    found = hits(run(D - timedelta(days=21), D), "volume")
    assert [(h["actor_id"], h["patient_id"]) for h in found] == [(nurses[0].pk, None)]
    assert found[0]["detail"]["patients"] == 40 and found[0]["detail"]["own_median"] == 5


def test_ordinary_day_is_not_a_volume_anomaly(cast):
    nurses = _ward(cast)
    for j in range(8):
        ev(nurses[0], FAKE + 10_000 + j, at=local(D, 10, j))
    assert not hits(run(D - timedelta(days=8), D), "volume")


def test_user_whose_usual_volume_is_high_is_not_flagged_against_quieter_peers(cast):
    nurses = _ward(cast)
    busy = nurses[0]
    for n in range(4, 12):
        for j in range(40):
            ev(busy, FAKE + 20_000 + n * 100 + j, at=local(day_ago(n), 11, j))
    for j in range(45):
        ev(busy, FAKE + 30_000 + j, at=local(D, 10, j))
    # (its first days, before its own history is known, were judged against peers alone)
    assert not hits(run(D - timedelta(days=8), D), "volume", day=D)


def test_browsing_many_charts_without_relationship_or_action(cast):
    for j in range(15):
        ev(cast.other_physician, FAKE + j, at=local(D, 14, j))
    found = hits(run(D), "browsing", user=cast.other_physician)
    assert found and found[0]["detail"]["view_only_unexplained"] == 15


def test_charts_with_clinical_work_are_not_browsing(cast):
    for j in range(15):
        ev(cast.other_physician, FAKE + j, at=local(D, 14, j))
        ev(cast.other_physician, FAKE + j, at=local(D, 14, j), action="create")
    assert not hits(run(D), "browsing")


def test_bulk_export(cast):
    for j in range(20):
        ev(cast.physician, FAKE + j, at=local(D, 16, j), action="export")
    found = hits(run(D), "bulk_export", user=cast.physician)
    assert found and found[0]["detail"]["patients"] == 20


def test_routine_exports_of_a_dim_coder_are_not_bulk(cast):
    for n in range(4, 10):
        for j in range(20):
            ev(cast.dim, FAKE + n * 100 + j, at=local(day_ago(n), 11, j), action="export", basis="role")
    for j in range(22):
        ev(cast.dim, FAKE + 5000 + j, at=local(D, 11, j), action="export", basis="role")
    # (the very first export day, with no history yet, is flagged: a new routine is worth a look)
    assert not hits(run(D - timedelta(days=6), D), "bulk_export", day=D)
