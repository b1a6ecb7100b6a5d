"""Documents: uploaded (type checked against the content), stored encrypted, downloaded unchanged."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from dpi.api.testing import bearer, make_api_client, request_id
from dpi.models import Document
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n% synthetic discharge letter\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _upload(client, token, cast, name, content, media_type, **extra):
    data = {
        "patient": cast.patient.pk,
        "title": "Compte rendu",
        "file": SimpleUploadedFile(name, content, media_type),
        **extra,
    }
    return client.post("/api/documents/", data=data, headers=bearer(token))


def test_an_uploaded_pdf_comes_back_unchanged_and_is_stored_encrypted(cast, client):
    _, token = make_api_client()
    created = _upload(client, token, cast, "cr.pdf", PDF, "application/pdf", encounter=cast.encounter.pk)
    assert created.status_code == 201
    doc = created.json()
    assert (doc["media_type"], doc["size"], doc["encounter"]) == ("application/pdf", len(PDF), cast.encounter.pk)
    rid = request_id()
    download = client.get(doc["content_url"], headers=bearer(token, **{"X-Request-ID": rid}))
    assert download.status_code == 200
    assert download.content == PDF
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == f'attachment; filename="document-{doc["id"]}.pdf"'
    assert download["Cache-Control"].startswith("no-store")
    with connection.cursor() as cur:
        cur.execute("SELECT content FROM dpi_document WHERE id = %s", [doc["id"]])
        assert b"synthetic discharge" not in bytes(cur.fetchone()[0])
    [event] = audit_events(request_id=rid)
    assert (event.resource_type, event.resource_id, event.details["download"]) == ("document", str(doc["id"]), True)


def test_a_file_whose_content_is_not_its_declared_type_is_refused(cast, client):
    _, token = make_api_client()
    response = _upload(client, token, cast, "cr.pdf", b"\x89PNG\r\n\x1a\nnot a pdf", "application/pdf")
    assert response.status_code == 400 and "file" in response.json()
    assert not Document.objects.exists()


def test_an_unsupported_type_is_refused(cast, client):
    _, token = make_api_client()
    response = _upload(client, token, cast, "x.html", b"<script>alert(1)</script>", "text/html")
    assert response.status_code == 400 and "file" in response.json()
    assert not Document.objects.exists()


def test_documents_are_listed_without_their_content(cast, client):
    _, token = make_api_client()
    _upload(client, token, cast, "a.txt", "Synthèse".encode(), "text/plain")
    listing = client.get(f"/api/documents/?patient={cast.patient.pk}", headers=bearer(token)).json()
    assert [d["title"] for d in listing["results"]] == ["Compte rendu"]
    assert "content" not in listing["results"][0]
