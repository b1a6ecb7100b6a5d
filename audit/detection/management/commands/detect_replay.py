"""``manage.py detect_replay --from 2025-01-01 --to 2025-01-31``: re-run the detector over past days."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from audit.context import access_context
from audit.detection import services


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = "Analyse the access events of a range of days (inclusive) and upsert alerts; safe to repeat."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="day_from", required=True, help="first day, YYYY-MM-DD (local time)")
        parser.add_argument("--to", dest="day_to", required=True, help="last day, YYYY-MM-DD (inclusive)")
        parser.add_argument("--chunk-days", type=int, default=services.REPLAY_CHUNK_DAYS,
                            help=f"days analysed per pass and transaction (default {services.REPLAY_CHUNK_DAYS})")

    def handle(self, *args, day_from: str, day_to: str, chunk_days: int, **options):
        start, end = _day(day_from), _day(day_to)
        if end < start:
            raise CommandError("--to is before --from")
        if chunk_days < 1:
            raise CommandError("--chunk-days must be at least 1")
        with access_context(channel="cli"):
            summary = services.detect_range(day_from=start, day_to=end, chunk_days=chunk_days)
        share = summary.explained_share
        self.stdout.write(
            f"{summary.events} events analysed in {summary.seconds:.1f} s; "
            f"explained: {'n/a' if share is None else f'{share:.1%}'} of {summary.patient_events} patient accesses; "
            f"alerts: {len(summary.created)} created, {len(summary.updated)} updated"
        )
