from django.apps import AppConfig


class AuthnConfig(AppConfig):
    name = "access.authn"
    label = "authn"
    verbose_name = "Authentication"
