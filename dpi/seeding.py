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
from access.policy import IDENTITY_VIGILANCE_GROUP, Role
from dpi.models import Allergy, ClinicalNote, Document, Observation, Prescription, Problem
from patients import places
from patients.ins import normalise_trait, with_key
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

DEMO_ROLES = list(Role)
# Names shown in the UI for the demo personas (their secrets are generated per install: dpi.demo).
DEMO_NAMES = {
    Role.PHYSICIAN: ("Claire", "Martin"),
    Role.NURSE: ("Julien", "Bernard"),
    Role.MIDWIFE: ("Sophie", "Leroy"),
    Role.PHARMACIST: ("Marc", "Petit"),
    Role.MEDICAL_SECRETARY: ("Nadia", "Haddad"),
    Role.RECEPTION: ("Lucas", "Morel"),
    Role.DIM: ("Hélène", "Fournier"),
    Role.DPO: ("Isabelle", "Girard"),
    Role.SECURITY_OFFICER: ("Thomas", "Lambert"),
    Role.IT_ADMIN: ("Karim", "Benali"),
    Role.MAINTENANCE: ("Éditeur", "Maintenance"),
    Role.INTEGRATION: ("Interface", "SIH"),
}


@dataclass
class SeedResult:
    patients: int
    encounters: int
    notes: int
    observations: int
    staff: int
    demo_accounts: dict[str, dict[str, str]]  # secrets of the demo accounts created by this run (dpi.demo)
    access_events: int = 0
    alerts: int = 0


def _ins(rng: random.Random, sex: str, birth: date) -> tuple[str, str]:
    """A synthetic NIR (or NIA for ~3%) with a valid key that agrees with the traits (identity vigilance: sex
    digit, year, month), and its INSEE birthplace from the reference list (about 8% born abroad)."""
    communes = sorted(c for c, (kind, _label) in places.places().items() if kind == "commune")
    countries = sorted(c for c, (kind, _label) in places.places().items() if kind == "country")
    order = f"{rng.randint(1, 999):03d}"
    first = "1" if sex == "M" else "2"
    if rng.random() < 0.08:
        birthplace = rng.choice(countries)
        if rng.random() < 0.4:
            first = "7" if sex == "M" else "8"  # NIA: registration pending at INSEE
        number = f"{first}{birth.year % 100:02d}{birth.month:02d}99{birthplace[2:]}{order}"
        return with_key(number), birthplace
    birthplace = rng.choice(communes)
    dept, commune = (birthplace[:3], birthplace[3:]) if birthplace[:2] in {"97", "98"} else \
        (birthplace[:2], birthplace[2:])
    if dept in {"2A", "2B"} and birth.year < 1976:
        dept = "20"  # Corsica was one department before 1976
    number = f"{first}{birth.year % 100:02d}{birth.month:02d}{dept}{commune}{order}"
    return with_key(number), birthplace


def _identity_evidence(rng: random.Random, status: str, today: date, birth: date) -> dict:
    """What the status rests on (RNIV): a checked identity document for VALI/QUAL, an INSi answer for RECUP/QUAL."""
    out: dict = {"identity_status": status}
    if status in {"VALI", "QUAL"}:
        out.update(validation_mode=rng.choice(["CN", "CN", "PA", "CS", "eCN"]),
                   validation_date=max(birth, today - timedelta(days=rng.randint(0, 900))),
                   validated_by_name="Bureau des entrées (données de démonstration)")
    if status in {"RECUP", "QUAL"}:
        out["insi_date"] = timezone.make_aware(datetime.combine(
            max(birth, today - timedelta(days=rng.randint(0, 900))), time(10, 0)))
    return out


def ensure_groups() -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.value)
    Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)


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


