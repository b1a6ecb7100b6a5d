from django.apps import AppConfig


class DpiConfig(AppConfig):
    name = "dpi"
    verbose_name = "Clinical record"
