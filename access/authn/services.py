"""Authentication: sign-in with attempt limits, second factor, sessions, passwords, account life cycle.

Every authentication event is an audit event (``audit.services.event_record``): success, failure, lock and
unlock, second-factor failure, enrolment, password change, logout and expiry, account disabled. No password,
one-time code or backup code is ever put in an event, a log line or a URL.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from datetime import date, datetime, timedelta
from typing import Any

import django_otp
import segno
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from access import gate
from access.authn import credentials, throttle
from access.authn.decorators import require_fresh_otp  # noqa: F401 - part of this module's API
from access.authn.models import AccountDeactivation, LoginThrottle, OidcIdentity, SessionRecord
from access.policy import Role
from audit.services import event_record

User = get_user_model()

# Session keys (no secret in them).
AUTH_AT = "_dpi_auth_at"  # when the user signed in (absolute lifetime)
LAST_SEEN = "_dpi_last_seen"  # last request (idle timeout)
FRESH_OTP_AT = "_dpi_fresh_otp_at"  # last one-time code typed for a sensitive action
TRACKED_KEY = "_dpi_session_key"  # the key under which SessionRecord knows this session

ENROL_DEVICE_NAME = "authenticator"
BACKUP_DEVICE_NAME = "backup"
BACKUP_CODE_COUNT = 10
ADMIN_ROLES = frozenset({Role.IT_ADMIN, Role.SECURITY_OFFICER})


# --- audit ------------------------------------------------------------------------------------------------
def auth_event(*, action: str, outcome: str, user: Any = None, basis: str = "", reason: str = "",
           details: dict[str, Any] | None = None) -> None:
    known = user is not None and getattr(user, "pk", None) is not None
    role = gate.role_of(user) if known and getattr(user, "is_authenticated", False) else None
    event_record(action=action, outcome=outcome, actor=user if known else None,
                 actor_role=role.value if role else "", actor_unit=gate.unit_of(user) if known else "",
                 basis=basis, reason=reason, details=details or {})


# --- who needs what ---------------------------------------------------------------------------------------
def needs_second_factor(user: Any) -> bool:
    """Roles that read medical data (and reception, by default), privileged roles, and any account holding a
    privilege besides its role (superuser, admin-site flag, identity vigilance, a model permission) need a verified
    second factor (``access.gate.user_requires_second_factor``)."""
    return gate.user_requires_second_factor(user)


def is_verified(user: Any) -> bool:
    verified = getattr(user, "is_verified", None)
    if callable(verified):
        return bool(verified())
    # A user object that django-otp's middleware has not wrapped (just signed in during this request).
    return getattr(user, "otp_device", None) is not None


def has_second_factor_device(user: Any) -> bool:
    from django_otp_webauthn.models import WebAuthnCredential

    return (TOTPDevice.objects.filter(user=user, confirmed=True).exists()
            or StaticToken.objects.filter(device__user=user, device__confirmed=True).exists()
            or WebAuthnCredential.objects.filter(user=user, confirmed=True).exists())


def password_change_required(user: Any, *, now: datetime | None = None) -> bool:
    """A temporary password (new account, reset, suspected compromise) or an old administrator password.

    CNIL 2022-100: no forced periodic change for ordinary users; administrators renew theirs regularly.
    """
    profile = gate.profile_of(user)
    if profile is None:
        return False
    if profile.must_change_password:
        return True
    is_admin = getattr(user, "is_superuser", False) or gate.role_of(user) in ADMIN_ROLES
    if is_admin and user.has_usable_password():
        now = now or timezone.now()
        changed = profile.password_changed_at or user.date_joined
        return changed < now - timedelta(days=settings.DPI_ADMIN_PASSWORD_MAX_DAYS)
    return False


def pending_step(request: HttpRequest) -> str | None:
    """What the signed-in user must still do before reaching the application: "enrol", "second_factor",
    "password_change", or None."""
    user = request.user
    if not user.is_authenticated:
        return None
    if needs_second_factor(user) and not is_verified(user):
        return "second_factor" if has_second_factor_device(user) else "enrol"
    if password_change_required(user):
        return "password_change"
    return None


# --- sign-in with attempt limits --------------------------------------------------------------------------
BLOCKED_ATTR = "dpi_login_blocked"


def contract_problem(user: Any, today: date) -> str | None:
    profile = gate.profile_of(user)
    if profile is None:
        return None
    if profile.start_date and profile.start_date > today:
        return "contract_not_started"
    if profile.end_date and profile.end_date < today:
        return "contract_ended"
    return None


def password_login(request: HttpRequest | None, username: str, password: str) -> Any:
    """Check a user name and password under the attempt limits; returns the user or None.

    The same work and the same answer whether or not the account exists: an unknown name is hashed
    against like a real one and has its own counters. While a delay or a lock runs, the password is not
    even looked at. ``request.dpi_login_blocked`` tells the form which message to show.
    """
    address = throttle.client_address(request)
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    with transaction.atomic():
        attempt = throttle.Attempt(username=username, address=address, user=user)
        verdict = attempt.verdict()
        if verdict.blocked:
            attempt.failed()
            auth_event(action="login_failure", outcome="denied", user=user, basis="locked" if verdict.locked
                   else "delayed", reason="attempt refused: too many failures",
                   details=_attempt_details(username, user))
            _mark_blocked(request, True)
            return None
        if user is None:
            User().set_password(password)  # the same hashing work as for a real account
            problem = "unknown_account"
        elif not user.check_password(password):
            problem = "bad_password"
        elif not user.is_active:
            problem = "inactive"
        elif gate.is_token_only(user):
            # Integration accounts act by API token only: no interactive sign-in, whatever their codes.
            problem = "token_only"
        else:
            problem = contract_problem(user, timezone.localdate())
        if problem:
            after = attempt.failed()
            auth_event(action="login_failure", outcome="denied", user=user, basis=problem,
                   reason="sign-in refused", details=_attempt_details(username, user))
            _mark_blocked(request, after.locked)
            return None
        attempt.succeeded()
    auth_event(action="login", outcome="allowed", user=user, basis="password",
           details={"method": "password", "second_factor": "required" if needs_second_factor(user)
               else "not_required"})
    _mark_blocked(request, False)
    return user


def _attempt_details(username: str, user: Any) -> dict[str, Any]:
    if user is not None:
        return {"account_known": True}
    # The typed name may be a password typed in the wrong field: keep only a fingerprint.
    return {"account_known": False, "account_fingerprint": throttle.fingerprint(username)[:16]}


def _mark_blocked(request: HttpRequest | None, blocked: bool) -> None:
    if request is not None:
        setattr(request, BLOCKED_ATTR, blocked)


def account_unlock(user: Any, *, by: Any) -> bool:
    """An administrator ends a lock on an account (traced). Returns whether there was one."""
    with transaction.atomic():
        row = (LoginThrottle.objects.select_for_update()
               .filter(scope=LoginThrottle.Scope.ACCOUNT, key=throttle.fingerprint(user.get_username())).first())
        if row is None or not (row.locked or row.failures):
            return False
        row.user = user
        throttle.unlock(row, how="administrator", by=by)
        return True


# --- second factor ----------------------------------------------------------------------------------------
def _normalise_token(token: str) -> str:
    return re.sub(r"[\s\-]", "", token or "").lower()


def _code_refused(request, user, *, basis: str, reason: str) -> None:
    """A wrong one-time code counts towards the account's lock, is audited, and a lock ends the session."""
    verdict = throttle.account_failed(user, address=throttle.client_address(request))
    auth_event(action="login_failure", outcome="denied", user=user, basis=basis, reason=reason)
    if verdict.locked:
        session_end(request, reason="locked")


