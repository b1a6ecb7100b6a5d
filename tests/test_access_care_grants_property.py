"""Property: whatever sequence of encounters, memberships, appointments, staff moves and expiries happens,
the care grants valid now are exactly those the rules justify now (none unjustified, none missing).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from access import services
from access.care_team import care_grants_sweep
from access.models import CareGrant, CareTeamMembership, StaffProfile
from access.policy import CARE_STAFF_ROLES, Role
from patients import services as ps
from patients.models import Appointment, CareUnit, Encounter
from tests.personas import make_patient, make_user

N_PATIENTS, N_USERS, N_UNITS = 3, 4, 2
ROLES = [Role.PHYSICIAN, Role.NURSE, Role.RECEPTION, Role.PHYSICIAN]
idx_p = st.integers(0, N_PATIENTS - 1)
idx_u = st.integers(0, N_USERS - 1)
idx_unit = st.integers(0, N_UNITS - 1)
days = st.integers(-70, 40).map(lambda d: d + 0.5)  # half days: never exactly on a boundary

ops = st.one_of(
    st.tuples(st.just("admit"), idx_p, idx_unit, st.integers(-70, 0).map(lambda d: d + 0.5)),
    st.tuples(st.just("discharge"), idx_p, st.integers(0, 60)),
    st.tuples(st.just("transfer"), idx_p, idx_unit),
    st.tuples(st.just("member"), idx_p, idx_u, days, st.integers(1, 40)),
    st.tuples(st.just("member_end"), idx_p, idx_u),
    st.tuples(st.just("appointment"), idx_p, idx_u, days),
    st.tuples(st.just("cancel"), idx_p, idx_u),
    st.tuples(st.just("unit_add"), idx_u, idx_unit),
    st.tuples(st.just("unit_remove"), idx_u, idx_unit),
    st.tuples(st.just("disable"), idx_u),
    st.tuples(
        st.just("sweep"),
    ),
)


def justified_now(patients, users, now) -> set[tuple[int, int]]:
    """The rules, restated independently of the SQL in access.care_team (the facts of this test are entered by
the system or another person, so provenance never withholds a grant here)."""
    post = timedelta(days=settings.DPI_POST_DISCHARGE_DAYS)
    out = set()
    for u in users:
        u.refresh_from_db()
        if not u.is_active:
            continue
        profile = StaffProfile.objects.get(user=u)
        units = set(profile.units.values_list("pk", flat=True))
        for p in patients:
            ok = False
            if Role(profile.role) in CARE_STAFF_ROLES:
                for e in Encounter.objects.filter(patient=p, unit_id__in=units):
                    if e.start <= now and (e.end is None or e.end + post > now):
                        ok = True
            # Only a clinician is the practitioner of a consultation (a receptionist named there gets nothing).
            clinical = Role(profile.role) in {Role.PHYSICIAN, Role.MIDWIFE, Role.NURSE, Role.PHARMACIST}
            for a in Appointment.objects.filter(patient=p, practitioner=u).exclude(status="cancelled"):
                if clinical and a.start - timedelta(days=7) <= now < a.end + post:
                    ok = True
            for m in CareTeamMembership.objects.filter(patient=p, user=u):
                if m.start <= now < m.end:
                    ok = True
            if ok:
                out.add((u.pk, p.pk))
    return out


def granted_now(patients, now) -> set[tuple[int, int]]:
    rows = CareGrant.objects.filter(content_object__in=patients, valid_from__lte=now)
    return {(g.user_id, g.content_object_id) for g in rows if g.valid_until is None or g.valid_until > now}


class CareGrantProperty(TestCase):
    databases = {"default", "audit"}

    @hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(ops, min_size=1, max_size=12))
    def test_grants_equal_what_the_rules_justify(self, sequence):
        units = [CareUnit.objects.create(code=f"h-unit-{i}", name=f"Unit {i}") for i in range(N_UNITS)]
        users = [make_user(f"h.user{i}", ROLES[i], [units[i % N_UNITS]]) for i in range(N_USERS)]
        patients = [make_patient() for _ in range(N_PATIENTS)]
        admin = make_user("h.it", Role.IT_ADMIN)
        for op in sequence:
            now = timezone.now()
            kind = op[0]
            if kind == "admit":
                if Encounter.objects.filter(patient=patients[op[1]], end__isnull=True).exists():
                    continue  # at most one open stay per patient: a second admission is refused
                ps.encounter_admit(patient=patients[op[1]], unit=units[op[2]], start=now + timedelta(days=op[3]))
            elif kind in {"discharge", "transfer"}:
                enc = Encounter.objects.filter(patient=patients[op[1]], end__isnull=True).first()
                if enc is None or enc.start > now:
                    continue  # a stay admitted for later (start in the future) is not discharged before it starts
                if kind == "discharge":
                    end = enc.start + (now - enc.start) * (op[2] / 60)
                    ps.encounter_discharge(encounter=enc, end=end)
                else:
                    ps.encounter_transfer(encounter=enc, unit=units[op[2]], at=now)
            elif kind == "member":
                start = now + timedelta(days=op[3])
                CareTeamMembership.objects.create(
                    patient=patients[op[1]],
                    user=users[op[2]],
                    start=start,
                    end=start + timedelta(days=op[4]),
                    reason="prop",
                )
            elif kind == "member_end":
                m = CareTeamMembership.objects.filter(patient=patients[op[1]], user=users[op[2]]).last()
                if m is not None:
                    m.end = max(now, m.start + timedelta(seconds=1))
                    m.save()
            elif kind == "appointment":
                start = now + timedelta(days=op[3])
                Appointment.objects.create(
                    patient=patients[op[1]],
                    unit=units[0],
                    practitioner=users[op[2]],
                    start=start,
                    end=start + timedelta(hours=1),
                )
            elif kind == "cancel":
                a = Appointment.objects.filter(patient=patients[op[1]], practitioner=users[op[2]]).last()
                if a is not None:
                    ps.appointment_cancel(appointment=a)
            elif kind == "unit_add":
                users[op[1]].staff.units.add(units[op[2]])
            elif kind == "unit_remove":
                users[op[1]].staff.units.remove(units[op[2]])
            elif kind == "disable":
                services.account_disable(actor=admin, user=users[op[1]], reason="prop")
            elif kind == "sweep":
                care_grants_sweep()
        now = timezone.now()
        assert granted_now(patients, now) == justified_now(patients, users, now)
        # Every stored grant, valid now or later, is justified by some source: nothing dangling.
        assert all(
            g.basis in {"encounter", "appointment", "membership"}
            for g in CareGrant.objects.filter(content_object__in=patients)
        )
        assert not User.objects.filter(caregrant__isnull=False, is_active=False).exists()
