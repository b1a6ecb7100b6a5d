"""INS (Identifiant National de Santé): the NIR or NIA followed by its 2-digit control key.

key = 97 - (number mod 97), the 13-character number read as an integer; for Corsica (department 2A or 2B
in positions 6-7) the letters are replaced before computing: 2A -> 19, 2B -> 18.
An NIA (provisional number given by INSEE) starts with 7 or 8; an NIR starts with 1 or 2 (3/4 for some
foreign-born registrations).
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

_INS_RE = re.compile(r"^[1-478]\d{4}(?:\d{2}|2A|2B)\d{6}\d{2}$")


def normalise(value: str) -> str:
    return "".join(value.split()).upper()


def numeric_body(number13: str) -> int:
    body = number13.upper()
    if body[5:7] == "2A":
        body = body[:5] + "19" + body[7:]
    elif body[5:7] == "2B":
        body = body[:5] + "18" + body[7:]
    return int(body)


def compute_key(number13: str) -> int:
    return 97 - (numeric_body(number13) % 97)


def kind(ins: str) -> str:
    """``NIA`` for a provisional number (first digit 7 or 8), else ``NIR``."""
    return "NIA" if normalise(ins)[0] in "78" else "NIR"


def validate_ins(value: str) -> None:
    ins = normalise(value)
    if not _INS_RE.match(ins):
        raise ValidationError(
            _("The number must have 15 characters: 13 digits (2A or 2B for a birth in Corsica) and then the "
              "2-digit key."),
            code="ins_format",
        )
    if compute_key(ins[:13]) != int(ins[13:]):
        raise ValidationError(
            _("The key (last 2 digits) does not match the number: check what was typed against the Carte Vitale "
              "or the INSi result."),
            code="ins_key",
        )


def with_key(number13: str) -> str:
    return f"{number13}{compute_key(number13):02d}"
