from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "audit.detection"
    label = "detection"
    verbose_name = "Detection of unusual access"
