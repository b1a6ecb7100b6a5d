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
        PRESCRIBE = "prescribe"
        ADMINISTER = "administer"
        VALIDATE = "validate"
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


class ChainLink(models.Model):
    """One link of the hash chain: ``hash = sha256(prev_hash || canonical bytes of the event)``.

    Written only by the database (the ``audit_chain`` deferred trigger and ``audit_chain_seal()``), never by
    Django: the table is created by SQL (migration 0003), hence ``managed = False``.
    """

    seq = models.BigIntegerField(primary_key=True)
    event_id = models.BigIntegerField(unique=True)
    event_occurred_at = models.DateTimeField()
    prev_hash = models.BinaryField()
    hash = models.BinaryField()

    class Meta:
        managed = False
        db_table = "audit_chainlink"
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"link {self.seq} -> event {self.event_id}"


class AuditCheckpoint(models.Model):
    """A signed statement "the chain had ``seq`` links ending in ``head_hash``" (Ed25519, dpi.crypto).

    Checkpoints form their own chain: checkpoint ``number`` n signs the digest of checkpoint n-1
    (``prev_digest``), numbers have no gap (the database refuses an insert that is not the next number), and
    each one is also written to witnesses outside the database (audit.witness). ``periodic`` checkpoints
    are signed by Celery beat every period, even when no event arrived (their freshness proves signing did
    not stop); a ``retention`` checkpoint is signed just before old months are dropped: it anchors the first
    remaining link (its ``seq`` is the last link removed) and records exactly the links it removes
    (``removed_first_seq`` to ``removed_last_seq``). Created and guarded by SQL (migrations 0002, 0005):
    UPDATE, DELETE and TRUNCATE are refused, hence ``managed = False``.
    """

    class Kind(models.TextChoices):
        PERIODIC = "periodic"
        RETENTION = "retention"

    number = models.BigIntegerField(unique=True)
    format = models.PositiveSmallIntegerField(default=2)  # 1: signed before checkpoints were chained (0005)
    seq = models.BigIntegerField()
    head_hash = models.BinaryField(max_length=32)
    prev_digest = models.BinaryField(max_length=32)
    signed_at = models.DateTimeField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PERIODIC)
    retention_cutoff = models.DateTimeField(null=True, blank=True)
    removed_first_seq = models.BigIntegerField(null=True, blank=True)
    removed_last_seq = models.BigIntegerField(null=True, blank=True)
    key_version = models.PositiveIntegerField()
    signature = models.BinaryField(max_length=64)

    class Meta:
        managed = False
        db_table = "audit_auditcheckpoint"
        ordering = ["number"]

    def __str__(self) -> str:
        return f"checkpoint #{self.number} {self.kind} seq={self.seq} at {self.signed_at:%Y-%m-%d %H:%M:%S}"


class ChainQuarantine(models.Model):
    """A committed event the chain could not take (its id is already chained or queued): kept aside and
    reported by ``verify_audit`` instead of failing every later commit. Written only by the database."""

    event_id = models.BigIntegerField()
    event_occurred_at = models.DateTimeField()
    canonical = models.BinaryField()
    reason = models.TextField()
    quarantined_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "audit_chainquarantine"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"quarantined event {self.event_id} ({self.reason})"


class VerificationRun(models.Model):
    """The result of one ``manage.py verify_audit`` (shown on the DPO dashboard)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    events_checked = models.BigIntegerField(default=0)
    checkpoints_checked = models.IntegerField(default=0)
    first_seq = models.BigIntegerField(null=True)
    last_seq = models.BigIntegerField(null=True)
    first_broken_id = models.BigIntegerField(null=True, help_text="id of the first access event that breaks")
    first_broken_seq = models.BigIntegerField(null=True)
    first_broken_occurred_at = models.DateTimeField(null=True, help_text="date of that row (ids may be reused)")
    message = models.TextField(default="", blank=True)
    problems = models.JSONField(default=list, blank=True, help_text="every problem found (at most 100)")
    completed = models.BooleanField(default=True, help_text="false: the verification itself failed (see message)")
    last_checkpoint_number = models.BigIntegerField(null=True)
    last_checkpoint_at = models.DateTimeField(null=True)
    witness_checked = models.IntegerField(default=0, help_text="witness entries reconciled with the database")
    # Signed like a checkpoint (audit.signing.run_message) and chained to the previous run: a superuser who
    # edits, deletes or inserts a run contradicts a signature, the numbering or the witness file.
    number = models.BigIntegerField(null=True, unique=True, help_text="runs are numbered without gap (signed)")
    prev_digest = models.BinaryField(null=True, max_length=32)
    key_version = models.PositiveIntegerField(null=True)
    signature = models.BinaryField(null=True, max_length=64)

    class Meta:
        ordering = ["-finished_at", "-id"]

    def __str__(self) -> str:
        return f"verification {self.finished_at:%Y-%m-%d %H:%M:%S} {'ok' if self.ok else 'BROKEN'}"
