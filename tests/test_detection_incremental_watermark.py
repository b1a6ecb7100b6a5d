"""The incremental pass (Celery beat): watermark, overlap re-scan for late commits, the task itself, and the
replay command."""

from datetime import timedelta

import pytest
from django.core.management import call_command

from access.models import StaffProfile
from audit.detection import tasks
from audit.detection.models import Alert, DetectionRun, DetectionState
from tests.detection_support import day_ago, ev, fast_password_hashing, local  # noqa: F401
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def departed(cast):
    StaffProfile.objects.filter(user=cast.nurse).update(end_date=day_ago(30))


def test_task_moves_the_watermark_and_records_its_run(cast):
    departed(cast)
    ev(cast.nurse, None, at=local(day_ago(0), 0, 1), action="login")
    result = tasks.detect_new_events.apply().get()
    assert result["created"] == 1 and result["events"] >= 1
    state = DetectionState.objects.get()
    assert state.watermark is not None and state.history_from == day_ago(1)
    run = DetectionRun.objects.get()
    assert run.kind == "incremental" and run.alerts_created == 1
    trace = audit_events(resource_type="detection_run")
    assert [(e.actor_role, e.basis) for e in trace] == [("system", "system:detection")]


def test_late_commit_inside_the_overlap_is_caught(cast):
    departed(cast)
    tasks.detect_new_events.apply()
    assert not Alert.objects.exists()
    watermark = DetectionState.objects.get().watermark
    # A transaction that began before the watermark and committed after it.
    ev(cast.nurse, None, at=watermark - timedelta(minutes=5), action="login")
    tasks.detect_new_events.apply()
    assert Alert.objects.get().rules == ["after_end_date"]


def test_events_older_than_the_overlap_are_left_to_the_replay(cast):
    departed(cast)
    tasks.detect_new_events.apply()
    watermark = DetectionState.objects.get().watermark
    late = ev(cast.nurse, None, at=watermark - timedelta(minutes=30), action="login")
    tasks.detect_new_events.apply()
    assert not Alert.objects.exists()
    day = late.occurred_at.astimezone(local(day_ago(0), 0).tzinfo).date()
    call_command("detect_replay", "--from", day.isoformat(), "--to", day.isoformat())
    assert Alert.objects.get().event_ids == [late.id]


def test_replay_command_is_idempotent(cast, capsys):
    departed(cast)
    d = day_ago(2)
    ev(cast.nurse, None, at=local(d, 9), action="login")
    call_command("detect_replay", "--from", (d - timedelta(days=1)).isoformat(), "--to", d.isoformat())
    out = capsys.readouterr().out
    assert "alerts: 1 created" in out
    call_command("detect_replay", "--from", d.isoformat(), "--to", d.isoformat())
    assert "alerts: 0 created, 0 updated" in capsys.readouterr().out
    assert Alert.objects.count() == 1
