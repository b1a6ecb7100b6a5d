"""The access trace: one row per decision of the gate and per authentication or rights event.

The table is created by SQL migrations (declarative partitioning by month, append-only triggers), so the
model is ``managed = False``. ``patient_id`` is a plain value, not a foreign key: traces outlive an archived
or destroyed patient.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Func


class ClockTimestamp(Func):
    function = "clock_timestamp"
    template = "clock_timestamp()"
    output_field = models.DateTimeField()


class AccessEvent(models.Model):
    class Outcome(models.TextChoices):
        ALLOWED = "allowed"
        DENIED = "denied"

    class Action(models.TextChoices):
        VIEW = "view"
        SEARCH = "search"
        CREATE = "create"
        AMEND = "amend"
        DELETE = "delete"
        EXPORT = "export"
        PRINT = "print"
        LOGIN = "login"
        LOGIN_FAILURE = "login_failure"
        LOGOUT = "logout"
        BREAK_GLASS = "break_glass"
        PERMISSION_CHANGE = "permission_change"
        ACCOUNT = "account"
        ALERT = "alert"
        OTHER = "other"

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(db_default=ClockTimestamp())
    actor_id = models.BigIntegerField(null=True)
    actor_username = models.CharField(max_length=150, default="")
    actor_role = models.CharField(max_length=100, default="")
    actor_unit = models.CharField(max_length=100, default="")
    patient_id = models.BigIntegerField(null=True)
    category = models.CharField(max_length=20, default="")
    resource_type = models.CharField(max_length=40, default="")
    resource_id = models.CharField(max_length=64, default="")
    action = models.CharField(max_length=24, choices=Action.choices)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    basis = models.CharField(max_length=40, default="")
    reason = models.CharField(max_length=300, default="")
    channel = models.CharField(max_length=10, default="")
    request_id = models.CharField(max_length=64, default="")
    ip = models.GenericIPAddressField(null=True)
    user_agent = models.CharField(max_length=300, default="")
    details = models.JSONField(default=dict)

    class Meta:
        managed = False
        db_table = "audit_accessevent"
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {self.outcome}"
