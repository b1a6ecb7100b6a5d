"""URL map. Each area registers its routes in its own module, included here."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path


def health(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("healthz", health, name="health"),
    path("accounts/", include("access.urls")),  # login, second factor, password, logout (access.authn)
    path("audit/", include("audit.urls")),  # patient access report, verification status
    path("dpo/alerts/", include("audit.detection.urls")),  # alerts (detection)
    path("retention/", include("retention.urls")),
    path("compliance/", include("dpi.compliance.urls")),  # backups, maintenance, rights, breaches
    path("api/", include("dpi.api.urls")),  # REST API + /api/schema/
    path("fhir/", include("dpi.fhir.urls")),  # FHIR R4
    path("admin/", admin.site.urls),  # reception's admin-only view (dpi.web.admin_site replaces this)
    path("", include("dpi.web.urls")),  # clinicians' UI and DPO dashboard: "/" is the home page
]
