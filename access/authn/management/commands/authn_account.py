"""Service-desk operations on an account, traced: unlock, temporary password, compromise, second-factor reset,
enable again, link a Pro Santé Connect identity.

    manage.py authn_account unlock <username>
    manage.py authn_account temporary-password <username>    # prints a password to give the user in person
    manage.py authn_account compromised <username>           # same, and every session ends
    manage.py authn_account reset-second-factor <username>
    manage.py authn_account reactivate <username>
    manage.py authn_account link-oidc <username> --rpps 810000000000 [--issuer URL]
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from access.authn import services
from audit.context import access_context

ACTIONS = ("unlock", "temporary-password", "compromised", "reset-second-factor", "reactivate", "link-oidc")


class Command(BaseCommand):
    help = "Service-desk operations on an account (traced in the audit trail)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("username")
        parser.add_argument("--by", default="", help="user name of the administrator doing it (traced)")
        parser.add_argument("--rpps", default="")
        parser.add_argument("--subject", default="")
        parser.add_argument("--issuer", default="")

    def handle(self, *args, action, username, by, rpps, subject, issuer, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no account {username!r}")
        actor = User.objects.filter(username=by).first() if by else None
        with access_context(channel="admin"):
            if action == "unlock":
                done = services.account_unlock(user, by=actor)
                self.stdout.write("unlocked" if done else "was not locked")
            elif action in {"temporary-password", "compromised"}:
                reason = "compromise" if action == "compromised" else "reset"
                password = services.password_temporary_issue(user, by=actor, reason=reason)
                self.stdout.write(f"temporary password (give it in person; it must be changed at sign-in): {password}")
            elif action == "reset-second-factor":
                services.second_factor_reset(user, by=actor)
                self.stdout.write("second factor removed: the user enrols again at next sign-in")
            elif action == "reactivate":
                services.account_reactivate(user, by=actor)
                self.stdout.write("account enabled")
            elif action == "link-oidc":
                if not (rpps or subject):
                    raise CommandError("give --rpps or --subject")
                identity = services.oidc_identity_link(user, by=actor, issuer=issuer or settings.DPI_OIDC_ISSUER,
                                                       rpps=rpps, subject=subject)
                self.stdout.write(f"linked: {identity}")
