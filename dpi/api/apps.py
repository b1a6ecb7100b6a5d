from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "dpi.api"
    label = "api"
    verbose_name = "REST and FHIR API"
