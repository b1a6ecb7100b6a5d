"""break_glass: the Poisson tail of a repeat stays computable however many patients were reached by
break-the-glass in the window (an emergency physician's quarter, or a spree). ``factorial(171)`` and ``mu ^ i`` do
not fit a double precision: one such user made the rule's statement fail, and with it the whole detection pass,
every rule and every user."""

from datetime import timedelta

import pytest

from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401

pytestmark = pytest.mark.django_db
D = day_ago(3)
FAKE = 60_000_000


def test_two_hundred_patients_by_break_the_glass_in_a_quarter_are_scored_and_the_pass_completes(cast):
    for j in range(200):  # spread over the quarter before the last week: a long habit, no recent spree
        day = D - timedelta(days=8 + j % 80)
        ev(cast.physician, FAKE + j, at=local(day, 8 + j % 10, j % 60), action="break_glass", basis="break_glass")
    ev(cast.physician, FAKE + 999, at=local(D, 9), action="break_glass", basis="break_glass")
    [found] = hits(run(D), "break_glass", user=cast.physician, day=D)
    assert found["detail"]["long_patients"] == 201
    assert "201 patients by break-the-glass in 90 days" in found["en"]
