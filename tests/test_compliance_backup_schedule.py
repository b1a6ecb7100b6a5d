"""The nightly Celery beat task makes an encrypted backup and keeps only the DPI_BACKUP_KEEP most recent."""

import pytest

from dpi.compliance import backups, tasks
from dpi.schedule import BEAT_SCHEDULE
from tests import test_compliance_support as support

pytestmark = pytest.mark.django_db

# Fixtures shared with the other backup tests (bound in this module's namespace for pytest).
scratch, seeded_source = support.scratch, support.seeded_source


def test_backup_is_scheduled_nightly():
    entries = [e for e in BEAT_SCHEDULE.values() if e["task"] == "dpi.compliance.tasks.backup_scheduled"]
    assert len(entries) == 1
    schedule = entries[0]["schedule"]
    assert schedule.hour == {3} and schedule.minute == {15}


def test_the_task_keeps_the_most_recent_backups(seeded_source, tmp_path, settings):
    """Two older backups (of the seeded source), then the task's own (of the application's database)."""
    settings.DPI_BACKUP_DIR = tmp_path
    settings.DPI_BACKUP_KEEP = 2
    made = [backups.backup_create(directory=tmp_path, database=seeded_source) for _ in range(2)]
    result = tasks.backup_scheduled.apply().get()
    kept = backups.backups_list(tmp_path)
    assert len(kept) == 2
    assert kept[0].name in result and kept[1] == made[1]
    assert not made[0].exists() and not backups.manifest_path(made[0]).exists()
    backups.backup_verify(kept[0])


def test_prune_never_deletes_the_last_backup(tmp_path):
    with pytest.raises(ValueError):
        backups.backup_prune(keep=0, directory=tmp_path)


def test_a_second_run_while_one_is_running_does_nothing(settings, tmp_path):
    from django.core.cache import cache

    settings.DPI_BACKUP_DIR = tmp_path
    cache.set(tasks.lock_key(), "other-worker", 60)
    try:
        assert tasks.backup_scheduled.apply().get().startswith("skipped")
    finally:
        cache.delete(tasks.lock_key())
    assert backups.backups_list(tmp_path) == []
