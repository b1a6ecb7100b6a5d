"""URL routes of the audit area (mounted at /audit/)."""

from django.urls import re_path

from audit import views

app_name = "audit"

urlpatterns = [
    re_path(r"^patients/(?P<patient_id>[0-9]{1,18})/access-report\.(?P<fmt>csv|pdf|json)$",
            views.patient_access_report, name="patient_access_report"),
    re_path(r"^verification/report\.(?P<fmt>pdf|json)$", views.verification_report, name="verification_report"),
]
