"""``manage.py retention_run``: the daily retention run, by hand, with a progress bar."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import access_context
from retention import services


class Command(BaseCommand):
    help = "Archive due records, finish approved restores, dispose of decided archives (see docs/retention.md)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="select at most this many new patients")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, cron)")

    def handle(self, *args, limit: int | None, no_progress: bool, **options):
        if limit is not None and limit < 1:
            raise CommandError("--limit must be >= 1")
        show = not no_progress
        last_phase = [""]

        def progress(phase: str, done: int, total: int) -> None:
            if not show:
                return
            width = 40
            filled = width if not total else int(width * done / total)
            if last_phase[0] and last_phase[0] != phase:
                self.stdout.write("")
            last_phase[0] = phase
            self.stdout.write(f"\r{phase:8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
            self.stdout.flush()

        with access_context(channel="worker"):
            run = services.retention_run(limit=limit, progress=progress)
        if show and last_phase[0]:
            self.stdout.write("")
        if run.status == run.Status.SKIPPED:
            self.stdout.write(self.style.WARNING("Another retention run is active: nothing done."))
            return
        summary = (f"run {run.pk}: due {run.due}, archived {run.archived}, restored {run.restored}, "
                   f"destroyed {run.destroyed}, anonymised {run.anonymised}, care sheet copies purged "
                   f"{run.care_sheets_purged}, trace partitions dropped {run.trace_partitions_dropped}, "
                   f"errors {run.errors}")
        if run.errors:
            raise CommandError(summary + " (see the jobs' last_error)", returncode=2)
        self.stdout.write(self.style.SUCCESS(summary))
