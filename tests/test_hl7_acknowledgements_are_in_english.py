"""Acknowledgement texts are in English (as dpi/hl7 and docs/hl7.md), whatever the site's language."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dpi.hl7 import testing as t
from dpi.hl7.receiver import receive

pytestmark = pytest.mark.django_db


def _err_text(answer: str) -> str:
    return next(s for s in answer.split("\r") if s.startswith("ERR|")).split("|")[8]


def test_acknowledgement_texts_are_in_english():
    future = (timezone.localdate() + timedelta(days=3)).strftime("%Y%m%d")
    answer = receive(t.adt("A28", "8109", birth=future))
    assert t.ack_fields(answer)["err_location"] == "PID^1^7"
    assert _err_text(answer) == "The date of birth cannot be in the future."
