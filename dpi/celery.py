"""Celery app. Periodic schedules are declared once, in dpi/schedule.py."""

import os

from celery import Celery
from celery.signals import before_task_publish, setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")

app = Celery("dpi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _load_schedule(sender, **kwargs):
    from dpi.schedule import BEAT_SCHEDULE

    sender.conf.beat_schedule = BEAT_SCHEDULE


@setup_logging.connect
def _json_logging(**kwargs):
    """Workers and beat log through Django's LOGGING (JSON lines, no task payloads: dpi/logs.py) instead of
    Celery's own plain-text set-up."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@before_task_publish.connect
def _carry_request_id(headers=None, **kwargs):
    """A task queued while serving a request logs that request's id (read back by dpi.logs)."""
    from audit.context import current

    request_id = current().request_id
    if headers is not None and request_id and "dpi_request_id" not in headers:
        headers["dpi_request_id"] = request_id
