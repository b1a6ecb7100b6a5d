"""``get_FOO_display()`` without translating every label of the field on each call.

Django's ``Model._get_FIELD_display`` builds ``dict(make_hashable(field.flatchoices))`` on every call, and hashing
a translatable label translates it: a field with five choices costs five ``gettext`` calls each time one value is
displayed (the chart page displays about forty: 30 µs each, against 4 µs here; issue #18). ``ChoiceDisplay``
keeps, per field, the map of values to their (still lazy) labels, built once; only the label shown is translated,
in the language active when it is shown.
"""

from __future__ import annotations

from django.db import models
from django.utils.encoding import force_str

_LABELS = "_dpi_choice_labels"


def choice_labels(field: models.Field) -> dict:
    labels = field.__dict__.get(_LABELS)
    if labels is None:
        labels = {value: label for value, label in field.flatchoices}
        setattr(field, _LABELS, labels)
    return labels


class ChoiceDisplay(models.Model):
    """Abstract base: the models' ``get_FOO_display()`` read ``choice_labels`` (same answers as Django's)."""

    class Meta:
        abstract = True

    def _get_FIELD_display(self, field):
        value = getattr(self, field.attname)
        try:
            label = choice_labels(field).get(value, value)
        except TypeError:  # an unhashable value (a JSON field's list): Django's own way
            return super()._get_FIELD_display(field)
        return force_str(label, strings_only=True)