def _make_demo_accounts(units: list[CareUnit]) -> dict[str, dict[str, str]]:
    """One account per role, with a password and a confirmed TOTP device generated for this install.

    Returns the secrets of the accounts created now (``{}`` when they all existed): they are saved under
    ``var/secrets`` (``dpi.demo``) and printed once; ``manage.py demo_accounts`` prints them again.
    """
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from dpi import demo

    demo.refuse_in_production("demo accounts")
    groups = {g.name: g for g in Group.objects.all()}
    unit_for = {
        Role.PHYSICIAN: "cardio",
        Role.NURSE: "cardio",
        Role.MIDWIFE: "maternite",
        Role.MEDICAL_SECRETARY: "cardio",
        Role.PHARMACIST: None,
    }
    units_by_code = {u.code: u for u in units}
    created_now: dict[str, dict[str, str]] = {}
    # One random password per install for the demo accounts (an Argon2 hash costs about a second: one hash,
    # not twelve), and a random TOTP secret per account.
    password = demo.new_password()
    password_hash = None
    for role in DEMO_ROLES:
        username = f"{demo.PREFIX}{role.value}"
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": DEMO_NAMES.get(role, ("Demo", role.value))[0],
                "last_name": DEMO_NAMES.get(role, ("Demo", role.value))[1],
                "email": f"{username}@demo.example",
            },
        )
        if not created:
            continue
        key = demo.new_totp_key()
        if password_hash is None:
            user.set_password(password)
            password_hash = user.password
        user.password = password_hash
        user.save(update_fields=["password"])
        user.groups.add(groups[role.value])
        if role == Role.RECEPTION:  # the demo's reception also holds identity vigilance (merges, splits)
            user.groups.add(Group.objects.get_or_create(name=IDENTITY_VIGILANCE_GROUP)[0])
        profile = StaffProfile.objects.create(
            user=user, role=role.value, birth_name=user.last_name, start_date=date(2020, 1, 1)
        )
        code = unit_for.get(role)
        if code:
            profile.units.add(units_by_code[code])
        TOTPDevice.objects.filter(user=user).delete()
        TOTPDevice.objects.create(user=user, name="demo", key=key, confirmed=True)
        created_now[username] = {"role": role.value, "password": password, "totp_key": key}
    if created_now:
        kept = demo.load()
        kept.update(created_now)
        demo.save(kept)
    return created_now


def seed(
    *, patients: int, seed: int, today: date | None = None, batch: int = 2000, progress=None, history_days: int = 30
) -> SeedResult:
    """Create ``patients`` synthetic patients with their records. Deterministic for (seed, today).

    A hospital as its users meet it: current inpatients in every unit (so the physician and nurse personas
    of cardiology have a real list), notes, results and documents dated within each stay, nothing before a
    patient's birth, and ``history_days`` of access history for the DPO (see :func:`_access_history`).
    Demo accounts get secrets generated for this install (``dpi.demo``), never from ``seed``.
    """
    from dpi import demo as demo_mod

    demo_mod.refuse_in_production("the demo seed")
    today = today or timezone.localdate()
    # Everything happens before the start of ``today`` (local midnight): never in the future, whatever the hour.
    anchor = timezone.make_aware(datetime.combine(today, time(0, 0)))
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    with transaction.atomic():
        ensure_groups()
        units = _units()
        by_unit = _make_staff(fake, rng, units)
        demo = _make_demo_accounts(units)
    # Pools of generated text, drawn from with the seeded RNG: Faker's lorem is the slowest part otherwise.
    fake.dpi_paragraphs = [fake.paragraph(nb_sentences=4) for _ in range(400)]
    fake.dpi_sentences = [fake.sentence() for _ in range(200)]
    demo_unit_staff = {u.pk: list(by_unit[u.code]) for u in units}
    for u in units:
        demo_unit_staff[u.pk] += list(
            User.objects.filter(staff__units=u, username__startswith="demo.").order_by("username")
        )
    authors = {u.pk: list(demo_unit_staff[u.pk]) for u in units}
    start_id = Patient.objects.order_by("-id").values_list("id", flat=True).first() or 0
    first_run = start_id == 0
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
    events = alerts = 0
    if first_run and patients and history_days:
        events, alerts = _access_history(rng, anchor, units, authors, days=history_days)
    staff = StaffProfile.objects.count()
    return SeedResult(
        patients, counts["encounters"], counts["notes"], counts["observations"], staff, demo, events, alerts
    )


