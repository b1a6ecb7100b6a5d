from django.apps import AppConfig


class Hl7Config(AppConfig):
    name = "dpi.hl7"
    label = "hl7"
    verbose_name = "HL7 v2"
    default_auto_field = "django.db.models.BigAutoField"
