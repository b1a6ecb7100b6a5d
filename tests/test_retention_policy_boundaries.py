"""Each retention rule at its boundaries: the day before, the day of, the day after; minors; deceased.

A period of N years from day D runs through the anniversary (art. 641-642 CPC): due the day after it.
The Python rules (policies.RetentionPolicy) and the set-based SQL selection must agree on every case.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from retention import policies, selectors, services
from retention.policies import ESTABLISHMENT, PRACTICE, PatientDates
from retention.testing import age
from tests.personas import make_patient

PARIS = ZoneInfo("Europe/Paris")
ADULT = date(1960, 5, 20)


def d(s: str) -> date:
    return date.fromisoformat(s)


def around(day: date) -> tuple[date, date, date]:
    return day - timedelta(days=1), day, day + timedelta(days=1)


# --- health establishment (R1112-7 CSP) --------------------------------------------------------------------
def test_establishment_keeps_20_years_from_the_last_activity():
    facts = PatientDates(last_activity=d("2000-03-10"), birth_date=ADULT)
    assert ESTABLISHMENT.kept_through(facts) == d("2020-03-10")
    before, day, after = around(d("2020-03-10"))
    assert not ESTABLISHMENT.disposal_due(facts, before)
    assert not ESTABLISHMENT.disposal_due(facts, day)
    assert ESTABLISHMENT.disposal_due(facts, after)


def test_establishment_live_period_ends_after_5_years():
    facts = PatientDates(last_activity=d("2000-03-10"), birth_date=ADULT)
    before, day, after = around(d("2005-03-10"))
    assert not ESTABLISHMENT.archive_due(facts, before)
    assert not ESTABLISHMENT.archive_due(facts, day)
    assert ESTABLISHMENT.archive_due(facts, after)


def test_young_child_is_kept_until_the_28th_birthday():
    # Aged 4 at the last stay: 20 years end at 24, so the record is kept through the 28th birthday.
    facts = PatientDates(last_activity=d("2005-01-10"), birth_date=d("2000-06-15"))
    assert ESTABLISHMENT.kept_through(facts) == d("2028-06-15")
    before, day, after = around(d("2028-06-15"))
    assert not ESTABLISHMENT.disposal_due(facts, before)
    assert not ESTABLISHMENT.disposal_due(facts, day)
    assert ESTABLISHMENT.disposal_due(facts, after)


def test_older_minor_reaches_28_within_the_20_years():
    # Aged 10 at the last stay: 20 years end at 30, later than the 28th birthday.
    facts = PatientDates(last_activity=d("2010-01-10"), birth_date=d("2000-01-01"))
    assert ESTABLISHMENT.kept_through(facts) == d("2030-01-10")


def test_minor_at_exactly_8_years_old():
    # 20 years after the 8th birthday is the 28th birthday: both rules give the same day.
    facts = PatientDates(last_activity=d("2008-06-15"), birth_date=d("2000-06-15"))
    assert ESTABLISHMENT.kept_through(facts) == d("2028-06-15")
    facts = PatientDates(last_activity=d("2008-06-14"), birth_date=d("2000-06-15"))
    assert ESTABLISHMENT.kept_through(facts) == d("2028-06-15")  # 28th birthday is one day after the 20 years


def test_death_within_10_years_keeps_10_years_from_death():
    facts = PatientDates(last_activity=d("2010-05-01"), birth_date=ADULT, date_of_death=d("2015-02-01"))
    assert ESTABLISHMENT.kept_through(facts) == d("2025-02-01")
    before, day, after = around(d("2025-02-01"))
    assert not ESTABLISHMENT.disposal_due(facts, before)
    assert not ESTABLISHMENT.disposal_due(facts, day)
    assert ESTABLISHMENT.disposal_due(facts, after)


def test_death_rule_boundary_at_exactly_10_years_after_the_last_visit():
    last = d("2010-05-01")
    # "moins de dix ans": the day before the 10th anniversary, the death rule applies...
    day_before = PatientDates(last_activity=last, birth_date=ADULT, date_of_death=d("2020-04-30"))
    assert ESTABLISHMENT.kept_through(day_before) == d("2030-04-30")
    # ...on the anniversary and after, it does not: 20 years from the last visit.
    on_day = PatientDates(last_activity=last, birth_date=ADULT, date_of_death=d("2020-05-01"))
    assert ESTABLISHMENT.kept_through(on_day) == d("2030-05-01")
    day_after = PatientDates(last_activity=last, birth_date=ADULT, date_of_death=d("2020-05-02"))
    assert ESTABLISHMENT.kept_through(day_after) == d("2030-05-01")


def test_deceased_child_death_rule_applies_in_all_cases():
    # "Dans tous les cas": 10 years from death even if that ends before the 28th birthday.
    facts = PatientDates(last_activity=d("2010-03-01"), birth_date=d("2008-01-01"), date_of_death=d("2012-07-01"))
    assert ESTABLISHMENT.kept_through(facts) == d("2022-07-01")


def test_leap_day():
    facts = PatientDates(last_activity=d("2004-02-29"), birth_date=ADULT)
    assert ESTABLISHMENT.kept_through(facts) == d("2024-02-29")
    assert ESTABLISHMENT.live_through(facts) == d("2009-02-28")


# --- medical practice (CNIL 2020-081) ----------------------------------------------------------------------
def test_practice_5_years_live_then_15_archived():
    facts = PatientDates(last_activity=d("2010-01-10"), birth_date=d("2005-01-01"), date_of_death=d("2011-01-01"))
    assert PRACTICE.live_through(facts) == d("2015-01-10")
    assert PRACTICE.kept_through(facts) == d("2030-01-10")  # no minor or death rule in the framework
    for today, due in zip(around(d("2015-01-10")), (False, False, True), strict=True):
        assert PRACTICE.archive_due(facts, today) is due
    for today, due in zip(around(d("2030-01-10")), (False, False, True), strict=True):
        assert PRACTICE.disposal_due(facts, today) is due


# --- the SQL selection agrees ------------------------------------------------------------------------------
CASES = [
    # (last activity local datetime, birth, death)
    (datetime(2000, 3, 10, 12, 0), ADULT, None),
    (datetime(2010, 1, 10, 23, 30), ADULT, None),  # late evening in Paris: still the 10th locally
    (datetime(2005, 1, 10, 9, 0), d("2000-06-15"), None),
    (datetime(2010, 5, 1, 9, 0), ADULT, d("2015-02-01")),
    (datetime(2010, 5, 1, 9, 0), ADULT, d("2020-04-30")),
    (datetime(2010, 5, 1, 9, 0), ADULT, d("2020-05-01")),
    (datetime(2010, 3, 1, 9, 0), d("2008-01-01"), d("2012-07-01")),
    (datetime(2004, 2, 29, 9, 0), ADULT, None),
]


@pytest.mark.django_db
@pytest.mark.parametrize("profile", ["establishment", "practice"])
def test_sql_selection_matches_the_rules_at_each_boundary(settings, profile):
    settings.DPI_RETENTION_PROFILE = profile
    policy = policies.current_policy()
    patients = []
    for last, birth, death in CASES:
        p = make_patient(birth_date=birth, date_of_death=death)
        age([p.pk], last_activity=datetime.combine(last.date(), last.time(), PARIS))
        patients.append((p, PatientDates(last_activity=last.date(), birth_date=birth, date_of_death=death)))
    dates = selectors.retention_dates([p.pk for p, _ in patients])
    for p, facts in patients:
        assert dates[p.pk]["kept_through"] == policy.kept_through(facts), (profile, facts)
        assert dates[p.pk]["live_through"] == policy.live_through(facts), (profile, facts)
        for today in around(policy.live_through(facts)):
            due = p.pk in services.due_patient_ids(today=today)
            assert due is policy.archive_due(facts, today), (profile, facts, today)


@pytest.mark.django_db
def test_new_activity_moves_the_live_period(cast):
    from patients import services as patient_services

    p = make_patient()
    age([p.pk], last_activity=datetime.combine(d("2015-01-10"), time(10), PARIS))
    assert p.pk in services.due_patient_ids(today=d("2020-01-11"))
    patient_services.encounter_admit(patient=p, unit=cast.cardio,
                                     start=datetime.combine(d("2019-06-01"), time(10), PARIS))
    assert p.pk not in services.due_patient_ids(today=d("2020-01-11"))
    assert p.pk in services.due_patient_ids(today=d("2024-06-02"))
