from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access control"

    def ready(self) -> None:
        from access import signals  # noqa: F401
        from access.selectors import emergency_accesses_against_trail
        from access.services import appointment_practitioner_check
        from audit import verification
        from patients import services as patient_services

        if emergency_accesses_against_trail not in verification.record_checks:
            verification.record_checks.append(emergency_accesses_against_trail)

        if appointment_practitioner_check not in patient_services.appointment_validators:
            patient_services.appointment_validators.append(appointment_practitioner_check)
