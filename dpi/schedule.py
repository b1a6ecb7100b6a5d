"""Every periodic task, in one place, with why it runs at that cadence."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {}
