"""URL routes of the compliance area (mounted at /compliance/)."""

from django.urls import path

from dpi.compliance import views

app_name = "compliance"

urlpatterns = [
    path("maintenance/log", views.maintenance_log, name="maintenance-log"),
    path("maintenance/status", views.maintenance_status, name="maintenance-status"),
    path("rights", views.rights_register, name="rights-register"),
    path("breaches", views.breaches, name="breaches"),
]
