from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "dpi.compliance"
    label = "compliance"
    verbose_name = "Backups, maintenance, patient rights, breaches"
