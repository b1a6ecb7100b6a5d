"""`manage.py hl7_deadletters`: the HL7 messages answered AE or AR, for the integration team.

hl7_deadletters                 list them (oldest first): id, time, type, control id, code, field, reason
hl7_deadletters --show ID       one message as received (it holds patient data: the access is recorded)
hl7_deadletters --replay ID...  process them again once the cause is fixed (a unit created, an order fixed)
hl7_deadletters --replay-all    every dead letter, oldest first
hl7_deadletters --dismiss ID... take them off the list without processing them
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from access import gate
from access.policy import Category
from dpi.hl7.models import InboundMessage
from dpi.hl7.receiver import replay as replay_message

DEAD = (InboundMessage.Status.ERROR, InboundMessage.Status.REJECTED)


class Command(BaseCommand):
    help = "List, show, replay or dismiss the HL7 messages that were refused (AE/AR)."

    def add_arguments(self, parser):
        parser.add_argument("--show", type=int)
        parser.add_argument("--replay", type=int, nargs="+", default=[])
        parser.add_argument("--replay-all", action="store_true")
        parser.add_argument("--dismiss", type=int, nargs="+", default=[])

    def handle(self, *args, show=None, replay=(), replay_all=False, dismiss=(), **options):
        rows = InboundMessage.objects.filter(status__in=DEAD).order_by("received_at", "id")
        if show is not None:
            row = self._one(show, dead_only=False)
            gate.authorize_system(
                "hl7_support",
                patient_id=row.patient_id,
                category=Category.ADMINISTRATIVE,
                action="view",
                resource_type="hl7message",
                resource_id=row.pk,
            )
            self.stdout.write(row.raw.replace("\r", "\n"))
            return
        targets = list(rows) if replay_all else [self._one(pk) for pk in replay]
        for row in targets:
            after = replay_message(row)
            self.stdout.write(
                f"{after.pk} {after.control_id} -> {after.ack_code} {after.error_field} {after.error_text}"
            )
        for pk in dismiss:
            row = self._one(pk)
            row.status = InboundMessage.Status.DISMISSED
            row.save(update_fields=["status", "processed_at"])
            self.stdout.write(f"{pk} dismissed")
        if targets or dismiss:
            return
        for row in rows:
            self.stdout.write(
                f"{row.pk}\t{row.received_at:%Y-%m-%d %H:%M:%S}\t{row.message_type}\t{row.control_id}\t"
                f"{row.ack_code}\t{row.error_field}\t{row.error_text}\t(attempts: {row.attempts})"
            )
        self.stdout.write(f"{rows.count()} dead letter(s).")

    def _one(self, pk: int, *, dead_only: bool = True) -> InboundMessage:
        queryset = InboundMessage.objects.filter(status__in=DEAD) if dead_only else InboundMessage.objects.all()
        row = queryset.filter(pk=pk).first()
        if row is None:
            raise CommandError(f"No dead letter {pk}.")
        return row
