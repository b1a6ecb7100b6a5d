"""Every periodic task, in one place, with why it runs at that cadence."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    # Care relationships end at discharge + N days, at a membership's end: remove them within 15 minutes.
    "access-care-grants-sweep": {"task": "access.tasks.care_grants_sweep", "schedule": 15 * 60},
    # Full recompute nightly catches what no event signals (a contract ending, a staff member leaving).
    "access-care-grants-rebuild": {"task": "access.tasks.care_grants_rebuild", "schedule": crontab(hour=2, minute=30)},
}
