"""URL routes of this area (mounted at /retention/)."""

from django.urls import path

import dpi.converters  # noqa: F401 - registers the <id:...> URL converter
from retention import views

app_name = "retention"

urlpatterns = [
    path("status", views.status, name="status"),
    path("archives/find", views.archive_find, name="archive-find"),
    path("restore-requests", views.restore_request_create, name="restore-request-create"),
    path("restore-requests/<id:pk>/approve", views.restore_request_approve, name="restore-request-approve"),
    path("restore-requests/<id:pk>/reject", views.restore_request_reject, name="restore-request-reject"),
    path("legal-holds", views.legal_hold_place, name="legal-hold-place"),
    path("legal-holds/<id:pk>/lift", views.legal_hold_lift, name="legal-hold-lift"),
    path("disposal-decisions", views.disposal_decision_record, name="disposal-decision-record"),
]
