"""The live state of this instance, held against the rules the DPO answers for (fiche 3: demonstrate at any time).

Each check reads the database, the keyring or the backup directory, and says green / amber / red with the rule
it is held against. The DPO page ``/dpo/conformity/`` and its signed PDF show them; reading either is audited.
Reads only: no check changes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext as _

log = logging.getLogger(__name__)

GREEN, AMBER, RED = "green", "amber", "red"
_RANK = {GREEN: 0, AMBER: 1, RED: 2}


@dataclass
class Check:
    code: str
    label: str
    status: str
    value: str
    rule: str
    details: list[str] = field(default_factory=list)


def worst(statuses: list[str]) -> str:
    return max(statuses, key=_RANK.__getitem__, default=GREEN)


def _age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return _("never")
    delta = now - at
    if delta < timedelta(hours=1):
        return _("%(n)d min ago") % {"n": max(0, delta.seconds // 60)}
    if delta < timedelta(days=2):
        return _("%(n)d h ago") % {"n": delta.days * 24 + delta.seconds // 3600}
    return _("%(n)d days ago") % {"n": delta.days}


# --- second factor ----------------------------------------------------------------------------------------
def _users_with_a_confirmed_device() -> set[int]:
    """Every django-otp device type installed (TOTP, backup codes excluded, passkeys when enrolled)."""
    from django_otp.models import Device

    ids: set[int] = set()
    for model in apps.get_models():
        if not issubclass(model, Device) or model._meta.label_lower == "otp_static.staticdevice":
            continue  # backup codes alone are a recovery means, not an enrolled factor
        ids.update(model.objects.filter(confirmed=True).values_list("user_id", flat=True))
    return ids


def second_factor_required(user: Any, role: Any) -> bool:
    """Roles reading medical data, every privileged role and superusers (the gate's rule, plus #13's rule
    for privileged roles); integration accounts are token-only."""
    from access import gate
    from access.policy import Role

    if role == Role.INTEGRATION:
        return False
    privileged = {Role.DPO, Role.SECURITY_OFFICER, Role.IT_ADMIN}
    return bool(user.is_superuser or role in privileged or gate.requires_second_factor(role))


def check_second_factor(now: datetime) -> list[Check]:
    from access.models import StaffProfile
    from access.policy import Role

    enrolled = _users_with_a_confirmed_device()
    roles = dict(StaffProfile.objects.values_list("user_id", "role"))
    per_role: dict[str, list[int]] = {}
    missing: dict[str, list[str]] = {}
    for user in get_user_model().objects.filter(is_active=True).only("id", "username", "is_superuser"):
        try:
            role = Role(roles.get(user.pk, ""))
        except ValueError:
            role = None
        key = "superuser" if user.is_superuser and role is None else (role.value if role else "")
        if not key or not second_factor_required(user, role):
            continue
        per_role.setdefault(key, [0, 0])
        per_role[key][0] += 1
        if user.pk in enrolled:
            per_role[key][1] += 1
        else:
            missing.setdefault(key, []).append(user.username)
    checks = []
    for key in sorted(per_role):
        total, done = per_role[key]
        checks.append(Check(
            f"second_factor:{key}", _("Second factor: %(role)s") % {"role": _role_label(key)},
            GREEN if done == total else RED, f"{done}/{total}",
            _("Every account of a role reading health data, and every privileged account, has a second factor "
              "(CNIL DPI fiche 11; PGSSI-S)."),
            details=sorted(missing.get(key, []))[:50],
        ))
    return checks


def _role_label(key: str) -> str:
    """The role in words (audit.labels), never its code."""
    from audit.labels import role_label

    return _("superuser") if key == "superuser" else role_label(key)


# --- accounts ---------------------------------------------------------------------------------------------
def check_accounts(now: datetime) -> list[Check]:
    from access.authn.selectors import accounts_due_for_disabling

    due = accounts_due_for_disabling(now=now)
    past_end = list(due["past_end_date"].values_list("username", flat=True)[:50])
    dormant = list(due["inactive"].values_list("username", flat=True)[:50])
    days = settings.DPI_ACCOUNT_INACTIVITY_DAYS
    return [
        Check("accounts:past_end_date", _("Accounts past their end date still active"),
              RED if past_end else GREEN, str(due["past_end_date"].count()),
              _("An account is disabled on its end date (CNIL DPI fiche 11)."), details=past_end),
        Check("accounts:dormant", _("Accounts unused for %(days)d days still active") % {"days": days},
              RED if dormant else GREEN, str(due["inactive"].count()),
              _("Unused accounts are disabled (CNIL 2020-081; DPI_ACCOUNT_INACTIVITY_DAYS)."), details=dormant),
    ]


# --- authorization review ---------------------------------------------------------------------------------
def check_review(now: datetime) -> list[Check]:
    from access import services
    from access.models import AccessReviewCampaign

    campaign = AccessReviewCampaign.objects.order_by("-started_at").first()
    rule = _("The rights of every account are reviewed every year, by someone else (CNIL DPI fiche 11).")
    if campaign is None:
        return [Check("review:last", _("Yearly authorization review"), RED, _("never"), rule)]
    progress = services.review_progress(campaign)
    total, pending = progress.get("total", 0), progress.get("pending", 0)
    rate = round(100 * (total - pending) / total) if total else 100
    status = GREEN
    if campaign.started_at < now - timedelta(days=365):
        status = RED
    elif pending and campaign.due_at < now:
        status = RED
    elif pending:
        status = AMBER
    checks = [Check("review:last", _("Yearly authorization review"), status,
                    _("started %(age)s, %(rate)d%% done (%(pending)d pending)")
                    % {"age": _age(campaign.started_at, now), "rate": rate, "pending": pending}, rule)]
    missing = services.review_missing_subjects(campaign)
    checks.append(Check("review:coverage", _("Accounts and memberships missing from the last review"),
                        RED if missing else GREEN, str(len(missing)),
                        _("The review covers every account holding any right and every care-team membership."),
                        details=missing[:50]))
    return checks


# --- audit trail ------------------------------------------------------------------------------------------
def check_audit(now: datetime) -> list[Check]:
    from audit.models import AuditCheckpoint
    from audit.selectors import last_verification

    checks = []
    run = last_verification()  # checked against its signature and the witness file
    rule = _("The chain is verified at least daily and found intact (CNIL 2021-122: traces tamper-evident).")
    if run is None:
        checks.append(Check("audit:verification", _("Last audit-chain verification"), RED, _("never"), rule))
    else:
        status = RED if not run.ok or run.finished_at < now - timedelta(days=2) else (
            AMBER if run.finished_at < now - timedelta(hours=26) else GREEN)
        value = (_("intact, %(age)s") if run.ok else _("BROKEN, %(age)s")) % {"age": _age(run.finished_at, now)}
        checks.append(Check("audit:verification", _("Last audit-chain verification"), status, value, rule,
                            details=[run.message] if run.message and not run.ok else []))
    period = timedelta(seconds=settings.DPI_AUDIT_CHECKPOINT_SECONDS)
    cp = AuditCheckpoint.objects.order_by("-signed_at").first()
    signed = cp.signed_at if cp else None
    checks.append(Check(
        "audit:checkpoint", _("Last signed checkpoint"),
        RED if signed is None or signed < now - 2 * period else GREEN, _age(signed, now),
        _("A signed checkpoint at least every two periods (DPI_AUDIT_CHECKPOINT_SECONDS)."),
    ))
    from audit.selectors import last_witness

    try:
        witnessed = last_witness()
    except OSError:
        log.exception("live state: witness file unreadable")
        witnessed = None
    checks.append(Check(
        "audit:witness", _("Last checkpoint copied outside the database (witness file)"),
        RED if witnessed is None or witnessed < now - 2 * period else GREEN, _age(witnessed, now),
        _("Each checkpoint is also written where the database's superuser cannot rewrite it "
          "(DPI_AUDIT_WITNESS_FILE, syslog); docs/audit.md."),
    ))
    return checks


def _optional(module: str, name: str) -> Callable | None:
    import importlib

    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


# --- reviews waiting --------------------------------------------------------------------------------------
def _waiting(code: str, label: str, oldest: datetime | None, count: int, now: datetime, rule: str) -> Check:
    if not count:
        return Check(code, label, GREEN, "0", rule)
    status = RED if oldest and oldest < now - timedelta(days=30) else (
        AMBER if oldest and oldest < now - timedelta(days=7) else GREEN)
    return Check(code, label, status, _("%(n)d, oldest %(age)s") % {"n": count, "age": _age(oldest, now)}, rule)


def check_reviews_waiting(now: datetime) -> list[Check]:
    from access.models import EmergencyAccess

    pending = EmergencyAccess.objects.filter(review_status=EmergencyAccess.Review.PENDING)
    checks = [_waiting("break_glass:pending", _("Break-the-glass uses waiting for review"),
                       pending.aggregate(m=Min("started_at"))["m"], pending.count(), now,
                       _("The DPO reviews each break-the-glass: amber after 7 days, red after 30."))]
    alert = _optional("audit.detection.models", "Alert")
    if alert is not None:
        open_alerts = alert.objects.filter(status__in=[alert.Status.NEW, alert.Status.IN_REVIEW])
        checks.append(_waiting("alerts:open", _("Detection alerts waiting for review"),
                               open_alerts.aggregate(m=Min("created_at"))["m"], open_alerts.count(), now,
                               _("The DPO reviews each alert: amber after 7 days, red after 30.")))
    return checks


# --- retention --------------------------------------------------------------------------------------------
def check_retention(now: datetime) -> list[Check]:
    from retention import archiving, services
    from retention.models import ArchiveJob, RetentionRun

    due = len(services.due_patient_ids(today=timezone.localdate(now)))
    open_jobs = ArchiveJob.objects.filter(state__in=archiving.OPEN_STATES).count()
    last = RetentionRun.objects.exclude(status=RetentionRun.Status.SKIPPED).order_by("-started_at").first()
    backlog = due + open_jobs
    recent = last is not None and last.started_at >= now - timedelta(days=2)
    status = GREEN if not backlog else (AMBER if recent else RED)
    return [Check("retention:backlog", _("Records past their retention period not yet archived"), status,
                  _("%(n)d (last run %(age)s)") % {"n": backlog, "age": _age(last.started_at if last else None, now)},
                  _("Records leave the live base when their period ends (R1112-7 CSP); the daily run clears the "
                    "backlog."))]


# --- backups and keys -------------------------------------------------------------------------------------
def check_backups(now: datetime) -> list[Check]:
    from dpi.compliance import backups
    from dpi.compliance.models import RestoreTest

    latest = None
    for path in backups.backups_list():
        try:
            created = datetime.fromisoformat(backups.manifest_read(path)["created_at"])
        except (backups.BackupRejected, KeyError, ValueError):
            continue
        latest = created if latest is None or created > latest else latest
    test = RestoreTest.objects.filter(ok=True).order_by("-tested_at").first()
    tested = test.tested_at if test else None
    return [
        Check("backup:last", _("Last backup"),
              RED if latest is None or latest < now - timedelta(hours=48) else (
                  AMBER if latest < now - timedelta(hours=26) else GREEN),
              _age(latest, now), _("An encrypted backup every night (CNIL DPI fiche 5).")),
        Check("backup:restore_test", _("Last successful restore test"),
              RED if tested is None or tested < now - timedelta(days=92) else GREEN, _age(tested, now),
              _("A backup is restored into a scratch database at least every quarter (manage.py restore).")),
    ]


def check_keys(now: datetime) -> list[Check]:
    from dpi import crypto

    ring = crypto.keyring()
    checks = []
    for purpose in crypto.PURPOSES:
        ks = ring[purpose]
        created = crypto.key_created_at(purpose, ks.current)
        rotated = [crypto.key_created_at(purpose, v) for v in ks.keys if v > 1]
        last_rotation = max((r for r in rotated if r), default=None)
        if created is None:
            status, value = AMBER, _("v%(v)d, age unknown") % {"v": ks.current}
        else:
            status = AMBER if created < now - timedelta(days=365) else GREEN
            value = _("v%(v)d, created %(age)s") % {"v": ks.current, "age": _age(created, now)}
        value += "; " + _("last rotation: %(age)s") % {"age": _age(last_rotation, now)}
        checks.append(Check(f"keys:{purpose}", _("Key %(purpose)s") % {"purpose": purpose}, status, value,
                            _("Keys are rotated at least every year (docs/keys.md).")))
    return checks


# --- rights and breaches ----------------------------------------------------------------------------------
def check_rights_and_breaches(now: datetime) -> list[Check]:
    from dpi.compliance.models import Breach, RightsRequest

    today = timezone.localdate(now)
    open_requests = RightsRequest.objects.filter(status__in=[RightsRequest.Status.RECEIVED,
                                                             RightsRequest.Status.IN_PROGRESS])
    overdue = list(open_requests.filter(due_at__lt=today).values_list("id", flat=True))
    soon = open_requests.filter(due_at__gte=today, due_at__lte=today + timedelta(days=7)).count()
    rights = Check("rights:open", _("Open rights requests against their legal delay"),
                   RED if overdue else (AMBER if soon else GREEN),
                   _("%(open)d open, %(late)d overdue, %(soon)d due within 7 days")
                   % {"open": open_requests.count(), "late": len(overdue), "soon": soon},
                   _("A request is answered within one month, or three with a notified extension (art. 12(3) GDPR)."),
                   details=[f"#{pk}" for pk in overdue])
    unnotified = Breach.objects.filter(notified_cnil_at__isnull=True).exclude(risk=Breach.Risk.UNLIKELY)
    late = [b.pk for b in unnotified if b.notification_deadline < now]
    breaches = Check("breaches:open", _("Breaches not yet notified to the CNIL"),
                     RED if late else (AMBER if unnotified.exists() else GREEN),
                     _("%(open)d open, %(late)d past 72 h") % {"open": unnotified.count(), "late": len(late)},
                     _("A breach is notified to the CNIL within 72 hours of becoming aware of it (art. 33 GDPR)."),
                     details=[f"#{pk}" for pk in late])
    return [rights, breaches]


# --- settings ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recommended:
    setting: str
    ok: Callable[[Any], bool]
    expected: str
    severity: str = RED


RECOMMENDED: tuple[Recommended, ...] = (
    Recommended("DEBUG", lambda v: v is False, "False"),
    Recommended("DPI_PRODUCTION", lambda v: v is True, "True (production safeguards)", AMBER),
    Recommended("DPI_PASSWORD_MIN_ENTROPY", lambda v: v >= 80 or settings.DPI_LOGIN_MAX_FAILURES <= 10,
                ">= 80 bits, or >= 50 with attempt limits (CNIL 2022-100)"),
    Recommended("DPI_LOGIN_MAX_FAILURES", lambda v: v <= 10, "<= 10 (CNIL 2022-100)"),
    Recommended("DPI_SESSION_IDLE_SECONDS", lambda v: v <= 30 * 60, "<= 1800 s (PGSSI-S: lock after 30 min)"),
    Recommended("DPI_SESSION_ABSOLUTE_SECONDS", lambda v: v <= 12 * 3600, "<= 12 h"),
    Recommended("DPI_RECEPTION_REQUIRES_OTP", lambda v: v is True, "True"),
    Recommended("DPI_BREAK_GLASS_HOURS", lambda v: v <= 24, "<= 24 h"),
    Recommended("DPI_AUDIT_RETENTION_MONTHS", lambda v: 6 <= v <= 36, "6 to 36 months (CNIL 2021-122)"),
    Recommended("DPI_AUDIT_CHECKPOINT_SECONDS", lambda v: v <= 900, "<= 900 s", AMBER),
    Recommended("DPI_ACCOUNT_INACTIVITY_DAYS", lambda v: v <= 180, "<= 180 days", AMBER),
    Recommended("EMAIL_BACKEND", lambda v: "console" not in v and "locmem" not in v,
                "a real mail server (DPO alerts must reach the DPO)", AMBER),
    Recommended("DPI_DPO_EMAILS", lambda v: bool(v) and all(not a.endswith("@localhost") for a in v),
                "the DPO's real address", AMBER),
)


def check_settings(now: datetime) -> list[Check]:
    checks = []
    for rec in RECOMMENDED:
        value = getattr(settings, rec.setting, None)
        try:
            ok = value is not None and rec.ok(value)
        except TypeError:
            ok = False
        checks.append(Check(f"setting:{rec.setting}", rec.setting, GREEN if ok else rec.severity,
                            str(value), _("Recommended: %(expected)s") % {"expected": rec.expected}))
    return checks


SECTIONS: tuple[tuple[str, Callable[[datetime], list[Check]]], ...] = (
    ("second_factor", check_second_factor),
    ("accounts", check_accounts),
    ("review", check_review),
    ("audit", check_audit),
    ("reviews_waiting", check_reviews_waiting),
    ("retention", check_retention),
    ("backups", check_backups),
    ("keys", check_keys),
    ("rights", check_rights_and_breaches),
    ("settings", check_settings),
)


def section_titles() -> dict[str, str]:
    return {
        "second_factor": _("Second factor per role"),
        "accounts": _("Accounts"),
        "review": _("Authorization review"),
        "audit": _("Audit trail"),
        "reviews_waiting": _("Waiting for the DPO"),
        "retention": _("Retention"),
        "backups": _("Backups"),
        "keys": _("Keys"),
        "rights": _("Rights requests and breaches"),
        "settings": _("Settings against recommended values"),
    }


@dataclass
class LiveState:
    generated_at: datetime
    sections: list[tuple[str, str, list[Check]]]

    @property
    def checks(self) -> list[Check]:
        return [c for _key, _title, checks in self.sections for c in checks]

    @property
    def status(self) -> str:
        return worst([c.status for c in self.checks])

    def by_code(self) -> dict[str, Check]:
        return {c.code: c for c in self.checks}


def live_state(now: datetime | None = None) -> LiveState:
    now = now or timezone.now()
    titles = section_titles()
    sections = []
    for key, func in SECTIONS:
        try:
            checks = func(now)
        except Exception as exc:  # a check that cannot run is itself a red line, never a crashed page
            log.exception("live state: %s failed", key)
            checks = [Check(f"{key}:error", titles[key], RED, exc.__class__.__name__,
                            _("The check could not run; see the server log."))]
        sections.append((key, titles[key], checks))
    return LiveState(now, sections)


def as_dict(state: LiveState) -> dict[str, Any]:
    return {
        "generated_at": state.generated_at.isoformat(),
        "status": state.status,
        "checks": [{"code": c.code, "label": str(c.label), "status": c.status, "value": str(c.value),
                    "rule": str(c.rule), "details": [str(d) for d in c.details]} for c in state.checks],
    }