def _matching_device(user: Any, token: str) -> Device | None:
    token = _normalise_token(token)
    if not token or len(token) > 16:
        return None
    if token.isdigit():
        devices = TOTPDevice.objects.devices_for_user(user, confirmed=True)
    else:
        devices = StaticDevice.objects.devices_for_user(user, confirmed=True)
    for device in devices:
        verified = django_otp.verify_token(user, device.persistent_id, token)
        if verified is not None:
            return verified
    return None


def second_factor_verify(request: HttpRequest, token: str) -> bool:
    """The second step of sign-in: a TOTP code or an unused backup code. A failure counts against the
    account's attempt limits; a lock ends the session."""
    user = request.user
    if throttle.account_verdict(user).blocked:
        auth_event(action="login_failure", outcome="denied", user=user, basis="locked",
               reason="second factor refused: account locked or delayed")
        session_end(request, reason="locked")
        return False
    device = _matching_device(user, token)
    if device is None:
        _code_refused(request, user, basis="second_factor", reason="wrong one-time code")
        return False
    throttle.account_succeeded(user)
    django_otp.login(request, device)
    session_rotate(request)
    auth_event(action="login", outcome="allowed", user=user, basis="second_factor",
           details={"device": "backup_code" if isinstance(device, StaticDevice) else "totp"})
    return True