# Units whose patients have an age or sex: the others take anyone.
def _eligible(unit_code: str, sex: str, age_days: int) -> bool:
    if unit_code == "pediatrie":
        return age_days < 18 * 365
    if unit_code == "maternite":
        return sex == "F" and 16 * 365 <= age_days <= 46 * 365
    return age_days >= 15 * 365 or unit_code in ("urgences", "chirurgie")


def _is_physician(user) -> bool:
    return user.username.split(".")[0 if not user.username.startswith("demo.") else 1] in ("physician", "midwife")


_DOCUMENT_TITLES = {
    "cardio": ["Électrocardiogramme", "Échographie cardiaque"],
    "urgences": ["Compte rendu de passage aux urgences"],
    "pediatrie": ["Carnet de santé (copie)"],
    "psychiatrie": ["Certificat d'hospitalisation"],
    "maternite": ["Compte rendu d'échographie obstétricale"],
    "chirurgie": ["Compte rendu opératoire"],
    "medecine": ["Courrier du médecin traitant"],
    "oncologie": ["Compte rendu de RCP"],
}
_PDF_CACHE: dict[str, bytes] = {}


def _pdf(title: str) -> bytes:
    """A one-page synthetic PDF (reportlab, invariant: the same bytes for the same title)."""
    if title not in _PDF_CACHE:
        import io

        from reportlab.pdfgen import canvas

        buf = io.BytesIO()
        c = canvas.Canvas(buf, invariant=1)
        c.setTitle(title)
        c.drawString(72, 770, title)
        c.drawString(72, 750, "Document de démonstration (données synthétiques).")
        c.showPage()
        c.save()
        _PDF_CACHE[title] = buf.getvalue()
    return _PDF_CACHE[title]


