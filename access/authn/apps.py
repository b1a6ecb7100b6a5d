from django.apps import AppConfig


class AuthnConfig(AppConfig):
    name = "access.authn"
    label = "authn"
    verbose_name = "Authentication"

    def ready(self) -> None:
        from access.authn import checks, signals  # noqa: F401
