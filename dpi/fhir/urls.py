"""/fhir/: FHIR R4 read and search, the CapabilityStatement at /fhir/metadata (see docs/api.md)."""

from django.urls import path, re_path

from dpi.fhir import views

urlpatterns = [
    path("metadata", views.MetadataView.as_view(), name="fhir-metadata"),
    re_path(r"^(?P<resource_type>[A-Za-z]+)/(?P<pk>[^/]+)/?$", views.ReadView.as_view(), name="fhir-read"),
    re_path(r"^(?P<resource_type>[A-Za-z]+)/?$", views.SearchView.as_view(), name="fhir-search"),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="fhir-not-found"),
]
