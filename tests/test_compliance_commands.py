"""The operators' commands: maintenance windows, the rights register (access export prints its password once)
and the breach register, each calling the audited services."""

import io
from datetime import timedelta

import pytest
import pyzipper
from django.core.management import CommandError, call_command
from django.utils import timezone

from access.policy import Role
from dpi.compliance.models import Breach, MaintenanceWindow, RightsRequest
from tests.personas import make_user

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_maintenance_window_commands(db):
    make_user("maint.vendor", Role.MAINTENANCE)
    make_user("it.admin", Role.IT_ADMIN)
    start = timezone.localtime() + timedelta(hours=1)
    out = run("maintenance_window", "approve", "--provider=maint.vendor", f"--start={start:%Y-%m-%dT%H:%M}",
              f"--end={start + timedelta(hours=2):%Y-%m-%dT%H:%M}", "--purpose=upgrade", "--approved-by=it.admin")
    window = MaintenanceWindow.objects.get()
    assert f"#{window.pk} approved" in out
    assert "maint.vendor" in run("maintenance_window", "list")
    with pytest.raises(CommandError):
        run("maintenance_window", "approve", "--provider=maint.vendor", f"--start={start:%Y-%m-%dT%H:%M}",
            f"--end={start + timedelta(hours=2):%Y-%m-%dT%H:%M}", "--purpose=x", "--approved-by=maint.vendor")
    run("maintenance_window", "revoke", str(window.pk), "--by=it.admin")
    assert MaintenanceWindow.objects.get().revoked_at is not None


def test_rights_commands(cast, tmp_path):
    out = run("rights", "register", f"--ipp={cast.patient.ipp}", "--kind=access", "--identity-proof=CNI",
              "--by=the.dpo")
    request = RightsRequest.objects.get()
    assert f"#{request.pk} registered" in out and str(request.due_at) in out
    assert f"#{request.pk}" in run("rights", "list", "--open")
    out = run("rights", "export", str(request.pk), f"--out={tmp_path}", "--by=the.dpo")
    password = out.split("PASSWORD")[1].split(": ", 1)[1].strip()
    (zip_path,) = tmp_path.glob("*.zip")
    with pyzipper.AESZipFile(zip_path) as zf:
        zf.setpassword(password.encode())
        assert zf.read("dossier.pdf").startswith(b"%PDF")
    run("rights", "register", f"--ipp={cast.patient.ipp}", "--kind=erasure", "--identity-proof=CNI", "--by=dr.dim")
    erasure = RightsRequest.objects.get(kind="erasure")
    assert "R1112-7" in run("rights", "answer-legal", str(erasure.pk), "--by=the.dpo")
    with pytest.raises(CommandError):
        run("rights", "restrict", str(erasure.pk), "--by=dr.house")


def test_breach_commands(cast):
    detected = timezone.localtime() - timedelta(hours=2)
    out = run("breach", "record", f"--detected-at={detected:%Y-%m-%dT%H:%M}", "--description=mail mal adressé",
              "--categories=identity,medical", "--people=3", "--by=the.dpo")
    breach = Breach.objects.get()
    assert f"breach #{breach.pk} recorded" in out and breach.categories == ["identity", "medical"]
    assert "h left" in run("breach", "list")
    run("breach", "notify-cnil", str(breach.pk), "--reference=CNIL-1", "--by=the.dpo")
    assert "notified" in run("breach", "list")
