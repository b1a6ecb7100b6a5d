"""Synthetic data only: a deterministic generator of a hospital (units, staff, patients, records).

Never real patient data. For a given ``seed`` (and reference day) the output is identical. Bulk inserts:
rows are built in memory in batches and written with ``bulk_create``; care grants are computed once at
the end with one set-based statement.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone
from faker import Faker

from access.care_team import care_grants_recompute
from access.models import StaffProfile
from access.policy import Role
from dpi.models import Allergy, ClinicalNote, Observation, Prescription, Problem
from patients.ins import with_key
from patients.models import CareUnit, Encounter, Patient
from patients.services import ins_blind_index

UNITS = [
    ("cardio", "Cardiologie"),
    ("urgences", "Urgences"),
    ("pediatrie", "Pédiatrie"),
    ("psychiatrie", "Psychiatrie"),
    ("maternite", "Maternité"),
    ("chirurgie", "Chirurgie viscérale"),
    ("medecine", "Médecine interne"),
    ("oncologie", "Oncologie"),
]

# LOINC code, label, unit, low, high, typical mean, sd
LABS = [
    ("2345-7", "Glucose", "mmol/L", "3.9", "6.1", 5.4, 1.2),
    ("718-7", "Hémoglobine", "g/dL", "12.0", "17.0", 13.8, 1.8),
    ("2160-0", "Créatinine", "µmol/L", "45", "104", 80, 25),
    ("2823-3", "Potassium", "mmol/L", "3.5", "5.0", 4.2, 0.5),
    ("1988-5", "CRP", "mg/L", "0", "5", 6, 10),
]
PROBLEMS = [
    ("I10", "Hypertension essentielle"),
    ("E11.9", "Diabète de type 2"),
    ("J45.9", "Asthme"),
    ("F32.9", "Épisode dépressif"),
    ("I48.9", "Fibrillation auriculaire"),
    ("K35.8", "Appendicite aiguë"),
]
DRUGS = ["Paracétamol 1 g", "Amoxicilline 1 g", "Bisoprolol 2,5 mg", "Metformine 850 mg", "Enoxaparine 4000 UI"]
ALLERGENS = ["Pénicilline", "Arachide", "Iode", "Latex", "Aspirine"]

DEMO_PASSWORD = "Demo-Dpi-2026!secure"  # noqa: S105 - synthetic demo accounts only, printed by `make run`
DEMO_ROLES = list(Role)


@dataclass
class SeedResult:
    patients: int
    encounters: int
    notes: int
    observations: int
    staff: int
    demo_accounts: list[tuple[str, str, str]]  # (username, role, totp secret base32)


def _ins(rng: random.Random, sex: str, birth: date) -> tuple[str, str]:
    """A synthetic NIR (or NIA for ~3%) with a valid key, and its INSEE birthplace code."""
    dept = rng.choice(["75", "69", "13", "33", "59", "2A", "2B", "44", "67", "31"])
    commune = f"{rng.randint(1, 400):03d}"
    order = f"{rng.randint(1, 999):03d}"
    first = "1" if sex == "M" else "2"
    if rng.random() < 0.03:
        first = rng.choice("78")
    number = f"{first}{birth.year % 100:02d}{birth.month:02d}{dept}{commune}{order}"
    return with_key(number), f"{dept}{commune}"


def ensure_groups() -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.value)


def _units() -> list[CareUnit]:
    out = []
    for code, name in UNITS:
        unit, _ = CareUnit.objects.get_or_create(code=code, defaults={"name": name})
        out.append(unit)
    return out


def _make_staff(fake: Faker, rng: random.Random, units: list[CareUnit]) -> dict[str, list[User]]:
    """Care staff for each unit (unusable passwords: only demo accounts can log in). Reused if present."""
    if StaffProfile.objects.filter(user__username="physician.0000").exists():
        by_unit = {u.code: [] for u in units}
        for sp in (
            StaffProfile.objects.filter(user__username__regex=r"^[a-z_]+\.[0-9]{4}$")
            .select_related("user")
            .prefetch_related("units")
            .order_by("user__username")
        ):
            for unit in sp.units.all():
                by_unit.setdefault(unit.code, []).append(sp.user)
        return by_unit
    plan = []
    for unit in units:
        plan += [(Role.PHYSICIAN, unit)] * 4 + [(Role.NURSE, unit)] * 8 + [(Role.MEDICAL_SECRETARY, unit)]
        if unit.code == "maternite":
            plan += [(Role.MIDWIFE, unit)] * 4
    plan += [(Role.PHARMACIST, None)] * 2 + [(Role.RECEPTION, None)] * 4 + [(Role.DIM, None)]
    users, profiles = [], []
    by_unit: dict[str, list[User]] = {u.code: [] for u in units}
    for i, (role, unit) in enumerate(plan):
        first, last = fake.first_name(), fake.last_name()
        user = User(
            username=f"{role.value}.{i:04d}",
            first_name=first,
            last_name=last,
            email=f"{role.value}.{i:04d}@staff.example",
        )
        user.set_unusable_password()
        users.append(user)
        profiles.append((role, unit, last, fake.street_address(), fake.postcode(), fake.city()))
    User.objects.bulk_create(users, batch_size=1000)
    users = list(User.objects.filter(username__in=[u.username for u in users]).order_by("username"))
    user_by_name = {u.username: u for u in users}
    groups = {g.name: g for g in Group.objects.all()}
    sp_rows, through = [], []
    for i, (role, unit, last, street, pc, city) in enumerate(profiles):
        user = user_by_name[f"{role.value}.{i:04d}"]
        sp_rows.append(
            StaffProfile(
                user=user,
                role=role.value,
                birth_name=last,
                address=street,
                postal_code=pc,
                city=city,
                start_date=date(2015, 1, 1) + timedelta(days=rng.randint(0, 3000)),
            )
        )
        user.groups.add(groups[role.value])
        if unit is not None:
            by_unit[unit.code].append(user)
    StaffProfile.objects.bulk_create(sp_rows, batch_size=1000)
    sp_by_user = {sp.user_id: sp for sp in StaffProfile.objects.filter(user__in=users)}
    for i, (role, unit, *_rest) in enumerate(profiles):
        if unit is not None:
            user = user_by_name[f"{role.value}.{i:04d}"]
            through.append(StaffProfile.units.through(staffprofile_id=sp_by_user[user.pk].pk, careunit_id=unit.pk))
    StaffProfile.units.through.objects.bulk_create(through, batch_size=1000)
    return by_unit


def _make_demo_accounts(seed: int, units: list[CareUnit]) -> list[tuple[str, str, str]]:
    """One account per role, password DEMO_PASSWORD and a confirmed TOTP device with a seed-derived key."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    rng = random.Random(f"demo-{seed}")
    groups = {g.name: g for g in Group.objects.all()}
    unit_for = {
        Role.PHYSICIAN: "cardio",
        Role.NURSE: "cardio",
        Role.MIDWIFE: "maternite",
        Role.MEDICAL_SECRETARY: "cardio",
        Role.PHARMACIST: None,
    }
    units_by_code = {u.code: u for u in units}
    out = []
    password_hash = None
    for role in DEMO_ROLES:
        username = f"demo.{role.value}"
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": "Demo",
                "last_name": role.value.replace("_", " ").title(),
                "email": f"{username}@demo.example",
            },
        )
        if created:
            if password_hash is None:
                user.set_password(DEMO_PASSWORD)
                password_hash = user.password
            user.password = password_hash
            user.save(update_fields=["password"])
            user.groups.add(groups[role.value])
            profile = StaffProfile.objects.create(
                user=user, role=role.value, birth_name="Demo", start_date=date(2020, 1, 1)
            )
            code = unit_for.get(role)
            if code:
                profile.units.add(units_by_code[code])
        key = bytes(rng.getrandbits(8) for _ in range(20)).hex()
        device, _ = TOTPDevice.objects.get_or_create(user=user, name="demo", defaults={"key": key, "confirmed": True})
        import base64

        out.append((username, role.value, base64.b32encode(bytes.fromhex(device.key)).decode()))
    return out


