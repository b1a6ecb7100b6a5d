"""Manage API clients and their tokens (server administrators; every change is an access event).

manage.py api_client create lab-sil --scopes medical:view,medical:create,administrative:search
manage.py api_client token lab-sil [--scopes medical:create] [--days 90]
manage.py api_client revoke <prefix>
manage.py api_client list
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.context import access_context
from dpi.api import services
from dpi.api.models import ApiClient, ApiToken
from dpi.api.scopes import ALL_SCOPES

VALID_SCOPES = ", ".join(ALL_SCOPES)


def _scopes(raw: str | None) -> list[str]:
    return [s.strip() for s in (raw or "").split(",") if s.strip()]


class Command(BaseCommand):
    help = (
        "Create API clients (integration service accounts), issue and revoke their tokens. Scopes are "
        f"<category>:<action>; valid scopes: {VALID_SCOPES}."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="command", required=True)
        create = sub.add_parser("create", help="a client, its service account and a first token")
        create.add_argument("name")
        create.add_argument(
            "--scopes", required=True, help=f"comma-separated, e.g. medical:view,medical:create. Valid: {VALID_SCOPES}"
        )
        create.add_argument("--description", default="")
        create.add_argument("--on-behalf", action="store_true", help="accept X-On-Behalf-Of")
        create.add_argument("--rate", type=int, default=None, help="requests per minute (default: setting)")
        create.add_argument("--days", type=int, default=None, help="token lifetime")
        token = sub.add_parser("token", help="issue another token")
        token.add_argument("name")
        token.add_argument(
            "--scopes", default="", help=f"subset of the client's scopes (default: all). Valid: {VALID_SCOPES}"
        )
        token.add_argument("--days", type=int, default=None)
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix")
        revoke.add_argument("prefix")
        sub.add_parser("list", help="clients and their tokens (never the secrets)")

    def handle(self, *args, **options):
        with access_context(channel="worker"):
            try:
                getattr(self, f"_{options['command']}")(options)
            except ValidationError as exc:
                message = "; ".join(exc.messages)
                if "scope" in message.lower():
                    message += f". Valid scopes: {VALID_SCOPES}"
                raise CommandError(message) from exc

    def _create(self, options):
        client = services.api_client_create(
            actor=None,
            name=options["name"],
            scopes=_scopes(options["scopes"]),
            description=options["description"],
            may_act_on_behalf=options["on_behalf"],
            rate_per_minute=options["rate"],
        )
        _, raw = services.api_token_issue(actor=None, client=client, days=options["days"])
        self.stdout.write(f"client {client.name} (service account {client.user.username})")
        self.stdout.write(f"token (shown once): {raw}")

    def _token(self, options):
        client = self._client(options["name"])
        _, raw = services.api_token_issue(
            actor=None, client=client, scopes=_scopes(options["scopes"]), days=options["days"]
        )
        self.stdout.write(f"token (shown once): {raw}")

    def _revoke(self, options):
        token = ApiToken.objects.select_related("client").filter(prefix=options["prefix"]).first()
        if token is None:
            raise CommandError("no such token")
        services.api_token_revoke(actor=None, token=token)
        self.stdout.write(f"revoked {token.prefix} of {token.client.name}")

    def _list(self, options):
        for client in ApiClient.objects.prefetch_related("tokens").order_by("name"):
            flags = " on-behalf" if client.may_act_on_behalf else ""
            state = "" if client.is_active else " (disabled)"
            self.stdout.write(f"{client.name}{state}{flags}: {', '.join(client.scopes)}")
            for token in client.tokens.all():
                status = "revoked" if token.revoked_at else f"expires {token.expires_at:%Y-%m-%d}"
                self.stdout.write(f"  {token.prefix} {status} {', '.join(token.scopes) or '(all)'}")

    @staticmethod
    def _client(name: str) -> ApiClient:
        client = ApiClient.objects.filter(name=name).first()
        if client is None:
            raise CommandError(f"no client named {name!r}")
        return client
