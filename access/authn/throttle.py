"""Attempt limits on sign-in (CNIL 2022-100, the "restriction mechanism" that goes with a password).

Two counters, one per account name and one per source address, each with a growing delay and then a
temporary lock:

* account: after the 2nd consecutive failure, the next attempt must wait ``DPI_LOGIN_DELAY_SECONDS`` x
  2^(failures - 2) seconds; after ``DPI_LOGIN_MAX_FAILURES`` (1 to 10, default 5) the account name is locked
  for ``DPI_LOGIN_LOCK_MINUTES``, doubled for each further lock (at most 24 hours) until a successful sign-in.
  Once a lock expires, one more failure locks again.
* source address: the same, from half of ``DPI_LOGIN_ADDRESS_MAX_FAILURES`` failures (a hospital's address is
  often shared by many users behind one gateway), forgotten after a lock period without failure.

An attempt made while a delay or a lock runs is refused *without looking at the password* (so a correct
password gives the same answer as a wrong one, and no hashing work is spent) and counts as a failure.
Unknown account names have counters too: the answers never tell whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from access.authn.models import LoginThrottle
from audit.context import client_address  # noqa: F401 - the callers of authn read it here
from audit.services import event_record

Scope = LoginThrottle.Scope
MAX_LOCK = timedelta(hours=24)
MAX_DELAY_SECONDS = 15 * 60
ACCOUNT_FAILURES_FORGOTTEN_AFTER = timedelta(hours=24)


def fingerprint(username: str) -> str:
    """A keyed fingerprint of an account name: counters and traces never hold what was typed as a name."""
    return salted_hmac("dpi.authn.login-name", (username or "").strip().casefold(), algorithm="sha256").hexdigest()


@dataclass(frozen=True)
class Policy:
    scope: str
    free_failures: int  # failures allowed before the delay starts
    max_failures: int  # failures that lock

    def delay_after(self, failures: int) -> float:
        base = settings.DPI_LOGIN_DELAY_SECONDS
        if base <= 0 or failures <= self.free_failures:
            return 0.0
        return float(min(base * 2 ** (failures - self.free_failures - 1), MAX_DELAY_SECONDS))


def policy_for(scope: str) -> Policy:
    if scope == Scope.ACCOUNT:
        return Policy(Scope.ACCOUNT, free_failures=1, max_failures=settings.DPI_LOGIN_MAX_FAILURES)
    limit = settings.DPI_LOGIN_ADDRESS_MAX_FAILURES
    return Policy(Scope.ADDRESS, free_failures=limit // 2, max_failures=limit)


def lock_duration(lock_count: int) -> timedelta:
    base = timedelta(minutes=settings.DPI_LOGIN_LOCK_MINUTES)
    return min(base * 2 ** max(lock_count - 1, 0), MAX_LOCK)


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    locked: bool = False
    retry_after: int = 0


def _row(scope: str, key: str, *, create: bool, user: Any = None) -> LoginThrottle | None:
    """The counter row, locked for update (call inside a transaction)."""
    if create:
        LoginThrottle.objects.bulk_create([LoginThrottle(scope=scope, key=key, user=user)], ignore_conflicts=True)
    return LoginThrottle.objects.select_for_update().filter(scope=scope, key=key).first()


def _forget_stale(row: LoginThrottle, now: datetime) -> None:
    """Old failures stop counting: a day for an account, one lock period for an address."""
    if row.locked or row.last_failure_at is None:
        return
    window = (ACCOUNT_FAILURES_FORGOTTEN_AFTER if row.scope == Scope.ACCOUNT
              else timedelta(minutes=settings.DPI_LOGIN_LOCK_MINUTES))
    if row.last_failure_at < now - window:
        row.failures = 0
        row.blocked_until = None
        if row.scope == Scope.ADDRESS:
            row.lock_count = 0


def _unlock_if_expired(row: LoginThrottle, now: datetime) -> None:
    if row.locked and row.blocked_until is not None and row.blocked_until <= now:
        unlock(row, how="expired", now=now)


def unlock(row: LoginThrottle, *, how: str, by: Any = None, now: datetime | None = None) -> None:
    """End a lock and trace it. After an expired lock one more failure locks again; an administrator's
    unlock starts afresh."""
    now = now or timezone.now()
    row.locked = False
    row.blocked_until = None
    row.failures = 0 if how == "administrator" else max(policy_for(row.scope).max_failures - 1, 0)
    if how == "administrator":
        row.lock_count = 0
    row.save(update_fields=["locked", "blocked_until", "failures", "lock_count"])
    event_record(action="account", outcome="allowed", actor=by if by is not None else row.user,
                 basis="unlock", reason=f"{row.scope} lock ended ({how})", details=_details(row) | {"how": how})


def _details(row: LoginThrottle) -> dict[str, Any]:
    details: dict[str, Any] = {"scope": row.scope, "failures": row.failures, "lock_count": row.lock_count}
    if row.user_id:
        details["account"] = row.user.get_username()
    if row.scope == Scope.ADDRESS:
        details["address"] = row.key
    elif not row.user_id:
        details["account_fingerprint"] = row.key[:16]
    return details


def _verdict(rows: list[LoginThrottle], now: datetime) -> Verdict:
    blocking = [r for r in rows if r.blocked_until is not None and r.blocked_until > now]
    if not blocking:
        return Verdict(False)
    until = max(r.blocked_until for r in blocking if r.blocked_until)
    return Verdict(True, locked=any(r.locked for r in blocking), retry_after=int((until - now).total_seconds()) + 1)


def _register_failure(row: LoginThrottle, now: datetime) -> bool:
    """Count one failure on a row; returns True if it just locked."""
    if row.locked and row.blocked_until and row.blocked_until > now:
        return False  # already locked: nothing more to count
    policy = policy_for(row.scope)
    row.failures += 1
    row.last_failure_at = now
    just_locked = False
    if row.failures >= policy.max_failures:
        row.lock_count += 1
        row.locked = True
        row.locked_at = now
        row.blocked_until = now + lock_duration(row.lock_count)
        just_locked = True
    else:
        delay = policy.delay_after(row.failures)
        if delay:
            row.blocked_until = max(row.blocked_until or now, now + timedelta(seconds=delay))
    row.save(update_fields=["failures", "last_failure_at", "lock_count", "locked", "locked_at", "blocked_until"])
    if just_locked:
        event_record(action="account", outcome="denied", actor=row.user if row.user_id else None,
                     basis="lock", reason=f"{row.scope} locked after {row.failures} failed sign-ins",
                     details=_details(row) | {"until": row.blocked_until.isoformat()})
    return just_locked


class Attempt:
    """One sign-in attempt: open it, ask whether it may proceed, then close it as a success or a failure.

    Use inside ``transaction.atomic()``: the counter rows stay locked for the attempt, so parallel guesses
    at one account are counted one after the other.
    """

    def __init__(self, *, username: str, address: str | None, user: Any = None, now: datetime | None = None):
        self.now = now or timezone.now()
        self.user = user
        account_user = user if user is not None and getattr(user, "pk", None) else None
        self.account = _row(Scope.ACCOUNT, fingerprint(username), create=True, user=account_user)
        if self.account is not None and account_user is not None and self.account.user_id != account_user.pk:
            self.account.user = account_user
            self.account.save(update_fields=["user"])
        self.address_key = address
        self.address = _row(Scope.ADDRESS, address, create=False) if address else None
        for row in self.rows:
            _forget_stale(row, self.now)
            _unlock_if_expired(row, self.now)

    @property
    def rows(self) -> list[LoginThrottle]:
        return [r for r in (self.account, self.address) if r is not None]

    def verdict(self) -> Verdict:
        return _verdict(self.rows, self.now)

    def failed(self) -> Verdict:
        if self.address is None and self.address_key:
            self.address = _row(Scope.ADDRESS, self.address_key, create=True)
        for row in self.rows:
            _register_failure(row, self.now)
        return self.verdict()

    def succeeded(self) -> None:
        row = self.account
        if row is not None and (row.failures or row.lock_count or row.blocked_until):
            row.failures = 0
            row.lock_count = 0
            row.blocked_until = None
            row.locked = False
            row.save(update_fields=["failures", "lock_count", "blocked_until", "locked"])


def account_verdict(user: Any, *, now: datetime | None = None) -> Verdict:
    """Is this account locked or delayed now (for the second-factor step)?"""
    now = now or timezone.now()
    row = LoginThrottle.objects.filter(scope=Scope.ACCOUNT, key=fingerprint(user.get_username())).first()
    return _verdict([row] if row else [], now)


def account_failed(user: Any, *, address: str | None, now: datetime | None = None) -> Verdict:
    """A wrong one-time code (or current password) counts against the account like a wrong sign-in."""
    with transaction.atomic():
        attempt = Attempt(username=user.get_username(), address=address, user=user, now=now)
        return attempt.failed()


def account_succeeded(user: Any) -> None:
    with transaction.atomic():
        Attempt(username=user.get_username(), address=None, user=user).succeeded()


def expired_locks_release(*, now: datetime | None = None) -> int:
    """Release (and trace) every lock whose time is over. Idempotent: rows are claimed under lock."""
    now = now or timezone.now()
    released = 0
    with transaction.atomic():
        rows = LoginThrottle.objects.select_for_update(skip_locked=True, of=("self",)).select_related("user").filter(
            locked=True, blocked_until__lte=now)
        for row in rows:
            unlock(row, how="expired", now=now)
            released += 1
    return released


def stale_rows_purge(*, now: datetime | None = None) -> int:
    """Forget counters with nothing running and no failure for a day (unknown names sprayed by a robot...)."""
    now = now or timezone.now()
    deleted, _ = LoginThrottle.objects.filter(locked=False).exclude(
        last_failure_at__gte=now - ACCOUNT_FAILURES_FORGOTTEN_AFTER).filter(
        user__isnull=True).delete()
    return deleted
