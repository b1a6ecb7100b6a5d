"""The demo seed: deterministic data for a seed, a hospital as its users meet it, per-install demo secrets,
never in production (issue #22 item 5, issue #13 finding 10)."""

import hashlib
import json
import stat
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from dpi import demo
from dpi.launcher import is_loopback
from dpi.models import ClinicalNote, Document, Observation
from dpi.seeding import UNITS, seed
from patients.models import Encounter, Patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scratch_var(settings, tmp_path):
    """Demo secrets go under this test's own var/, never the checkout's."""
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def fingerprint() -> str:
    h = hashlib.sha256()
    for p in Patient.objects.order_by("ipp"):
        h.update(
            f"{p.ipp}|{p.ins}|{p.birth_name}|{p.first_name}|{p.birth_date}|{p.address}|{p.identity_status}".encode()
        )
    for e in Encounter.objects.select_related("patient", "unit").order_by("patient__ipp", "start"):
        h.update(f"{e.patient.ipp}|{e.unit.code}|{e.start}|{e.end}".encode())
    for n in ClinicalNote.objects.select_related("patient").order_by("patient__ipp", "id"):
        h.update(f"{n.patient.ipp}|{n.body}|{n.created_at}".encode())
    for o in Observation.objects.select_related("patient").order_by("patient__ipp", "id"):
        h.update(f"{o.patient.ipp}|{o.loinc}|{o.value}|{o.effective_at}".encode())
    return h.hexdigest()


def wipe(settings, tmp_path):
    from access.models import StaffProfile

    for model in (ClinicalNote, Observation, Document):
        model.objects.all().delete()
    Patient.objects.all().delete()
    StaffProfile.objects.all().delete()
    User.objects.all().delete()
    settings.VAR_DIR = tmp_path / "another-install"


def test_same_seed_gives_the_same_data_but_each_install_its_own_secrets(settings, tmp_path):
    today = timezone.localdate()
    seed(patients=20, seed=42, today=today, history_days=0)
    first, first_secrets = fingerprint(), demo.load()
    assert Patient.objects.count() == 20
    wipe(settings, tmp_path)
    seed(patients=20, seed=42, today=today, history_days=0)
    assert fingerprint() == first
    second = demo.load()
    assert set(second) == set(first_secrets) and len(second) == 12
    for name in second:  # the same seed, another install: other passwords and TOTP secrets
        assert second[name]["totp_key"] != first_secrets[name]["totp_key"]
        assert second[name]["password"] != first_secrets[name]["password"]


def test_another_seed_gives_other_data(settings, tmp_path):
    seed(patients=20, seed=42, history_days=0)
    first = fingerprint()
    wipe(settings, tmp_path)
    seed(patients=20, seed=43, history_days=0)
    assert fingerprint() != first


def test_seeded_ins_have_valid_keys():
    from patients.ins import validate_ins

    seed(patients=30, seed=5, history_days=0)
    for p in Patient.objects.all():
        validate_ins(p.ins)


@pytest.mark.django_db(transaction=True)  # the hash chain links events when their transaction commits
def test_the_demo_looks_like_a_hospital(scratch_var):
    """Inpatients in every unit, the personas' lists, dates within stays and after birth, documents, a month
    of access history in the intact chain, and alerts for the DPO."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from access.models import CareGrant
    from audit.detection.models import Alert
    from audit.models import AccessEvent
    from audit.verification import chain_verify
    from tests.test_audit_support import fresh_trail

    # The seed writes a month of history into an empty trail, as on a new install: after a checkpoint that other
    # tests signed, its backdated events would rightly be named as inserted after the fact.
    fresh_trail()
    now = timezone.now()
    seed(patients=60, seed=3)
    open_units = set(Encounter.objects.filter(end__isnull=True).values_list("unit__code", flat=True))
    assert open_units == {code for code, _name in UNITS}
    for persona in ("demo.physician", "demo.nurse"):
        user = User.objects.get(username=persona)
        in_care = CareGrant.objects.filter(user=user, valid_from__lte=now).exclude(valid_until__lt=now)
        assert in_care.values("content_object").distinct().count() >= 2, persona
    for e in Encounter.objects.select_related("patient"):
        assert e.start.date() >= e.patient.birth_date, e
        assert e.start <= now and (e.end is None or e.start <= e.end <= now), e
    for n in ClinicalNote.objects.select_related("encounter"):
        assert n.encounter.start <= n.created_at <= (n.encounter.end or now), (n.pk, n.created_at)
    for o in Observation.objects.select_related("encounter"):
        assert o.encounter.start <= o.effective_at <= (o.encounter.end or now), o.pk
    assert Document.objects.exists()
    month = AccessEvent.objects.filter(occurred_at__gte=now - timedelta(days=31), occurred_at__lt=now)
    assert month.filter(action="view", outcome="allowed").count() > 100
    assert month.filter(outcome="denied").exists() and month.filter(action="break_glass").exists()
    births = dict(Patient.objects.values_list("id", "birth_date"))
    # (Denied events of other tests survive their rollbacks on the audit connection: only this seed's patients.)
    seeded = month.filter(patient_id__in=list(births)).values_list("patient_id", "occurred_at")
    assert seeded.exists()
    for patient_id, occurred_at in seeded:
        assert timezone.localdate(occurred_at) >= births[patient_id]
    result = chain_verify(record=False)
    assert result.ok, (result.message, result.problems)
    assert Alert.objects.exists()
    # Demo secrets of this install, outside the database, readable by the owner only.
    path = demo.secrets_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    accounts = json.loads(path.read_text())
    physician = User.objects.get(username="demo.physician")
    assert physician.check_password(accounts["demo.physician"]["password"])
    assert TOTPDevice.objects.get(user=physician).key == accounts["demo.physician"]["totp_key"]


def test_demo_accounts_command_reprints_them(capsys):
    seed(patients=5, seed=1, history_days=0)
    call_command("demo_accounts")
    out = capsys.readouterr().out
    accounts = demo.load()
    assert accounts["demo.dpo"]["password"] in out and demo.totp_base32(accounts["demo.dpo"]["totp_key"]) in out
    call_command("demo_accounts", "--count")
    assert capsys.readouterr().out.strip() == "12"
    call_command("demo_accounts", "--disable")
    call_command("demo_accounts", "--count")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "0"
    assert authenticate(username="demo.dpo", password=accounts["demo.dpo"]["password"]) is None


def test_seed_and_demo_accounts_are_refused_in_production(settings):
    seed(patients=3, seed=1, history_days=0)
    password = demo.load()["demo.physician"]["password"]
    assert authenticate(username="demo.physician", password=password) is not None
    settings.PRODUCTION = True
    with pytest.raises(ImproperlyConfigured):
        seed(patients=3, seed=2, history_days=0)
    with pytest.raises(CommandError, match="DPI_PRODUCTION"):
        call_command("seed", "--patients", "3", "--append")
    with pytest.raises(CommandError, match="DPI_PRODUCTION"):
        call_command("demo_accounts")
    assert authenticate(username="demo.physician", password=password) is None


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [("127.0.0.1:8000", True), ("[::1]:8000", True), ("localhost:8000", True), ("unix:/run/dpi.sock", True),
     ("0.0.0.0:8000", False), ("[::]:8000", False), ("10.1.2.3:8000", False), ("dpi.hospital.example:80", False)],
)
def test_launcher_tells_loopback_from_the_network(bind, loopback):
    assert is_loopback(bind) is loopback
