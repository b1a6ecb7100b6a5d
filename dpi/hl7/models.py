"""What the HL7 v2 channel keeps: each inbound message once (by its control id, MSH-10) with its answer, and
the link between the sender's visit numbers (PV1-19) and dpi's encounters."""

from __future__ import annotations

from django.db import models

from dpi.fields import EncryptedTextField
from patients.models import Encounter, Patient


class InboundMessage(models.Model):
    """One message received over MLLP. A message whose control id its sender already had processed is answered
    with the stored acknowledgement and not processed again. Messages answered AE/AR are the dead-letter list
    (``manage.py hl7_deadletters``) until replayed or dismissed."""

    class Status(models.TextChoices):
        PROCESSED = "processed"
        ERROR = "error"  # answered AE: the content could not be applied
        REJECTED = "rejected"  # answered AR: the message itself was refused (header, type, syntax)
        DISMISSED = "dismissed"  # taken off the dead-letter list by the integration team

    control_id = models.CharField(max_length=199, blank=True, default="")
    message_type = models.CharField(max_length=20, blank=True, default="")  # e.g. ADT^A01
    sender = models.CharField(max_length=200, blank=True, default="")  # MSH-3^MSH-4
    patient_key = models.CharField(max_length=64, blank=True, default="", db_index=True)  # the sender's IPP
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    raw = EncryptedTextField(help_text="the message as received (it holds identity and results)")
    status = models.CharField(max_length=10, choices=Status.choices)
    ack_code = models.CharField(max_length=2)
    ack = models.TextField(help_text="the acknowledgement sent (no patient data)")
    error_field = models.CharField(max_length=20, blank=True, default="")  # e.g. PID-7
    error_code = models.CharField(max_length=3, blank=True, default="")  # HL7 table 0357, e.g. 102
    error_text = models.CharField(max_length=300, blank=True, default="")
    attempts = models.PositiveIntegerField(default=1)
    message_time = models.DateTimeField(null=True, blank=True)  # MSH-7, to keep a late update from undoing a newer one
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "control_id"], condition=~models.Q(control_id=""), name="hl7_control_id_once"
            )
        ]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.message_type} {self.control_id} {self.ack_code}"


class VisitLink(models.Model):
    """The sender's visit number (PV1-19) and the encounter it designates now (the current movement of the
    stay). A pre-admission (A05) has a link and no encounter until the admission."""

    visit_number = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    encounter = models.ForeignKey(Encounter, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    preadmitted_unit = models.CharField(max_length=32, blank=True, default="")
    leave_since = models.DateTimeField(null=True, blank=True)  # A21 leave of absence, cleared by A22
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.visit_number
