"""``manage.py maintenance_window``: approve, revoke and list maintenance windows (IT or security officer)."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dpi.compliance import selectors, services
from dpi.compliance.models import MaintenanceWindow


def _user(username: str):
    try:
        return get_user_model()._default_manager.get_by_natural_key(username)
    except get_user_model().DoesNotExist as exc:
        raise CommandError(f"no account {username!r}") from exc


def _when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not an ISO date-time: {value!r} (e.g. 2026-03-14T20:00)") from exc
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Approve, revoke or list maintenance windows (a provider signs in only inside an approved window)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        approve = sub.add_parser("approve")
        approve.add_argument("--provider", required=True, help="the maintenance account's username")
        approve.add_argument("--start", required=True, help="ISO date-time, local time if no offset")
        approve.add_argument("--end", required=True)
        approve.add_argument("--purpose", required=True)
        approve.add_argument("--approved-by", required=True, help="username of an it_admin or security_officer")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("window_id", type=int)
        revoke.add_argument("--by", required=True)
        sub.add_parser("list")

    def handle(self, *args, action: str, **opts):
        try:
            if action == "approve":
                w = services.maintenance_window_approve(
                    provider=_user(opts["provider"]), starts_at=_when(opts["start"]), ends_at=_when(opts["end"]),
                    purpose=opts["purpose"], approved_by=_user(opts["approved_by"]))
                self.stdout.write(self.style.SUCCESS(f"window #{w.pk} approved: {w}"))
            elif action == "revoke":
                w = MaintenanceWindow.objects.get(pk=opts["window_id"])
                services.maintenance_window_revoke(window=w, by=_user(opts["by"]))
                self.stdout.write(self.style.SUCCESS(f"window #{w.pk} revoked"))
            else:
                for w in selectors.maintenance_windows():
                    state = "ACTIVE" if w["active"] else ("revoked" if w["revoked_at"] else "")
                    self.stdout.write(f"#{w['id']:<5} {w['provider']:<20} {w['starts_at']:%Y-%m-%d %H:%M} -> "
                                      f"{w['ends_at']:%Y-%m-%d %H:%M} by {w['approved_by']:<15} {state:8} "
                                      f"{w['purpose']}")
        except MaintenanceWindow.DoesNotExist as exc:
            raise CommandError("no such window") from exc
        except (PermissionDenied, ValidationError) as exc:
            raise CommandError(str(exc)) from exc
