from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "dpi.api"
    label = "api"
    verbose_name = "REST and FHIR API"

    def ready(self) -> None:
        from dpi.api import signals  # noqa: F401
