"""/api/: REST endpoints, the OpenAPI 3 schema (/api/schema/) and its documentation page (/api/docs/)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import SimpleRouter

from dpi.api import views
from dpi.api.authentication import ApiTokenAuthentication, VerifiedSessionAuthentication

router = SimpleRouter()
router.register("patients", views.PatientViewSet, basename="api-patient")
router.register("encounters", views.EncounterViewSet, basename="api-encounter")
router.register("observations", views.ObservationViewSet, basename="api-observation")
router.register("documents", views.DocumentViewSet, basename="api-document")
router.register("care-team-memberships", views.CareTeamMembershipViewSet, basename="api-membership")
router.register("audit-events", views.AccessEventViewSet, basename="api-accessevent")

resource_patterns = router.urls

urlpatterns = [
    *resource_patterns,
    # The schema shows no patient data, but it maps the attack surface: API clients and signed-in users only.
    path(
        "schema/",
        SpectacularAPIView.as_view(
            patterns=[path("api/", include(resource_patterns))],
            authentication_classes=[ApiTokenAuthentication, VerifiedSessionAuthentication],
            permission_classes=[IsAuthenticated],
        ),
        name="api-schema",
    ),
    path("docs/", views.api_docs, name="api-docs"),
    re_path(r"^.*$", views.api_not_found),  # a JSON 404 for any other /api/ path, not an HTML page
]
