"""URL map. Each area registers its routes in its own module, included here."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from dpi import health, metrics

# Errors raised before the view (e.g. loading the session while PostgreSQL is down) answer 503, not 500.
handler500 = "dpi.health.server_error"


class FaviconView(RedirectView):
    """/favicon.ico, which browsers and tools ask for whatever the page says: the static file (WhiteNoise)."""

    permanent = False  # the static name carries the file's hash: it changes with the icon

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("favicon.ico")


urlpatterns = [
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("healthz", health.healthz, name="health"),  # liveness: the process answers
    path("readyz", health.readyz, name="ready"),  # readiness: PostgreSQL, Redis, keyring
    path("metrics", metrics.metrics_view, name="metrics"),  # Prometheus; loopback or DPI_METRICS_TOKEN
    # The two API channels first: their calls are the most frequent, and Django tries the patterns in order.
    path("api/", include("dpi.api.urls")),  # REST API + /api/schema/
    path("fhir/", include("dpi.fhir.urls")),  # FHIR R4
    path("accounts/", include("access.urls")),  # login, second factor, password, logout (access.authn)
    path("audit/", include("audit.urls")),  # patient access report, verification status
    path("dpo/alerts/", include("audit.detection.urls")),  # alerts (detection)
    path("retention/", include("retention.urls")),
    path("compliance/", include("dpi.compliance.urls")),  # backups, maintenance, rights, breaches
    path("admin/", admin.site.urls),  # reception's admin-only view (dpi.web.admin_site replaces this)
    path("", include("dpi.web.urls")),  # clinicians' UI and DPO dashboard: "/" is the home page
]