def _seed_batch(
    fake: Faker, rng: random.Random, units, authors, anchor: datetime, offset: int, n: int, counts: dict
) -> None:
    today = anchor.date()
    pats, plans = [], []
    for i in range(n):
        index = offset + i
        # The first two patients per unit, then about one in five, are in hospital now.
        if index < 2 * len(units):
            current = units[index % len(units)]
        else:
            current = rng.choice(units) if rng.random() < 0.22 else None
        code = current.code if current else ""
        sex = "F" if code == "maternite" else rng.choice("MF")
        if code == "pediatrie":
            age_days = rng.randint(30, 16 * 365)
        elif code == "maternite":
            age_days = rng.randint(19 * 365, 42 * 365)
        elif current is not None:
            age_days = rng.randint(18 * 365, 95 * 365)
        else:
            age_days = rng.randint(60, 95 * 365)
        birth = today - timedelta(days=age_days)
        ins, birthplace = _ins(rng, sex, birth)
        qualified = rng.random() < 0.7
        first = normalise_trait(fake.first_name_male() if sex == "M" else fake.first_name_female())
        last = normalise_trait(fake.last_name())
        status = Patient.IdentityStatus.QUALIFIED if qualified else rng.choice(["PROV", "RECUP", "VALI"])
        restricted = rng.random() < 0.01
        p = Patient(
            ipp=f"P{index + 1:09d}",
            ins=ins,
            ins_bidx=ins_blind_index(ins),
            birth_name=last,
            used_name=fake.last_name() if sex == "F" and rng.random() < 0.3 else "",
            first_name=first,
            first_names=f"{first} {normalise_trait(fake.first_name())}",
            sex=sex,
            birth_date=birth,
            birthplace_insee=birthplace,
            **_identity_evidence(rng, status, today, birth),
            address=fake.street_address(),
            postal_code=fake.postcode(),
            city=fake.city(),
            phone=fake.phone_number(),
            marital_status=rng.choice(["célibataire", "marié(e)", "pacsé(e)", "veuf(ve)"]),
            occupation=fake.job()[:100] if age_days >= 18 * 365 else "",
            social_security_number=ins,
            confidentiality="restricted" if restricted else "normal",
            restriction_reason=rng.choice(["vip", "staff", "protected"]) if restricted else "",
        )
        pats.append(p)
        born = timezone.make_aware(datetime.combine(birth, time(0, 0)))
        stays = []
        # Past encounters, all after birth and before today.
        past_units = [u for u in units if _eligible(u.code, sex, age_days)]
        for _k in range(rng.randint(0 if current else 1, 2)):
            if age_days < 15:
                break
            unit = rng.choice(past_units)
            days_ago = rng.randint(12, min(5 * 365, age_days - 2))
            start = anchor - timedelta(days=days_ago, hours=rng.randint(0, 10))
            if rng.random() < 0.4:
                kind, end = Encounter.Kind.CONSULTATION, start + timedelta(minutes=rng.choice([20, 30, 45]))
            else:
                kind = Encounter.Kind.STAY
                end = min(start + timedelta(days=rng.randint(1, 10), hours=rng.randint(1, 8)),
                          anchor - timedelta(days=1))
            if unit.code == "urgences":  # an emergency visit lasts hours (same draws: the demo data stays alike)
                kind, end = Encounter.Kind.EMERGENCY, min(end, start + timedelta(hours=8))
            stays.append((unit, kind, max(start, born + timedelta(hours=6)), end))
        if current is not None:
            days_in = 0 if code == "urgences" else rng.randint(0, 9)
            start = anchor - timedelta(days=days_in, hours=rng.randint(1, 14))
            kind = Encounter.Kind.EMERGENCY if code == "urgences" else Encounter.Kind.STAY
            stays.append((current, kind, max(start, born + timedelta(hours=6)), None))
        plans.append(stays)
        for _unit, _kind, start, end in stays:
            when = end or start
            p.last_activity_at = max(p.last_activity_at or when, when)
    Patient.objects.bulk_create(pats, batch_size=n)
    encs = []
    for p, stays in zip(pats, plans, strict=True):
        for unit, kind, start, end in stays:
            encs.append(Encounter(patient=p, unit=unit, start=start, end=end, kind=kind))
    Encounter.objects.bulk_create(encs, batch_size=5000)
    notes, obs, rx, docs, allergies, problems = [], [], [], [], [], []
    dated: list[tuple[object, datetime]] = []
    for enc in encs:
        p, unit = enc.patient, enc.unit
        staff = authors[unit.pk]
        doctors = [u for u in staff if _is_physician(u)] or staff
        nurses = [u for u in staff if not _is_physician(u)] or staff
        until = enc.end or anchor
        span = until - enc.start
        sensitive = unit.code == "psychiatrie"
        if enc.kind == Encounter.Kind.CONSULTATION:
            plan = [("consultation", rng.choice(doctors), enc.start + span / 2)]
        else:
            plan = [("admission", rng.choice(doctors), enc.start + min(span / 4, timedelta(hours=2)))]
            days = min(span.days, 4)
            for d in range(days):
                at = enc.start + timedelta(days=d + 1, hours=rng.randint(-3, 3))
                if at < until:
                    plan.append((rng.choice(["progress", "nursing"]), None, at))
            if enc.end is not None:
                plan.append(("discharge", rng.choice(doctors), enc.end - timedelta(minutes=30)))
        for kind, author, at in plan:
            if author is None:
                author = rng.choice(nurses if kind == "nursing" else doctors)
            note = ClinicalNote(
                patient=p,
                encounter=enc,
                author=author,
                kind=kind,
                title=f"{NOTE_TITLES[kind]} — {unit.name}",
                body=rng.choice(fake.dpi_paragraphs),
                sensitive=sensitive,
            )
            notes.append(note)
            dated.append((note, min(max(at, enc.start), until)))
        for loinc, label, u, low, high, mean, sd in rng.sample(LABS, rng.randint(1, 3)):
            value = Decimal(str(round(max(0.1, rng.gauss(mean, sd)), 1)))
            obs.append(
                Observation(
                    patient=p,
                    encounter=enc,
                    author=rng.choice(nurses),
                    loinc=loinc,
                    label=label,
                    unit=u,
                    value=value,
                    reference_low=Decimal(low),
                    reference_high=Decimal(high),
                    effective_at=enc.start + span * rng.random(),
                )
            )
        if rng.random() < 0.3:
            rx.append(
                Prescription(
                    patient=p,
                    encounter=enc,
                    author=rng.choice(doctors),
                    medication=rng.choice(DRUGS),
                    instructions=f"{rng.randint(1, 3)} fois par jour pendant {rng.randint(3, 14)} jours",
                    start=timezone.localdate(enc.start),
                )
            )
            dated.append((rx[-1], enc.start + span * 0.1))
        if rng.random() < (0.5 if enc.end is None else 0.3):
            title = rng.choice(_DOCUMENT_TITLES.get(unit.code, ["Compte rendu"]))
            content = _pdf(title)
            docs.append(
                Document(
                    patient=p,
                    encounter=enc,
                    author=rng.choice(doctors),
                    title=title,
                    media_type="application/pdf",
                    content=content,
                    size=len(content),
                )
            )
            dated.append((docs[-1], enc.start + span * rng.uniform(0.2, 0.9)))
    for p, stays in zip(pats, plans, strict=True):
        if not stays:
            continue
        first_seen = min(start for _u, _k, start, _e in stays)
        staff = authors[stays[0][0].pk]
        if rng.random() < 0.15:
            allergies.append(
                Allergy(
                    patient=p,
                    author=rng.choice(staff),
                    substance=rng.choice(ALLERGENS),
                    reaction="Urticaire",
                    severity="low",
                )
            )
            dated.append((allergies[-1], first_seen + timedelta(hours=1)))
        if rng.random() < 0.4 and p.birth_date < anchor.date() - timedelta(days=15 * 365):
            code, label = rng.choice(PROBLEMS)
            problems.append(
                Problem(
                    patient=p,
                    author=rng.choice(staff),
                    icd10=code,
                    label=label,
                    comment=rng.choice(fake.dpi_sentences),
                )
            )
            dated.append((problems[-1], first_seen + timedelta(hours=2)))
    for model, rows in ((ClinicalNote, notes), (Observation, obs), (Prescription, rx), (Document, docs),
                        (Allergy, allergies), (Problem, problems)):
        model.objects.bulk_create(rows, batch_size=2000)
    # created_at is auto_now_add (set to now by bulk_create): date each item within its stay instead.
    by_model: dict[type, list] = {}
    for obj, when in dated:
        obj.created_at = obj.updated_at = when
        by_model.setdefault(type(obj), []).append(obj)
    for model, rows in by_model.items():
        model.objects.bulk_update(rows, ["created_at", "updated_at"], batch_size=2000)
    counts["encounters"] += len(encs)
    counts["notes"] += len(notes)
    counts["observations"] += len(obs)