def seed(*, patients: int, seed: int, today: date | None = None, batch: int = 2000, progress=None) -> SeedResult:
    """Create ``patients`` synthetic patients with their records. Deterministic for (seed, today)."""
    today = today or timezone.localdate()
    anchor = timezone.make_aware(datetime.combine(today, time(8, 0)))
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    with transaction.atomic():
        ensure_groups()
        units = _units()
        by_unit = _make_staff(fake, rng, units)
        demo = _make_demo_accounts(seed, units)
    # Pools of generated text, drawn from with the seeded RNG: Faker's lorem is the slowest part otherwise.
    fake.dpi_paragraphs = [fake.paragraph(nb_sentences=4) for _ in range(400)]
    fake.dpi_sentences = [fake.sentence() for _ in range(200)]
    demo_unit_staff = {u.pk: list(by_unit[u.code]) for u in units}
    for u in units:
        demo_unit_staff[u.pk] += list(User.objects.filter(staff__units=u, username__startswith="demo."))
    authors = {u.pk: [s for s in demo_unit_staff[u.pk]] for u in units}
    start_id = Patient.objects.order_by("-id").values_list("id", flat=True).first() or 0
    counts = {"encounters": 0, "notes": 0, "observations": 0}
    done = 0
    while done < patients:
        n = min(batch, patients - done)
        with transaction.atomic():
            _seed_batch(fake, rng, units, authors, anchor, start_id + done, n, counts)
        done += n
        if progress:
            progress(done, patients)
    care_grants_recompute(patient_ids=None)
    staff = StaffProfile.objects.count()
    return SeedResult(patients, counts["encounters"], counts["notes"], counts["observations"], staff, demo)