def totp_enrolment_device(user: Any) -> TOTPDevice:
    """The (unconfirmed) authenticator being enrolled, created on first use."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False, name=ENROL_DEVICE_NAME).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=ENROL_DEVICE_NAME, confirmed=False)
    return device


def totp_qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URI as an inline SVG QR code (no external service sees the secret)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#000", light="#fff")


def totp_secret_text(device: TOTPDevice) -> str:
    import base64

    secret = base64.b32encode(device.bin_key).decode()
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def totp_enrol_confirm(request: HttpRequest, token: str) -> list[str] | None:
    """Confirm the authenticator with a first code; returns the new backup codes (shown once) or None."""
    user = request.user
    device = totp_enrolment_device(user)
    token = _normalise_token(token)
    verified = django_otp.verify_token(user, device.persistent_id, token) if token.isdigit() else None
    if verified is None:
        verdict = throttle.account_failed(user, address=throttle.client_address(request))
        auth_event(action="login_failure", outcome="denied", user=user, basis="second_factor",
               reason="wrong one-time code at enrolment")
        if verdict.locked:
            session_end(request, reason="locked")
        return None
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = backup_codes_issue(user)
    throttle.account_succeeded(user)
    django_otp.login(request, device)
    session_rotate(request)
    auth_event(action="account", outcome="allowed", user=user, basis="otp_enrolled",
           reason="authenticator enrolled, backup codes issued")
    return codes


def _backup_code() -> str:
    alphabet = string.ascii_lowercase + "23456789"
    while True:
        code = "".join(secrets.choice(alphabet) for _ in range(10))
        if not code.isdigit():
            return code


def backup_codes_issue(user: Any) -> list[str]:
    """Replace the user's single-use backup codes; the codes are returned once and stored as issued by
    django-otp (shown to the user only in the response that creates them)."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
        codes = [_backup_code() for _ in range(BACKUP_CODE_COUNT)]
        StaticToken.objects.bulk_create([StaticToken(device=device, token=c) for c in codes])
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def second_factor_reset(user: Any, *, by: Any) -> None:
    """Remove every device (lost phone, suspected compromise): the user enrols again at next sign-in."""
    with transaction.atomic():
        from django_otp_webauthn.models import WebAuthnCredential

        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        WebAuthnCredential.objects.filter(user=user).delete()  # passkeys too: the device may be what was lost
        sessions_end_all(user, reason="second_factor_reset", by=by)
        auth_event(action="account", outcome="allowed", user=by, basis="otp_reset",
               reason="second factor removed", details={"account": user.get_username()})


def one_time_code_check(user: Any, token: str, *, request: HttpRequest | None = None, purpose: str) -> bool:
    """Check a one-time code typed anywhere (sign-in, fresh code, break-the-glass): every failure counts
    towards the account's attempt limits and lock, is audited, and is committed at once: a caller that then
    refuses (and rolls back its own transaction) cannot undo the count. Call it outside ``atomic``."""
    if throttle.account_verdict(user).blocked:
        # As at sign-in: an attempt during a delay or a lock is refused unseen, and counts.
        verdict = throttle.account_failed(user, address=throttle.client_address(request))
        auth_event(action="login_failure", outcome="denied", user=user, basis="locked",
                   reason=f"one-time code refused ({purpose}): account locked or delayed")
        if verdict.locked and request is not None:
            session_end(request, reason="locked")
        return False
    device = _matching_device(user, token)
    if device is None:
        verdict = throttle.account_failed(user, address=throttle.client_address(request))
        auth_event(action="login_failure", outcome="denied", user=user, basis=purpose,
                   reason=f"wrong one-time code ({purpose})")
        if verdict.locked and request is not None:
            session_end(request, reason="locked")
        return False
    throttle.account_succeeded(user)
    return True


