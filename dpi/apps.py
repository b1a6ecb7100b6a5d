from django.apps import AppConfig


class DpiConfig(AppConfig):
    name = "dpi"
    verbose_name = "Clinical record"

    def ready(self) -> None:
        from dpi import metrics

        metrics.connect_celery_signals()  # task failures counted for /metrics
