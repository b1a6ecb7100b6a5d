"""dpi's Celery app with a fast copy of the real beat schedule, for the multi-node test
(``celery -A tests.fast_beat beat``): the cheap periodic tasks of dpi/schedule.py, each every
``DPI_TEST_BEAT_PERIOD`` seconds, sent by dpi's own scheduler (the leader lease of dpi/beat.py)."""

from __future__ import annotations

import os

from dpi.celery import app
from dpi.schedule import BEAT_SCHEDULE

# Periodic tasks that are quick on a small database (no backup, retention or full verification).
FAST_ENTRIES = ("audit-chain-seal", "audit-checkpoint-sign", "detection-new-events", "jobs-stale-sweep",
                "authn-login-locks-release")


@app.on_after_finalize.connect(weak=False)
def _fast_schedule(sender, **kwargs):
    period = float(os.environ["DPI_TEST_BEAT_PERIOD"])
    sender.conf.beat_schedule = {name: {**BEAT_SCHEDULE[name], "schedule": period} for name in FAST_ENTRIES}


__all__ = ["app"]