NOTE_TITLES = {
    "admission": "Observation d'entrée",
    "progress": "Évolution",
    "nursing": "Transmissions infirmières",
    "discharge": "Compte rendu de sortie",
    "consultation": "Consultation",
}


# --- a month of access history -------------------------------------------------------------------------
_INSERT_EVENT = (
    "INSERT INTO audit_accessevent (occurred_at, actor_id, actor_username, actor_role, actor_unit, patient_id, "
    "category, resource_type, resource_id, action, outcome, basis, reason, channel, request_id, ip, user_agent, "
    "details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'web', '', %s::inet, %s, %s::jsonb)"
)
_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0 (démonstration)"


def _access_history(rng: random.Random, anchor: datetime, units, authors, *, days: int) -> tuple[int, int]:
    """``days`` of plausible access traces before ``anchor``, then a detection replay over them.

    Every trace goes into the real, append-only ``audit_accessevent`` table and is linked into the hash chain
    by PostgreSQL's own trigger, exactly like a live one (only ``occurred_at`` is given, in the past). Each
    day: sign-ins, the unit's staff opening the charts of the patients in their unit, a few searches; and a
    few cases for the DPO: refusals outside the care team, emergency accesses (two reviewed, one pending), a
    hospital-wide account reading a namesake's record, a burst of night-time reads. ``detect_range`` then
    scores these days with the real rules, so the dashboard and the alert queue have something to show.
    """
    import json

    from access.models import EmergencyAccess
    from access.selectors import justification_digest
    from audit.detection.models import Alert
    from audit.detection.services import detect_range

    profiles = {
        sp.user_id: sp for sp in StaffProfile.objects.select_related("user").prefetch_related("units")
    }

    def actor(user):
        sp = profiles.get(user.pk)
        return (user.pk, user.username, sp.role if sp else "", sp.unit_label if sp else "")

    start_window = anchor - timedelta(days=days)
    encs = list(
        Encounter.objects.filter(start__lt=anchor)
        .exclude(end__lt=start_window)
        .values_list("patient_id", "unit_id", "start", "end")
    )
    rows: list[tuple] = []

    def add(when, user, patient_id, category, rtype, action, outcome, basis, reason="", details=None,
            resource_id=None):
        uid, uname, role, unit = actor(user)
        rows.append((when, uid, uname, role, unit, patient_id, category, rtype,
                     str(resource_id if resource_id is not None else patient_id or ""), action, outcome, basis, reason,
                     f"10.20.{rng.randint(1, 30)}.{rng.randint(2, 250)}", _AGENT,
                     json.dumps(details or {}, separators=(",", ":"))))

    for d in range(days, 0, -1):
        day = anchor.date() - timedelta(days=d)
        day0 = timezone.make_aware(datetime.combine(day, time(0, 0)))
        day1 = day0 + timedelta(days=1)
        first_seen: dict[int, tuple[datetime, object]] = {}
        for patient_id, unit_id, start, end in encs:
            if start >= day1 or (end is not None and end < day0):
                continue
            staff = authors.get(unit_id) or []
            if not staff:
                continue
            for user in rng.sample(staff, min(len(staff), rng.randint(1, 3))):
                when = day0 + timedelta(hours=7, minutes=rng.randint(0, 12 * 60))  # day shifts, 7:00-19:00
                if when < start:
                    when = start + timedelta(minutes=rng.randint(10, 90))
                when = min(when, day1 - timedelta(minutes=1))
                category = "medical"
                add(when, user, patient_id, category, "patient", "view", "allowed", "care:encounter")
                seen = first_seen.get(user.pk)
                if seen is None or when < seen[0]:
                    first_seen[user.pk] = (when, user)
        for when, user in first_seen.values():
            add(when - timedelta(minutes=3), user, None, "", "", "login", "allowed", "password")
            add(when - timedelta(minutes=2), user, None, "", "", "login", "allowed", "second_factor")
            if rng.random() < 0.3:
                add(when - timedelta(minutes=1), user, None, "administrative", "patient", "search", "allowed", "role",
                    details={"query_length": rng.randint(3, 12)})
    # Cases for the DPO.
    by_code = {u.code: u for u in units}
    others = [e for e in encs if e[1] != by_code["cardio"].pk]
    curious = next((u for u in authors[by_code["cardio"].pk] if u.username.startswith("medical_secretary.")), None)
    if curious is not None and others:
        for _k in range(4):
            patient_id = rng.choice(others)[0]
            when = anchor - timedelta(days=rng.randint(2, days - 1), hours=rng.randint(1, 8))
            add(when, curious, patient_id, "medical", "patient", "view", "denied", "deny:no_care_relationship",
                "no care relationship with this patient")
    emergency_doctors = [u for u in authors[by_code["urgences"].pk] if _is_physician(u)]
    dpo = User.objects.filter(username="demo.dpo").first()
    reasons = [
        ("emergency", "Patient inconscient transféré du SAMU, antécédents nécessaires pour la prise en charge."),
        ("continuity", "Avis demandé par l'interne de garde la nuit, médecin référent absent."),
        ("emergency", "Détresse respiratoire au scanner, besoin des derniers résultats biologiques."),
    ]
    for k, (category_, text) in enumerate(reasons):
        if not emergency_doctors or not others:
            break
        doctor = emergency_doctors[k % len(emergency_doctors)]
        patient_id = rng.choice(others)[0]
        started = anchor - timedelta(days=[19, 8, 2][k], hours=rng.randint(1, 10))
        reviewed = k < 2 and dpo is not None
        comment = "Urgence confirmée par le registre du service." if reviewed else ""
        access = EmergencyAccess.objects.create(
            user=doctor, patient_id=patient_id, reason_category=category_, reason_text=text, started_at=started,
            expires_at=started + timedelta(hours=4), review_status="justified" if reviewed else "pending",
            reviewed_by=dpo if reviewed else None, reviewed_at=started + timedelta(days=1) if reviewed else None,
            review_comment=comment,
        )
        # The events access.services writes, with the details verify_audit checks the record against.
        add(started, doctor, patient_id, "medical", "emergencyaccess", "break_glass", "allowed", "break_glass",
            text[:300], resource_id=access.pk,
            details={"reason_category": category_, "expires_at": access.expires_at.isoformat(),
                     "patient_objection": False, "reason_digest": justification_digest(text)})
        if reviewed:
            add(started + timedelta(days=1), dpo, patient_id, "administrative", "", "permission_change", "allowed",
                "break_glass_review", resource_id="",
                details={"emergency_access_id": access.pk, "status": "justified", "comment": comment})
        for m in range(rng.randint(2, 4)):
            add(started + timedelta(minutes=5 + 10 * m), doctor, patient_id, "medical", "patient", "view",
                "allowed", "break_glass")
    pharmacist = User.objects.filter(username__startswith="pharmacist.").order_by("username").first()
    namesake = Patient.objects.filter(confidentiality="normal").order_by("ipp").last()
    if pharmacist is not None and namesake is not None:
        # A relative: the pharmacist shares the patient's family name and reads the record with no order.
        User.objects.filter(pk=pharmacist.pk).update(last_name=namesake.birth_name)
        StaffProfile.objects.filter(user=pharmacist).update(birth_name=namesake.birth_name, city=namesake.city)
        for m in range(3):
            add(anchor - timedelta(days=5, hours=3 - m), pharmacist, namesake.pk, "medical", "patient", "view",
                "allowed", "role")
    reception = User.objects.filter(username__startswith="reception.").order_by("username").first()
    vip = Patient.objects.filter(confidentiality="restricted").order_by("ipp").first()
    if reception is not None and vip is not None:
        # A restricted (VIP) identity opened by reception without an arrival to register.
        add(anchor - timedelta(days=11, hours=2), reception, vip.pk, "administrative", "patient", "view",
            "allowed", "role")
    dim = User.objects.filter(username__startswith="dim.").order_by("username").first()
    if dim is not None and encs:
        # The DIM codes stays on weekday afternoons (its usual hours), then one night reads 30 charts.
        for d in range(days, 0, -1):
            day = anchor.date() - timedelta(days=d)
            if day.weekday() >= 5:
                continue
            t = timezone.make_aware(datetime.combine(day, time(14, 0)))
            for m, (patient_id, *_rest) in enumerate(rng.sample(encs, min(len(encs), rng.randint(5, 10)))):
                add(t + timedelta(minutes=7 * m), dim, patient_id, "medical", "patient", "view", "allowed", "role")
        night = timezone.make_aware(datetime.combine(anchor.date() - timedelta(days=3), time(2, 10)))
        for m, (patient_id, *_rest) in enumerate(rng.sample(encs, min(30, len(encs)))):
            add(night + timedelta(minutes=2 * m), dim, patient_id, "medical", "patient", "view", "allowed", "role")
    rows.sort(key=lambda r: r[0])
    from django.db import connection

    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(_INSERT_EVENT, rows)
    # Sign the chain head now, as Celery beat does every few minutes: the history is covered from the start.
    from audit.services import chain_seal, checkpoint_sign

    chain_seal()
    checkpoint_sign()
    from audit.verification import chain_verify

    chain_verify()  # the DPO dashboard shows the trail verified from the first visit
    before = Alert.objects.count()
    detect_range(day_from=anchor.date() - timedelta(days=days), day_to=anchor.date() - timedelta(days=1),
                 chunk_days=days)
    return len(rows), Alert.objects.count() - before
