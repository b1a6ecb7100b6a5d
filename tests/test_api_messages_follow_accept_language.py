"""The REST API answers in one language: English by default (as FHIR, HL7 and DRF itself), French for a caller
sending ``Accept-Language: fr``: every message then, DRF's, the services' and the API's own. The browser UI stays
French by default, FHIR English whatever the caller asks.

Each case is a refusal of a different layer: DRF's fields, the API's checks, the services' and models' rules
(INS, stays, results), the gate, authentication, scopes, preconditions, idempotency, pagination, routing."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dpi import services as clinical_services
from dpi.api.scopes import scope
from dpi.api.testing import bearer, make_api_client, patch_json, post_json
from patients.ins import with_key
from tests.personas import make_patient

pytestmark = pytest.mark.django_db

# French-only marks: accented letters, French quotes and apostrophe, elisions (d'un, l'API, n'est), and short
# words English does not use.
_FRENCH_LETTERS = re.compile(r"[éèêëàâçùûîïôœ«»’]|\b(?:d|l|n|qu|c|s)'[aeiouyhé]", re.IGNORECASE)
_FRENCH_WORDS = re.compile(
    r"\b(le|la|les|du|des|un|une|est|sont|pas|non|ce|cet|cette|ces|aucun|aucune|doit|peut|plus|dans|pour|avec|"
    r"inconnu|inconnue|introuvable|requis|champ|jeton|séjour|patient introuvable|octets|données)\b",
    re.IGNORECASE,
)


def _is_french(text: str) -> bool:
    return bool(_FRENCH_LETTERS.search(text) or _FRENCH_WORDS.search(text))


def _messages(body) -> list[str]:
    """Every message of an error answer: ``detail`` and each field's list (nested ones included)."""
    if isinstance(body, str):
        return [body]
    if isinstance(body, list):
        return [m for item in body for m in _messages(item)]
    if isinstance(body, dict):
        return [m for key, value in body.items() if key != "code" for m in _messages(value)]
    return []


IDENTITY = {"birth_name": "DUPONT", "first_name": "Léa", "sex": "F", "birth_date": "1990-05-17"}


