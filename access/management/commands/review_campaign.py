"""``manage.py review_campaign``: start the yearly authorization review, show its progress, remind reviewers.

    manage.py review_campaign start --by dpo.username [--name "Revue 2026"] [--due-days 30]
    manage.py review_campaign status
    manage.py review_campaign remind
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from access import services
from access.models import AccessReviewCampaign
from audit.context import access_context


class Command(BaseCommand):
    help = "Start the yearly authorization review (every account holding a right, every membership), show it, remind."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="step", required=True)
        start = sub.add_parser("start", help="open a campaign covering every right held today")
        start.add_argument("--by", required=True, help="username of the DPO or security officer starting it")
        start.add_argument("--name", default="", help='default: "Revue annuelle des habilitations <year>"')
        start.add_argument("--due-days", type=int, default=30, help="days until the due date (default 30)")
        sub.add_parser("status", help="progress of the open campaigns and rights not covered")
        sub.add_parser("remind", help="e-mail the reviewers what is still pending")

    def handle(self, *args, step: str, **options):
        with access_context(channel="cli"):
            getattr(self, f"_{step}")(**options)

    def _start(self, *, by: str, name: str, due_days: int, **_options):
        try:
            actor = get_user_model().objects.get(username=by, is_active=True)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"--by: no active account {by!r}") from exc
        name = name or f"Revue annuelle des habilitations {timezone.localdate().year}"
        try:
            campaign = services.review_campaign_start(
                actor=actor, name=name, due_at=timezone.now() + timedelta(days=due_days))
        except PermissionDenied as exc:
            raise CommandError(f"--by: {exc}") from exc
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(self.style.SUCCESS(
            f"campaign #{campaign.pk} {campaign.name!r}: {campaign.items.count()} rights to review"))

    def _status(self, **_options):
        campaigns = AccessReviewCampaign.objects.filter(closed_at__isnull=True).order_by("-started_at")
        if not campaigns:
            self.stdout.write("no open campaign")
        for c in campaigns:
            p = services.review_progress(c)
            self.stdout.write(f"#{c.pk} {c.name}: {p['total'] - p['pending']}/{p['total']} reviewed "
                              f"({p['confirmed']} confirmed, {p['revoked']} revoked), due {c.due_at:%Y-%m-%d}")
            for line in services.review_missing_subjects(c):
                self.stdout.write(f"  not covered: {line}")

    def _remind(self, **_options):
        n = sum(services.review_remind(campaign=c)
                for c in AccessReviewCampaign.objects.filter(closed_at__isnull=True))
        self.stdout.write(f"{n} pending decisions reminded")