# --- fresh one-time code for sensitive actions ------------------------------------------------------------
def has_fresh_otp(request: HttpRequest, *, max_age: int | None = None) -> bool:
    max_age = settings.DPI_FRESH_OTP_SECONDS if max_age is None else max_age
    at = request.session.get(FRESH_OTP_AT)
    return at is not None and time.time() - float(at) <= max_age


def recent_otp_check(request: HttpRequest, token: str) -> bool:
    """Check a one-time code typed for a sensitive action (break-the-glass, export, role change).

    On success the session holds a "fresh code" mark for ``DPI_FRESH_OTP_SECONDS`` and its key changes
    (privilege change); a failure counts against the account's attempt limits.
    """
    user = request.user
    if not getattr(user, "is_authenticated", False):
        return False
    if throttle.account_verdict(user).blocked:
        return False
    device = _matching_device(user, token)
    if device is None:
        _code_refused(request, user, basis="fresh_otp", reason="wrong one-time code for a sensitive action")
        return False
    throttle.account_succeeded(user)
    if not is_verified(user):
        django_otp.login(request, device)
    request.session[FRESH_OTP_AT] = time.time()
    session_rotate(request)
    auth_event(action="login", outcome="allowed", user=user, basis="fresh_otp",
           details={"device": "backup_code" if isinstance(device, StaticDevice) else "totp"})
    return True


# --- sessions ---------------------------------------------------------------------------------------------
def session_started(request: HttpRequest, user: Any) -> None:
    """At every sign-in (``user_logged_in``): start the clocks and record the session."""
    now = time.time()
    session = request.session
    session[AUTH_AT] = now
    session[LAST_SEEN] = now
    session.pop(FRESH_OTP_AT, None)
    if session.session_key is None:
        session.save()
    _track(request, user)


def _track(request: HttpRequest, user: Any) -> None:
    key = request.session.session_key
    if not key:
        return
    previous = request.session.get(TRACKED_KEY)
    meta = request.META
    if previous and previous != key:
        SessionRecord.objects.filter(session_key=previous).delete()
    SessionRecord.objects.update_or_create(session_key=key, defaults={
        "user": user, "ip": throttle.client_address(request),
        "user_agent": meta.get("HTTP_USER_AGENT", "")[:300]})
    request.session[TRACKED_KEY] = key


def session_rotate(request: HttpRequest) -> None:
    """A new session key at a privilege change (second factor verified, fresh code, password changed,
    break-the-glass opened): a key seen before the change is worth nothing after it."""
    request.session.cycle_key()
    if getattr(request.user, "is_authenticated", False):
        _track(request, request.user)


# Compatibility name for callers that open a privilege (break-the-glass).
session_privilege_changed = session_rotate


def session_expiry(request: HttpRequest, *, now: float | None = None) -> str | None:
    """"idle" or "absolute" if the session is over, else None (and the activity clock moves on)."""
    now = time.time() if now is None else now
    session = request.session
    auth_at = session.get(AUTH_AT)
    last = session.get(LAST_SEEN)
    if last is not None and now - float(last) > settings.DPI_SESSION_IDLE_SECONDS:
        return "idle"
    if auth_at is not None and now - float(auth_at) > settings.DPI_SESSION_ABSOLUTE_SECONDS:
        return "absolute"
    if auth_at is None:
        session[AUTH_AT] = now
    if last is None or now - float(last) >= 1:
        session[LAST_SEEN] = now
    if session.session_key and session.get(TRACKED_KEY) != session.session_key:
        _track(request, request.user)
    return None


def session_end(request: HttpRequest, *, reason: str) -> None:
    """Sign out this session (user's choice, idle, absolute lifetime, lock), traced."""
    user = request.user
    if getattr(user, "is_authenticated", False):
        auth_event(action="logout", outcome="allowed", user=user, basis=reason,
               reason={"user": "signed out", "idle": "session idle too long", "absolute":
                       "session lifetime reached", "locked": "account locked"}.get(reason, reason))
    key = request.session.session_key
    if key:
        SessionRecord.objects.filter(session_key=key).delete()
    auth.logout(request)


