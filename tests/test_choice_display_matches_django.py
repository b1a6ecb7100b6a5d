"""``get_FOO_display()`` reads a per-field map built once (``dpi.core.choices``, issue #18): it must answer what
Django's own ``Model._get_FIELD_display`` answers, for every value of every field with choices, in each language,
including a value outside the choices and an empty one, and follow a change of language after the map was built."""

import pytest
from django.apps import apps
from django.db import models
from django.utils import translation

from dpi.core.choices import ChoiceDisplay

FIELDS = [
    (model, field)
    for model in apps.get_models()
    if issubclass(model, ChoiceDisplay)
    for field in model._meta.concrete_fields
    if field.choices
]


def test_the_clinical_and_patient_models_use_it():
    names = {model._meta.label for model, _ in FIELDS}
    assert {"dpi.ClinicalNote", "dpi.Observation", "dpi.Prescription", "patients.Patient",
            "patients.Encounter"} <= names


@pytest.mark.parametrize(("model", "field"), FIELDS, ids=[f"{m._meta.label}.{f.name}" for m, f in FIELDS])
@pytest.mark.parametrize("language", ["fr", "en"])
def test_display_is_djangos(model, field, language):
    values = [value for value, _ in field.flatchoices] + ["not-a-choice", "", None]
    with translation.override("en" if language == "fr" else "fr"):  # the map is built in the other language
        getattr(model(), f"get_{field.name}_display")
    with translation.override(language):
        for value in values:
            instance = model()
            setattr(instance, field.attname, value)
            ours = getattr(instance, f"get_{field.name}_display")()
            djangos = models.Model._get_FIELD_display(instance, field)
            assert ours == djangos and type(ours) is type(djangos), (value, ours, djangos)
