from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access control"

    def ready(self) -> None:
        from access import signals  # noqa: F401
        from access.services import appointment_practitioner_check
        from patients import services as patient_services

        if appointment_practitioner_check not in patient_services.appointment_validators:
            patient_services.appointment_validators.append(appointment_practitioner_check)
