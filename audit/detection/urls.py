"""URL routes of the detection area, mounted at /dpo/alerts/ (JSON API for the DPO)."""

from django.urls import path

import dpi.converters  # noqa: F401 - registers the <id:...> URL converter
from audit.detection import api

app_name = "detection"

urlpatterns = [
    path("", api.AlertListView.as_view(), name="alert-list"),
    path("dashboard/", api.DashboardView.as_view(), name="dashboard"),
    path("rules/", api.RulesView.as_view(), name="rules"),
    path("<id:pk>/", api.AlertDetailView.as_view(), name="alert-detail"),
    path("<id:pk>/review/", api.AlertReviewView.as_view(), name="alert-review"),
]
