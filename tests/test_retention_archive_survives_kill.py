"""The worker process is killed (SIGKILL, no clean-up at all) after each step of archiving: every record is still
either live or archived and readable, and the next run completes the work without loss or duplicates."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from patients.models import Patient
from retention import services
from retention.models import ArchivedPatient, ArchiveJob
from retention.testing import age, archived_payload, full_record, snapshot, where_is
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
POINTS = ["export:file_written", "exported", "verified", "remove:rows_deleted", "live_removed", "archived"]

CHILD = r"""
import os, signal, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "dpi.settings"
from django.conf import settings
for alias in ("default", "audit"):
    settings.DATABASES[alias]["NAME"] = sys.argv[1]
import django
django.setup()
from retention import archiving, services

def kill(at):
    if at == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

archiving.fault_hook = kill
services.retention_run(batch=2)
print("run finished without reaching", sys.argv[2])
"""


def run_until_not_skipped():
    # The killed worker's session (and its advisory lock) ends when PostgreSQL notices the closed socket.
    for _ in range(50):
        run = services.retention_run(batch=2)
        if run.status != "skipped":
            return run
        time.sleep(0.2)
    raise AssertionError("the killed worker's lock was never released")


def test_worker_killed_after_each_step(monkeypatch, tmp_path):
    import access.care_team

    monkeypatch.setattr(access.care_team, "_perm_id", None)  # permissions are recreated after each flush
    monkeypatch.setattr(settings, "PASSWORD_HASHERS", ["django.contrib.auth.hashers.MD5PasswordHasher"])
    from patients.models import CareUnit

    unit = CareUnit.objects.create(code="cardio-kill", name="Cardiologie")
    from access.policy import Role

    author = make_user("dr.kill", Role.PHYSICIAN, [unit])
    archive_dir = tmp_path / "archive"
    monkeypatch.setattr(settings, "DPI_ARCHIVE_DIR", archive_dir)
    env = {**os.environ, "DPI_ARCHIVE_DIR": str(archive_dir), "DPI_RETENTION_PROFILE": settings.DPI_RETENTION_PROFILE}

    for point in POINTS:
        # Strict traits are letters only (INS referential): the step and the index spelled in letters.
        tag = "".join(c for c in point.upper() if c.isalpha())
        patients = [make_patient(birth_name=f"KILLTEST {tag} {'ABC'[i]}") for i in range(3)]
        for p in patients:
            full_record(patient=p, author=author, unit=unit)
        pids = [p.pk for p in patients]
        age(pids, last_activity=timezone.now() - timedelta(days=365 * 7))
        before = {pid: snapshot(pid) for pid in pids}

        child = subprocess.run([sys.executable, "-c", CHILD, settings.DATABASES["default"]["NAME"], point],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert child.returncode == -signal.SIGKILL, (point, child.stdout, child.stderr[-3000:])

        for pid in pids:
            assert where_is(pid) in ({"live"}, {"archived"}), (point, pid, where_is(pid))

        run = run_until_not_skipped()
        assert run.errors == 0, point
        for pid in pids:
            assert where_is(pid) == {"archived"}, (point, pid)
            assert archived_payload(pid)["tables"] == before[pid]["tables"]
        assert not Patient.objects.filter(pk__in=pids).exists()
        assert ArchivedPatient.objects.filter(patient_id__in=pids).count() == 3
        assert set(ArchiveJob.objects.filter(patient_id__in=pids).values_list("state", flat=True)) == {"archived"}
        assert not list(archive_dir.rglob("*.tmp"))
    assert len([p for p in archive_dir.rglob("*.dpa")]) == 3 * len(POINTS)