def _cases(cast) -> list[tuple[str, int, set[str], Callable]]:
    """(name, status, keys the body must name, call(client, headers)) for one refusal per layer."""
    _, token = make_api_client()
    _, narrow = make_api_client(scopes=[scope("administrative", "view")])
    other = make_patient()
    obs = clinical_services.observation_record(patient=cast.patient, author=cast.physician, label="Potassium",
                                               value="3.1", unit="mmol/L", effective_at=timezone.now())
    good_ins = with_key("2900575123456")
    bad_ins = good_ins[:13] + f"{(int(good_ins[13:]) + 3) % 100:02d}"
    patient_url = f"/api/patients/{cast.patient.pk}/"
    result = {"patient": cast.patient.pk, "label": "CRP", "value": "3", "effective_at": "2025-03-01T08:00:00Z"}

    def auth(headers, **extra):
        return bearer(token, **headers, **extra)

    def etag(c, headers):
        return c.get(patient_url, headers=auth(headers))["ETag"]

    return [
        ("DRF fields on create", 400, {"first_name", "sex", "birth_date", "email"},
         lambda c, h: post_json(c, "/api/patients/", {"birth_name": "X", "sex": "Q", "birth_date": "1990-02-30",
                                                      "email": "nope"}, **auth(h))),
        ("INS key", 400, {"ins"},
         lambda c, h: post_json(c, "/api/patients/", {**IDENTITY, "ins": bad_ins}, **auth(h))),
        ("birth date in the future (model)", 400, {"birth_date"},
         lambda c, h: post_json(c, "/api/patients/", {**IDENTITY, "birth_date": "2090-01-01"}, **auth(h))),
        ("year out of range", 400, {"start"},
         lambda c, h: post_json(c, "/api/encounters/", {"patient": other.pk, "unit": cast.cardio.code,
                                                        "start": "1850-01-01T00:00:00Z"}, **auth(h))),
        ("PATCH without If-Match", 428, {"detail"},
         lambda c, h: patch_json(c, patient_url, {"city": "Rennes"}, **auth(h))),
        ("PATCH with If-Match *", 428, {"detail"},
         lambda c, h: patch_json(c, patient_url, {"city": "Rennes"}, **auth(h, **{"If-Match": "*"}))),
        ("PATCH with a stale ETag", 412, {"detail"},
         lambda c, h: patch_json(c, patient_url, {"city": "Rennes"}, **auth(h, **{"If-Match": '"patient-1-v0"'}))),
        ("PATCH of confidentiality", 400, {"confidentiality"},
         lambda c, h: patch_json(c, patient_url, {"confidentiality": "normal"}, **auth(h))),
        ("PATCH bad field", 400, {"birth_date", "sex"},
         lambda c, h: patch_json(c, patient_url, {"birth_date": "yesterday", "sex": "Z"},
                                 **auth(h, **{"If-Match": etag(c, h)}))),
        ("search without a parameter", 400, {"non_field_errors"},
         lambda c, h: c.get("/api/patients/", headers=auth(h))),
        ("search with an empty parameter", 400, {"family"},
         lambda c, h: c.get("/api/patients/?family=", headers=auth(h))),
        ("page size", 400, {"page_size"},
         lambda c, h: c.get(f"/api/encounters/?patient={cast.patient.pk}&page_size=0", headers=auth(h))),
        ("unknown patient id", 404, {"detail"},
         lambda c, h: c.get("/api/patients/987654321/", headers=auth(h))),
        ("unknown route", 404, {"detail"},
         lambda c, h: c.get("/api/nothing-here/", headers=auth(h))),
        ("no credentials", 401, {"detail"},
         lambda c, h: c.get(patient_url, headers=h)),
        ("bad token", 401, {"detail"},
         lambda c, h: c.get(patient_url, headers=bearer("dpi_nothing_wrong", **h))),
        ("missing scope", 403, {"detail"},
         lambda c, h: c.get(f"/api/observations/?patient={cast.patient.pk}", headers=bearer(narrow, **h))),
        ("not the DPO", 403, {"detail"},
         lambda c, h: c.get("/api/audit-events/", headers=auth(h))),
        ("method not allowed", 405, {"detail"},
         lambda c, h: c.delete(patient_url, headers=auth(h))),
        ("admission to an unknown unit (service)", 400, {"unit"},
         lambda c, h: post_json(c, "/api/encounters/", {"patient": cast.patient.pk, "unit": "no-such-unit"},
                                **auth(h))),
        ("second stay in progress (service)", 400, {"patient"},
         lambda c, h: post_json(c, "/api/encounters/", {"patient": cast.patient.pk, "unit": cast.cardio.code},
                                **auth(h))),
        ("create naming an unknown patient", 400, {"patient"},
         lambda c, h: post_json(c, "/api/observations/", {**result, "patient": 987654321}, **auth(h))),
        ("result: LOINC and value", 400, {"loinc"},
         lambda c, h: post_json(c, "/api/observations/", {**result, "loinc": "2345-8"}, **auth(h))),
        ("result: no value", 400, {"value"},
         lambda c, h: post_json(c, "/api/observations/", {**result, "value": None}, **auth(h))),
        ("result: reference range (model)", 400, {"reference_high"},
         lambda c, h: post_json(c, "/api/observations/", {**result, "reference_low": "5", "reference_high": "1"},
                                **auth(h))),
        ("result: in the future (model)", 400, {"effective_at"},
         lambda c, h: post_json(c, "/api/observations/",
                                {**result, "effective_at": (timezone.now() + timedelta(days=2)).isoformat()},
                                **auth(h))),
        ("result: another patient's stay", 400, {"encounter"},
         lambda c, h: post_json(c, "/api/observations/", {**result, "patient": other.pk,
                                                          "encounter": cast.encounter.pk}, **auth(h))),
        ("result correction without a reason", 400, {"reason"},
         lambda c, h: patch_json(c, f"/api/observations/{obs.pk}/", {"value": "4", "reason": " "}, **auth(h))),
        ("document of an unsupported type", 400, {"file"},
         lambda c, h: c.post("/api/documents/", {"patient": cast.patient.pk, "title": "CR",
                                                 "file": _upload("a.gif", b"GIF89a", "image/gif")},
                             headers=auth(h))),
        ("membership of an unknown user", 400, {"user"},
         lambda c, h: post_json(c, "/api/care-team-memberships/",
                                {"patient": cast.patient.pk, "user": "nobody.here", "reason": "avis",
                                 "end": (timezone.now() + timedelta(days=3)).isoformat()}, **auth(h))),
        ("bad Idempotency-Key", 400, {"Idempotency-Key"},
         lambda c, h: post_json(c, "/api/observations/", result, **auth(h, **{"Idempotency-Key": "é" * 3}))),
        ("bad JSON", 400, {"detail"},
         lambda c, h: c.post("/api/observations/", "{not json", content_type="application/json",
                             headers=auth(h))),
    ]