def _session_keys_of(user: Any) -> set[str]:
    """Every live session of a user: the tracked ones, and a scan of the store as a safety net."""
    keys = set(SessionRecord.objects.filter(user=user).values_list("session_key", flat=True))
    user_id = str(user.pk)
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=2000):
        if str(session.get_decoded().get(auth.SESSION_KEY)) == user_id:
            keys.add(session.session_key)
    return keys


def sessions_end_all(user: Any, *, reason: str, by: Any = None) -> int:
    """Delete every session of the user ("sign out everywhere", role change, disabled account).

    ``by``: who asked (the user themself, an administrator; None for the system), traced as the actor."""
    keys = _session_keys_of(user)
    deleted, _ = Session.objects.filter(session_key__in=keys).delete()
    SessionRecord.objects.filter(Q(user=user) | Q(session_key__in=keys)).delete()
    auth_event(action="logout", outcome="allowed", user=by, basis="everywhere",
           reason=f"all sessions ended ({reason})",
           details={"account": user.get_username(), "sessions": deleted, "cause": reason})
    return deleted


def sessions_of(user: Any) -> list[SessionRecord]:
    live = Session.objects.filter(session_key=OuterRef("session_key"), expire_date__gt=timezone.now())
    return list(SessionRecord.objects.filter(user=user).filter(Exists(live)).order_by("-started_at"))


def session_records_purge() -> int:
    """Forget records of sessions that no longer exist (expired, flushed)."""
    live = Session.objects.filter(session_key=OuterRef("session_key"), expire_date__gt=timezone.now())
    deleted, _ = SessionRecord.objects.exclude(Exists(live)).delete()
    Session.objects.filter(expire_date__lte=timezone.now()).delete()
    return deleted


# --- passwords --------------------------------------------------------------------------------------------
def password_changed(request: HttpRequest, user: Any) -> None:
    """After the user changed their password: clear the temporary flag, keep this session (new key), end
    the others (Django's session hash does), trace it without the password."""
    profile = gate.profile_of(user)
    if profile is not None:
        profile.must_change_password = False
        profile.password_changed_at = timezone.now()
        profile.save(update_fields=["must_change_password", "password_changed_at"])
    auth.update_session_auth_hash(request, user)
    session_rotate(request)
    auth_event(action="account", outcome="allowed", user=user, basis="password_change", reason="password changed")


def temporary_password() -> str:
    """16 random characters of the four classes (about 105 bits), easy to read out."""
    specials = "-_!#%*+=?@"
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789" + specials
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(16))
        classes = {"u" if c.isupper() else "l" if c.islower() else "d" if c.isdigit() else "s" for c in candidate}
        if len(classes) == 4:
            return candidate


def password_temporary_issue(user: Any, *, by: Any, reason: str = "reset") -> str:
    """Give the account a temporary password that must be changed at the next sign-in.

    ``reason``: "new_account", "reset" (forgotten) or "compromise" (suspected: every session ends too).
    The password is returned to the administrator, never stored in clear or traced.
    """
    profile = gate.profile_of(user)
    if profile is None:
        raise ValidationError("this account has no staff profile to carry the forced change")
    password = temporary_password()
    while True:
        try:
            validate_password(password, user)
            break
        except ValidationError:
            password = temporary_password()
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        profile.must_change_password = True
        profile.password_changed_at = timezone.now()
        profile.save(update_fields=["must_change_password", "password_changed_at"])
        sessions_end_all(user, reason=f"password_{reason}", by=by)
        auth_event(action="account", outcome="allowed", user=by, basis="temporary_password",
               reason={"compromise": "compromise suspected: password replaced"}.get(reason, "temporary password"),
               details={"account": user.get_username(), "cause": reason})
    return password


def password_compromise_suspected(user: Any, *, by: Any) -> str:
    """Compromise suspected: replace the password by a temporary one and end every session."""
    return password_temporary_issue(user, by=by, reason="compromise")


