"""URL routes of the detection area, mounted at /dpo/alerts/ (JSON API for the DPO)."""

from django.urls import path

from audit.detection import api

app_name = "detection"

urlpatterns = [
    path("", api.AlertListView.as_view(), name="alert-list"),
    path("dashboard/", api.DashboardView.as_view(), name="dashboard"),
    path("rules/", api.RulesView.as_view(), name="rules"),
    path("<int:pk>/", api.AlertDetailView.as_view(), name="alert-detail"),
    path("<int:pk>/review/", api.AlertReviewView.as_view(), name="alert-review"),
]
