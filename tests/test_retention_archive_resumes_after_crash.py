"""A crash (an exception that stops the worker) after each step of archiving leaves every record either live or
archived and readable, never both, never neither; the next run completes the work, losing and duplicating
nothing. A plain error in a step is recorded on the job and the run goes on with the others."""

from datetime import timedelta

import pytest
from django.utils import timezone

from patients.models import Patient
from retention import archiving, services
from retention.models import ArchivedPatient, ArchiveJob, RetentionRun
from retention.testing import age, archived_payload, full_record, snapshot, where_is
from tests.personas import make_patient

pytestmark = pytest.mark.django_db

POINTS = ["export:file_written", "exported", "verified", "remove:rows_deleted", "live_removed", "archived"]


class WorkerKilled(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the run catches it."""


@pytest.fixture(autouse=True)
def archive_dir(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"
    return settings.DPI_ARCHIVE_DIR


@pytest.fixture
def due_patients(cast):
    patients = [make_patient(birth_name=f"CRASHTEST{chr(65 + i)}") for i in range(3)]
    for p in patients:
        full_record(patient=p, author=cast.physician, unit=cast.cardio)
    age([p.pk for p in patients], last_activity=timezone.now() - timedelta(days=365 * 7))
    return patients


def assert_each_exactly_once(patient_ids):
    for pid in patient_ids:
        assert where_is(pid) in ({"live"}, {"archived"}), (pid, where_is(pid))


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize("point", POINTS)
def test_killed_after_each_step_then_resumed(cast, archive_dir, due_patients, monkeypatch, point):
    pids = [p.pk for p in due_patients]
    before = {pid: snapshot(pid) for pid in pids}
    seen = []

    def crash(at):
        if at == point:
            assert_each_exactly_once(pids)  # also true at the instant of the crash, inside a transaction
            seen.append(at)
            raise WorkerKilled(at)

    monkeypatch.setattr(archiving, "fault_hook", crash)
    with pytest.raises(WorkerKilled):
        services.retention_run(batch=2)
    assert seen == [point]
    assert_each_exactly_once(pids)
    assert_each_exactly_once([cast.patient.pk])

    monkeypatch.setattr(archiving, "fault_hook", None)
    run = services.retention_run(batch=2)

    assert run.errors == 0
    for pid in pids:
        assert where_is(pid) == {"archived"}
        assert archived_payload(pid)["tables"] == before[pid]["tables"]
    assert where_is(cast.patient.pk) == {"live"}
    assert not Patient.objects.filter(pk__in=pids).exists()
    assert ArchivedPatient.objects.filter(patient_id__in=pids).count() == 3
    assert ArchiveJob.objects.filter(patient_id__in=pids).count() == 3
    assert set(ArchiveJob.objects.values_list("state", flat=True)) == {"archived"}
    # One file per archive, no temporary file left.
    assert [p.suffix for p in files(archive_dir)] == [".dpa"] * 3
    # The interrupted run is reported as such.
    assert RetentionRun.objects.filter(status="failed", message__contains="interrupted").count() == 1


@pytest.mark.parametrize("point", POINTS)
def test_persistent_error_at_each_step_is_recorded_and_resumed(cast, archive_dir, due_patients, monkeypatch,
                                                               point):
    pids = [p.pk for p in due_patients]

    def fail(at):
        if at == point:
            raise OSError(f"disk error at {at}")

    monkeypatch.setattr(archiving, "fault_hook", fail)
    first = services.retention_run(batch=2)
    assert first.status == "finished"
    assert_each_exactly_once(pids)
    if point in ("export:file_written", "remove:rows_deleted"):
        # Inside a transaction: nothing of the step is committed, the error stays on the job.
        assert first.errors == 3 and first.archived == 0
        assert all("disk error" in e for e in ArchiveJob.objects.values_list("last_error", flat=True))

    monkeypatch.setattr(archiving, "fault_hook", None)
    second = services.retention_run(batch=2)
    assert second.errors == 0
    assert all(where_is(pid) == {"archived"} for pid in pids)
    assert [p.suffix for p in files(archive_dir)] == [".dpa"] * 3


def test_record_changed_after_export_is_exported_again(cast, archive_dir, due_patients, monkeypatch):
    """A note added between the export and the removal is not lost: the live rows no longer match the
    export, so the record is exported again before anything is removed."""
    from dpi import services as dpi_services

    target = due_patients[0]
    added = []

    def add_note(at):
        if at == "verified" and not added:
            dpi_services.note_create(patient=target, author=cast.physician, body="Note tardive importante")
            age([target.pk], last_activity=timezone.now() - timedelta(days=365 * 7))
            added.append(at)

    monkeypatch.setattr(archiving, "fault_hook", add_note)
    services.retention_run()
    monkeypatch.setattr(archiving, "fault_hook", None)
    services.retention_run()
    payload = archived_payload(target.pk)
    bodies = [row["body"] for row in payload["tables"]["dpi.clinicalnote"]]
    assert "Note tardive importante" in bodies
    assert where_is(target.pk) == {"archived"}


def test_corrupted_file_is_exported_again_before_removal(cast, archive_dir, due_patients, monkeypatch):
    def corrupt(at):
        if at == "exported":
            for path in files(archive_dir):
                # The last byte flipped: replacing it with a fixed byte left about 1 file in 256 intact.
                blob = path.read_bytes()
                path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))

    monkeypatch.setattr(archiving, "fault_hook", corrupt)
    services.retention_run()
    # The verification caught it: still live, job back to "selected" with the reason.
    assert all(where_is(p.pk) == {"live"} for p in due_patients)
    assert all("checksum" in e for e in ArchiveJob.objects.values_list("last_error", flat=True))
    monkeypatch.setattr(archiving, "fault_hook", None)
    services.retention_run()
    assert all(where_is(p.pk) == {"archived"} for p in due_patients)
