import json

from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from dpi import demo


class Command(BaseCommand):
    help = (
        "Print the demo accounts of this install (user name, role, password, TOTP secret), kept in "
        "var/secrets/demo_accounts.json. --count prints how many demo accounts can sign in; --disable disables "
        "them all (needed before `make run` listens beyond 127.0.0.1)."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--json", action="store_true", help="machine-readable output")
        group.add_argument("--count", action="store_true", help="number of active demo accounts")
        group.add_argument("--disable", action="store_true", help="disable every demo account")

    def handle(self, *args, json: bool = False, count: bool = False, disable: bool = False, **options):
        if count:
            self.stdout.write(str(demo.active_accounts().count()))
            return
        if disable:
            users = list(demo.active_accounts())
            for user in users:
                user.set_unusable_password()
                user.is_active = False
                user.save(update_fields=["password", "is_active"])
                TOTPDevice.objects.filter(user=user).delete()
            self.stdout.write(f"{len(users)} demo accounts disabled.")
            return
        try:
            demo.refuse_in_production("demo accounts")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        accounts = demo.load()
        active = set(demo.active_accounts().values_list("username", flat=True))
        accounts = {name: entry for name, entry in accounts.items() if name in active}
        if json:
            self.stdout.write(_dumps(accounts))
            return
        if not accounts:
            missing = sorted(active)
            raise CommandError(
                "no demo account secrets in " + str(demo.secrets_path())
                + (f" (accounts {', '.join(missing)} exist but were seeded by another install)" if missing else
                   " (seed the database first: `manage.py seed` or `make run`)")
            )
        self.stdout.write("Demo accounts of this install (synthetic data only):")
        for line in demo.describe(accounts):
            self.stdout.write(line)
        if User.objects.filter(username__startswith=demo.PREFIX, is_active=False).exists():
            self.stdout.write("(disabled demo accounts are not listed)")


def _dumps(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