def _upload(name: str, content: bytes, media_type: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=media_type)


def _answers(cast, headers: dict[str, str]) -> dict[str, tuple[list[str], str]]:
    answers = {}
    for name, status, keys, call in _cases(cast):
        response = call(Client(), headers)
        assert response.status_code == status, (name, response.status_code, response.content[:300])
        body = response.json()
        assert keys <= set(body), (name, body)
        messages = _messages(body)
        assert messages and all(m.strip() for m in messages), (name, body)
        answers[name] = (messages, response.get("Content-Language", ""))
    return answers


@pytest.mark.parametrize("accept", [None, "en", "de", "*", "en-GB,en;q=0.9,fr;q=0.5"])
def test_without_asking_for_french_every_message_is_english(cast, accept):
    headers = {} if accept is None else {"Accept-Language": accept}
    for name, (messages, language) in _answers(cast, headers).items():
        french = [m for m in messages if _is_french(m)]
        assert not french, f"{name}: {french}"
        assert language == "en", name


@pytest.mark.parametrize("accept", ["fr", "fr-FR,fr;q=0.9,en;q=0.8", "de, fr;q=0.5"])
def test_asking_for_french_gives_every_message_in_french(cast, accept):
    english = _answers(cast, {})
    not_french = {}
    for name, (messages, language) in _answers(cast, {"Accept-Language": accept}).items():
        assert language == "fr", name
        if wrong := [m for m in messages if not _is_french(m) or m in english[name][0]]:
            not_french[name] = wrong
    assert not not_french


def test_the_browsers_language_cookie_does_not_change_the_api(cast, client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    response = client.get(f"/api/patients/{cast.patient.pk}/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."


def test_the_ui_stays_french_and_fhir_english(cast, client):
    page = client.get("/accounts/login/")
    assert page.get("Content-Language") == "fr"
    _, token = make_api_client()
    outcome = client.get("/fhir/Patient/987654321", headers=bearer(token, **{"Accept-Language": "fr"}))
    assert outcome.status_code == 404
    assert not _is_french(outcome.json()["issue"][0]["diagnostics"])
    # Code shared with the REST API (authentication, methods) keeps FHIR's English too.
    for response in (client.get("/fhir/Patient/1", headers=bearer("dpi_nothing_wrong", **{"Accept-Language": "fr"})),
                     client.delete(f"/fhir/Patient/{cast.patient.pk}",
                                   headers=bearer(token, **{"Accept-Language": "fr"}))):
        assert response.status_code in (401, 405)
        assert not _is_french(response.json()["issue"][0]["diagnostics"]), response.json()
