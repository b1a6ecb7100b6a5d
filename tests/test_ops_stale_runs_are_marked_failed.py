"""Long runs keep a heartbeat (dpi.jobs): a finished body is "finished", an exception (a soft time limit) is
"failed" with its class, and a run whose heartbeat stopped is failed by the sweep, with the retention run it was
doing; a live run is left alone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dpi import jobs
from dpi.models import JobRun
from retention.models import RetentionRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_records_its_outcome():
    with jobs.job_running("backup", task_id="t1") as run:
        assert JobRun.objects.get(pk=run.pk).status == JobRun.Status.RUNNING
    assert JobRun.objects.get(pk=run.pk).status == JobRun.Status.FINISHED
    with pytest.raises(TimeoutError), jobs.job_running("backup", task_id="t2") as failed:
        raise TimeoutError("soft time limit")
    failed.refresh_from_db()
    assert failed.status == JobRun.Status.FAILED and failed.message.startswith("TimeoutError")


def test_the_sweep_fails_a_dead_retention_run_and_leaves_live_ones(settings):
    settings.DPI_JOB_STALE_SECONDS = 60
    now = timezone.now()
    dead = JobRun.objects.create(kind="retention", task_id="dead", heartbeat_at=now - timedelta(minutes=5))
    alive = JobRun.objects.create(kind="detection_replay", task_id="alive", heartbeat_at=now - timedelta(seconds=5))
    retention = RetentionRun.objects.create(profile="establishment")
    assert jobs.stale_runs_fail(now=now) == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    retention.refresh_from_db()
    assert dead.status == JobRun.Status.FAILED and "no heartbeat" in dead.message
    assert alive.status == JobRun.Status.RUNNING
    assert retention.status == RetentionRun.Status.FAILED and "worker stopped" in retention.message
    assert jobs.stale_runs_fail(now=now) == 0  # nothing left to fail


def test_celery_gives_a_dead_workers_task_back_within_the_visibility_timeout():
    from dpi.celery import app

    options = app.conf.broker_transport_options
    assert options["visibility_timeout"] == 1800 and options["unacked_restore_interval"] <= 10
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.task_soft_time_limit == 600 and app.conf.task_time_limit == 660
    long_runs = {"retention.tasks.archive_due", "dpi.compliance.tasks.backup_scheduled",
                 "audit.detection.tasks.detect_replay_yesterday", "audit.tasks.chain_verify"}
    app.loader.import_default_modules()
    for name in long_runs:
        task = app.tasks[name]
        assert task.acks_late and task.soft_time_limit > 600 and task.time_limit > task.soft_time_limit, name
