"""Each run reports its progress and counts (due, archived, restored, destroyed, errors) for the DPO dashboard;
the management command shows a progress bar; one run at a time; the beat schedule runs it daily."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from dpi.schedule import BEAT_SCHEDULE
from retention import selectors, services
from retention.models import RetentionRun
from retention.testing import age
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _archive_dir(settings, tmp_path):
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"


def test_command_shows_progress_and_counts():
    patients = [make_patient() for _ in range(3)]
    age([p.pk for p in patients], last_activity=timezone.now() - timedelta(days=365 * 6))
    out = StringIO()
    call_command("retention_run", stdout=out)
    text = out.getvalue()
    assert "archive  [########################################] 3/3" in text
    assert "due 3, archived 3" in text and "errors 0" in text

    run = RetentionRun.objects.get()
    assert (run.status, run.due, run.archived, run.errors) == ("finished", 3, 3, 0)
    overview = selectors.retention_overview()
    assert overview["last_run"] == {"id": run.pk, "status": "finished", "due": 3, "done": 3, "percent": 100}
    assert overview["archives"] == {"archived": 3}
    assert overview["policy"]["name"] == "establishment"
    assert selectors.runs_recent()[0]["archived"] == 3


def test_a_second_run_while_one_is_active_does_nothing():
    other = connections.create_connection("default")
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", [services.ADVISORY_LOCK])
        run = services.retention_run()
        assert run.status == "skipped"
    finally:
        other.close()


def test_care_sheet_copies_go_after_three_months(cast):
    from dpi import services as dpi_services
    from dpi.models import Document

    old = dpi_services.document_add(patient=cast.patient, author=cast.physician, title="FSE", content=b"fse",
                                    media_type="application/x-fse")
    recent = dpi_services.document_add(patient=cast.patient, author=cast.physician, title="FSE 2", content=b"fse",
                                       media_type="application/x-fse")
    report = dpi_services.document_add(patient=cast.patient, author=cast.physician, title="CR", content=b"pdf")
    Document.objects.filter(pk__in=[old.pk, report.pk]).update(created_at=timezone.now() - timedelta(days=91))
    run = services.retention_run()
    assert run.care_sheets_purged == 1
    assert set(Document.objects.values_list("pk", flat=True)) == {recent.pk, report.pk}


def test_beat_runs_it_daily():
    entry = [e for e in BEAT_SCHEDULE.values() if e["task"] == "retention.tasks.archive_due"]
    assert len(entry) == 1


def test_the_celery_task_runs_the_retention_run():
    from retention.tasks import archive_due

    run_id = archive_due.apply().get()
    assert RetentionRun.objects.get(pk=run_id).status == "finished"
