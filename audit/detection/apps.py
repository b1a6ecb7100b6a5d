from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "audit.detection"
    label = "detection"
    verbose_name = "Detection of unusual access"

    def ready(self) -> None:
        from audit import verification
        from audit.detection.selectors import alerts_against_trail

        if alerts_against_trail not in verification.record_checks:
            verification.record_checks.append(alerts_against_trail)
