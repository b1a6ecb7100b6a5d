"""``manage.py verify_audit``: check every link and checkpoint signature; exit 1 and name the first broken event."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.context import access_context
from audit.models import AccessEvent
from audit.verification import chain_verify


class Command(BaseCommand):
    help = "Verify the audit hash chain and its signed checkpoints; exits non-zero when the trail is broken."

    def add_arguments(self, parser):
        parser.add_argument("--no-seal", action="store_true",
                            help="do not chain queued events first (read-only check)")
        parser.add_argument("--witness", metavar="FILE",
                            help="reconcile with this witness instead of DPI_AUDIT_WITNESS_FILE (e.g. a copy of the "
                                 "syslog collector's log)")

    def handle(self, *args, **options):
        with access_context(channel="worker"):
            run = chain_verify(seal=not options["no_seal"],
                               witness_file=Path(options["witness"]) if options["witness"] else None)
        seconds = max((run.finished_at - run.started_at).total_seconds(), 1e-6)
        self.stdout.write(f"checked {run.events_checked} events (links {run.first_seq} to {run.last_seq}) and "
                          f"{run.checkpoints_checked} checkpoints in {seconds:.2f} s "
                          f"({run.events_checked / seconds:,.0f} events/s)")
        if getattr(run, "save_error", None):  # the dashboard would go on showing the previous run: say so, fail
            raise CommandError(f"the verification ran ({'intact' if run.ok else 'BROKEN: ' + run.message}) but could "
                               f"not be recorded for the DPO dashboard: {run.save_error}")
        if run.ok:
            self.stdout.write(self.style.SUCCESS("audit trail intact"))
            for note in run.result.notes:
                self.stdout.write(f"  note: {note}")
            return
        self.stdout.write(self.style.ERROR(f"AUDIT TRAIL BROKEN: {run.message}"))
        if run.first_broken_id is not None:
            self.stdout.write(f"first broken event: id={run.first_broken_id} (link {run.first_broken_seq})")
            rows = AccessEvent.objects.filter(id=run.first_broken_id)
            if run.first_broken_occurred_at is not None:  # an id may be used twice: the row named, not its twin
                rows = rows.filter(occurred_at=run.first_broken_occurred_at)
            event = rows.first()
            if event is not None:
                self.stdout.write(f"  as stored now: {event.occurred_at.isoformat()} {event.actor_username or '-'} "
                                  f"({event.actor_role or '-'}) {event.action} {event.outcome} "
                                  f"patient={event.patient_id} {event.resource_type} {event.resource_id}")
        for problem in sorted(run.result.breaks)[1:10]:
            self.stdout.write(f"  also: {problem.reason}")
        for note in run.result.notes:
            self.stdout.write(f"  note: {note}")
        if run.first_broken_id is not None:
            where = f"event {run.first_broken_id}"
        elif run.first_broken_seq is not None:
            where = f"link {run.first_broken_seq}"
        else:
            where = "its checkpoints"
        raise CommandError(f"audit trail broken at {where}: {run.message}")
