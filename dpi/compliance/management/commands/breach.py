"""``manage.py breach``: the personal-data breach register and its 72-hour clock (DPO or security officer)."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dpi.compliance import selectors, services
from dpi.compliance.models import Breach


def _user(username: str):
    try:
        return get_user_model()._default_manager.get_by_natural_key(username)
    except get_user_model().DoesNotExist as exc:
        raise CommandError(f"no account {username!r}") from exc


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Record a personal-data breach, its notifications, and show the 72-hour clock."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        rec = sub.add_parser("record")
        rec.add_argument("--detected-at", required=True, help="when the hospital became aware (ISO date-time)")
        rec.add_argument("--description", required=True)
        rec.add_argument("--categories", default="", help="comma-separated: identity,medical,contact...")
        rec.add_argument("--people", type=int, required=True, help="approximate number of people")
        rec.add_argument("--risk", choices=Breach.Risk.values, default=Breach.Risk.RISK)
        rec.add_argument("--measures", default="")
        cnil = sub.add_parser("notify-cnil")
        cnil.add_argument("breach_id", type=int)
        cnil.add_argument("--at", default=None)
        cnil.add_argument("--reference", default="")
        cnil.add_argument("--late-reason", default="")
        people = sub.add_parser("notify-people")
        people.add_argument("breach_id", type=int)
        people.add_argument("--at", default=None)
        for p in (rec, cnil, people):
            p.add_argument("--by", required=True)
        sub.add_parser("list")

    def handle(self, *args, action: str, **o):
        try:
            if action == "record":
                b = services.breach_record(
                    by=_user(o["by"]), detected_at=_when(o["detected_at"]), description=o["description"],
                    categories=[c.strip() for c in o["categories"].split(",") if c.strip()],
                    approx_people=o["people"], risk=o["risk"], measures=o["measures"])
                clock = selectors.breach_clock(b)
                self.stdout.write(self.style.SUCCESS(f"breach #{b.pk} recorded; notify the CNIL before "
                                                     f"{timezone.localtime(clock.deadline):%Y-%m-%d %H:%M}"))
            elif action == "notify-cnil":
                services.breach_notify_cnil(breach=Breach.objects.get(pk=o["breach_id"]), by=_user(o["by"]),
                                            at=_when(o["at"]), reference=o["reference"], late_reason=o["late_reason"])
                self.stdout.write(self.style.SUCCESS("notification to the CNIL recorded"))
            elif action == "notify-people":
                services.breach_notify_people(breach=Breach.objects.get(pk=o["breach_id"]), by=_user(o["by"]),
                                              at=_when(o["at"]))
                self.stdout.write(self.style.SUCCESS("notification to the people recorded"))
            else:
                for r in selectors.breaches_dashboard():
                    if r["notified"]:
                        state = "notified" + (" LATE" if r["notified_late"] else "")
                    elif not r["must_notify"]:
                        state = "documented (risk unlikely)"
                    else:
                        state = "OVERDUE" if r["overdue"] else f"{r['remaining_hours']} h left"
                    self.stdout.write(f"#{r['id']:<4} {timezone.localtime(r['detected_at']):%Y-%m-%d %H:%M} "
                                      f"{r['risk']:<8} ~{r['approx_people']} people  {state}")
        except Breach.DoesNotExist as exc:
            raise CommandError("no such breach") from exc
        except (PermissionDenied, ValidationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