def _seed_batch(
    fake: Faker, rng: random.Random, units, authors, anchor: datetime, offset: int, n: int, counts: dict
) -> None:
    pats = []
    for i in range(n):
        sex = rng.choice("MF")
        birth = anchor.date() - timedelta(days=rng.randint(0, 95 * 365))
        ins, birthplace = _ins(rng, sex, birth)
        qualified = rng.random() < 0.7
        first = fake.first_name_male() if sex == "M" else fake.first_name_female()
        last = fake.last_name()
        restricted = rng.random() < 0.01
        p = Patient(
            ipp=f"P{offset + i + 1:09d}",
            ins=ins,
            ins_bidx=ins_blind_index(ins),
            birth_name=last,
            used_name=fake.last_name() if sex == "F" and rng.random() < 0.3 else "",
            first_name=first,
            first_names=f"{first} {fake.first_name()}",
            sex=sex,
            birth_date=birth,
            birthplace_insee=birthplace,
            identity_status=Patient.IdentityStatus.QUALIFIED if qualified else rng.choice(["PROV", "RECUP", "VALI"]),
            address=fake.street_address(),
            postal_code=fake.postcode(),
            city=fake.city(),
            phone=fake.phone_number(),
            marital_status=rng.choice(["célibataire", "marié(e)", "pacsé(e)", "veuf(ve)"]),
            occupation=fake.job()[:100],
            social_security_number=ins,
            confidentiality="restricted" if restricted else "normal",
            restriction_reason=rng.choice(["vip", "staff", "protected"]) if restricted else "",
        )
        pats.append(p)
    encs, notes, obs, rx, allergies, problems = [], [], [], [], [], []
    enc_plan = []
    for p in pats:
        for _k in range(rng.randint(1, 3)):
            unit = rng.choice(units)
            days_ago = rng.randint(0, 5 * 365)
            start = anchor - timedelta(days=days_ago, hours=rng.randint(0, 10))
            open_ = days_ago < 10 and rng.random() < 0.5
            end = None if open_ else start + timedelta(days=rng.randint(0, 12), hours=rng.randint(1, 8))
            if end and end > anchor:
                end = anchor
            kind = Encounter.Kind.CONSULTATION if rng.random() < 0.4 else Encounter.Kind.STAY
            encs.append(Encounter(patient=p, unit=unit, start=start, end=end, kind=kind))
            enc_plan.append((p, unit, start))
            when = end or start
            p.last_activity_at = max(p.last_activity_at or when, when)
    Patient.objects.bulk_create(pats, batch_size=n)
    for enc in encs:
        enc.patient = enc.patient  # re-bind: the patient now has its primary key
    Encounter.objects.bulk_create(encs, batch_size=5000)
    for enc in encs:
        p, unit = enc.patient, enc.unit
        staff = authors[unit.pk]
        for _ in range(rng.randint(1, 2)):
            author = rng.choice(staff)
            notes.append(
                ClinicalNote(
                    patient=p,
                    encounter=enc,
                    author=author,
                    kind=rng.choice(["progress", "admission", "nursing"]),
                    title=f"Note {unit.name}",
                    body=rng.choice(fake.dpi_paragraphs),
                    sensitive=unit.code == "psychiatrie",
                )
            )
        for loinc, label, u, low, high, mean, sd in rng.sample(LABS, rng.randint(1, 3)):
            value = Decimal(str(round(max(0.1, rng.gauss(mean, sd)), 1)))
            obs.append(
                Observation(
                    patient=p,
                    encounter=enc,
                    author=rng.choice(staff),
                    loinc=loinc,
                    label=label,
                    unit=u,
                    value=value,
                    reference_low=Decimal(low),
                    reference_high=Decimal(high),
                    effective_at=enc.start + timedelta(hours=rng.randint(1, 20)),
                )
            )
        if rng.random() < 0.3:
            rx.append(
                Prescription(
                    patient=p,
                    encounter=enc,
                    author=rng.choice(staff),
                    medication=rng.choice(DRUGS),
                    instructions=f"{rng.randint(1, 3)} fois par jour pendant {rng.randint(3, 14)} jours",
                    start=enc.start.date(),
                )
            )
    for p in pats:
        if rng.random() < 0.15:
            allergies.append(
                Allergy(
                    patient=p,
                    author=authors[units[0].pk][0],
                    substance=rng.choice(ALLERGENS),
                    reaction="Urticaire",
                    severity="low",
                )
            )
        if rng.random() < 0.4:
            code, label = rng.choice(PROBLEMS)
            problems.append(
                Problem(
                    patient=p,
                    author=authors[units[0].pk][0],
                    icd10=code,
                    label=label,
                    comment=rng.choice(fake.dpi_sentences),
                )
            )
    ClinicalNote.objects.bulk_create(notes, batch_size=5000)
    Observation.objects.bulk_create(obs, batch_size=5000)
    Prescription.objects.bulk_create(rx, batch_size=5000)
    Allergy.objects.bulk_create(allergies, batch_size=5000)
    Problem.objects.bulk_create(problems, batch_size=5000)
    counts["encounters"] += len(encs)
    counts["notes"] += len(notes)
    counts["observations"] += len(obs)