# --- account life cycle -----------------------------------------------------------------------------------
def _disable(user_id: int, *, reason: str, now: datetime) -> bool:
    """Claim the account with a conditional UPDATE (idempotent), end its sessions, trace it."""
    if not User.objects.filter(pk=user_id, is_active=True).update(is_active=False):
        return False
    credentials.credentials_changed()
    user = User.objects.select_related("staff").get(pk=user_id)
    profile = getattr(user, "staff", None)
    AccountDeactivation.objects.create(user=user, reason=reason, deactivated_at=now, last_login=user.last_login,
                                       end_date=getattr(profile, "end_date", None))
    sessions_end_all(user, reason=reason)
    event_record(action="account", outcome="allowed", actor=None, basis=f"disabled:{reason}",
                 reason={"contract_end": "account past its end date",
                         "inactivity": f"no sign-in for {settings.DPI_ACCOUNT_INACTIVITY_DAYS} days"}[reason],
                 details={"account": user.get_username(), "account_id": user.pk,
                          "last_login": user.last_login.isoformat() if user.last_login else None,
                          "end_date": profile.end_date.isoformat() if profile and profile.end_date else None})
    return True


def accounts_past_end_date(*, today: date | None = None):
    today = today or timezone.localdate()
    return User.objects.filter(is_active=True, staff__end_date__lt=today)


def accounts_inactive(*, now: datetime | None = None):
    """Active accounts (integration accounts aside) without a sign-in for DPI_ACCOUNT_INACTIVITY_DAYS,
    counting from the later of the last sign-in, the creation and the last re-activation."""
    now = now or timezone.now()
    limit = now - timedelta(days=settings.DPI_ACCOUNT_INACTIVITY_DAYS)
    reactivated = (AccountDeactivation.objects.filter(user=OuterRef("pk"), reactivated_at__isnull=False)
                   .order_by("-reactivated_at").values("reactivated_at")[:1])
    return (User.objects.filter(is_active=True).exclude(staff__role=Role.INTEGRATION)
            .annotate(_since=Greatest(Coalesce("last_login", "date_joined"),
                                      Coalesce(Subquery(reactivated), F("date_joined"))))
            .filter(_since__lt=limit))


def accounts_disable_expired(*, today: date | None = None, now: datetime | None = None) -> int:
    now = now or timezone.now()
    ids = list(accounts_past_end_date(today=today).values_list("pk", flat=True))
    return sum(_disable(pk, reason=AccountDeactivation.Reason.CONTRACT_END, now=now) for pk in ids)


def accounts_disable_inactive(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    ids = list(accounts_inactive(now=now).values_list("pk", flat=True))
    return sum(_disable(pk, reason=AccountDeactivation.Reason.INACTIVITY, now=now) for pk in ids)


def account_reactivate(user: Any, *, by: Any) -> None:
    """Enable an account again (new contract, return from leave): the inactivity clock restarts now."""
    now = timezone.now()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=True)
        credentials.credentials_changed()
        reopened = AccountDeactivation.objects.filter(user=user, reactivated_at__isnull=True).update(
            reactivated_at=now, reactivated_by=by)
        if not reopened:  # disabled by hand: still restart the inactivity clock
            AccountDeactivation.objects.create(user=user, reason=AccountDeactivation.Reason.MANUAL,
                                               deactivated_at=now, reactivated_at=now, reactivated_by=by)
        auth_event(action="account", outcome="allowed", user=by, basis="reactivated", reason="account enabled again",
               details={"account": user.get_username()})
    user.is_active = True


# --- federated identities ---------------------------------------------------------------------------------
def oidc_identity_link(user: Any, *, by: Any, issuer: str, rpps: str = "", subject: str = "") -> OidcIdentity:
    """Link a Pro Santé Connect (OpenID Connect) identity to an account, by RPPS number or ``sub``."""
    with transaction.atomic():
        identity = OidcIdentity(user=user, issuer=issuer, rpps=rpps, subject=subject)
        identity.full_clean()
        identity.save()
        auth_event(action="permission_change", outcome="allowed", user=by, basis="oidc_link",
               reason="federated identity linked", details={"account": user.get_username(), "issuer": issuer,
                                                             "rpps": rpps, "subject": subject[:64]})
    return identity
