"""Helpers for the audit tests (no tests here).

Inside an ordinary (rolled-back) test transaction nothing commits, so the deferred chain trigger would never
fire: ``chain_now()`` fires it (SET CONSTRAINTS ALL IMMEDIATE), as COMMIT would. ``triggers_off()`` is what a
superuser tampering with the trail would do: ``session_replication_role = replica`` disables ordinary triggers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db import connection
from django.test import Client
from django.utils.module_loading import import_string
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import event_record


def chain_now() -> None:
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SET CONSTRAINTS ALL DEFERRED")


@contextmanager
def triggers_off() -> Iterator[None]:
    with connection.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            cur.execute("SET session_replication_role = DEFAULT")


def record(n: int = 1, **fields) -> list:
    """``n`` allowed events on the default connection (chained at commit, or by ``chain_now()``)."""
    base = {"action": "view", "outcome": "allowed", "category": "medical", "basis": "care:encounter",
            "resource_type": "clinicalnote", "actor_role": "physician"}
    base.update(fields)
    return [event_record(**base) for _ in range(n)]


def fresh_trail() -> None:
    """An empty trail for this test (rolled back with it): what other tests committed is set aside."""
    with triggers_off():
        for table in ("audit_chainlink", "audit_chainpending", "audit_chainquarantine", "audit_auditcheckpoint",
                      "audit_accessevent"):
            sql(f"DELETE FROM {table}")  # noqa: S608


def signed(n: int = 1, **fields) -> list:
    """``n`` events, chained, then a signed checkpoint of the head (as beat does every period)."""
    from audit.services import checkpoint_sign

    events = record(n, **fields)
    chain_now()
    checkpoint_sign()
    return events


def sql(query: str, params=None) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def verified_client(user) -> Client:
    """Signed in with a verified second factor, as after the sign-in's code step."""
    backend = next(p for p in settings.AUTHENTICATION_BACKENDS if issubclass(import_string(p), ModelBackend))
    client = Client()
    client.force_login(user, backend=backend)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="audit-test", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def stored_run(**fields):
    """A verification run recorded as ``verify_audit`` records it: signed, numbered and witnessed (an unsigned
    row saying "intact" is shown as broken, migration 0006)."""
    from audit.models import VerificationRun
    from audit.services import verification_run_store

    return verification_run_store(VerificationRun(**fields))
