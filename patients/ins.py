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


def is_valid(value: str) -> bool:
    try:
        validate_ins(value)
    except ValidationError:
        return False
    return True


def with_key(number13: str) -> str:
    return f"{number13}{compute_key(number13):02d}"


# --- coherence of the NIR/NIA with the identity traits (Référentiel INS) ------------------------------------
# Layout of the 13 characters: sex (1), year (2), month (2), department (2, or 3 overseas), commune or
# country (3, or 2 overseas), order (3).
SEX_DIGITS = {"1": "M", "3": "M", "7": "M", "2": "F", "4": "F", "8": "F"}


def month_is_known(code: str) -> bool:
    """01-12 is a real month; 20-42 and 50-99 are INSEE pseudo-months for an unknown month of birth."""
    return 1 <= int(code) <= 12


def month_code_valid(code: str) -> bool:
    value = int(code)
    return 1 <= value <= 12 or 20 <= value <= 42 or value >= 50


def department(number: str) -> str:
    """The department part: 2 characters (01-95, 2A, 2B, 20, 99), 3 for overseas (971-976, 984-989)."""
    body = normalise(number)
    return body[5:8] if body[5:7] in {"97", "98"} else body[5:7]


def foreign_country(number: str) -> str:
    """For someone born abroad (department 99), the INSEE country code the NIR names: ``99`` + 3 digits."""
    body = normalise(number)
    return f"99{body[7:10]}" if body[5:7] == "99" else ""


def coherence_errors(ins: str, *, sex: str, birth_date, birthplace: str = "") -> dict[str, list[str]]:
    """What in the INS contradicts the traits, by field name (empty when coherent).

    Checked: the sex digit (1/3/7 man, 2/4/8 woman; not checked when the sex is unknown), the two digits of
    the birth year, the birth month. Documented exceptions: an INSEE pseudo-month (20-42, 50-99) means the
    month is unknown and is not compared; an NIA (7/8) is attributed on declared civil status, so its month
    is not compared; for someone born abroad (department 99) the month is not compared either (foreign civil
    status often lacks it) but the birthplace must be that country. Corsica: department 20 only for births
    before 1976, 2A/2B from 1976.

    The messages never quote the INS: it may be the one stored for the patient (an HL7 or API update of the traits
    is checked against it), and an error returned to a sender must not tell it what the record holds.
    """
    from django.utils.translation import gettext as _

    body = normalise(ins)[:13]
    errors: dict[str, list[str]] = {}
    is_nia = body[0] in "78"
    expected_sex = SEX_DIGITS.get(body[0])
    if sex in {"M", "F"} and expected_sex and expected_sex != sex:
        errors.setdefault("sex", []).append(
            _("The sex does not match the INS.")
        )
    if not month_code_valid(body[3:5]):
        errors.setdefault("ins", []).append(
            _("The month code of the INS does not exist.")
        )
    if birth_date is not None:
        if int(body[1:3]) != birth_date.year % 100:
            errors.setdefault("birth_date", []).append(
                _("The year of birth does not match the INS.")
            )
        born_abroad = body[5:7] == "99"
        if month_is_known(body[3:5]) and not is_nia and not born_abroad and int(body[3:5]) != birth_date.month:
            errors.setdefault("birth_date", []).append(
                _("The month of birth does not match the INS.")
            )
        if body[5:7] == "20" and birth_date.year >= 1976:
            errors.setdefault("ins", []).append(
                _("Department 20 (Corsica) is only used for births before 1976: since then 2A or 2B.")
            )
        if body[5:7] in {"2A", "2B"} and birth_date.year < 1976:
            errors.setdefault("ins", []).append(
                _("Corsica was department 20 before 1976: 2A/2B cannot appear for an earlier birth.")
            )
    if birthplace and not is_nia:
        country = foreign_country(body)
        if country and birthplace != country:
            errors.setdefault("birthplace_insee", []).append(
                _("The INS says born abroad: the birthplace must be the country code it names.")
            )
        if not country and birthplace.startswith("99"):
            errors.setdefault("birthplace_insee", []).append(
                _("The birthplace is a foreign country but the INS says born in France.")
            )
    return errors


# --- strict traits as the referential defines them ----------------------------------------------------------
_LIGATURES = {"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS"}
_TRAIT_RE = re.compile(r"^[A-Z]+(?:[ '\-][A-Z]+)*$")


def normalise_trait(value: str) -> str:
    """Upper case without diacritics, ligatures spelled out, single separators (space, hyphen, apostrophe)."""
    import unicodedata

    text = "".join(_LIGATURES.get(ch, ch) for ch in value.strip())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    text = text.replace("’", "'")
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s*([-'])\s*", r"\1", text)


def trait_valid(value: str) -> bool:
    return bool(_TRAIT_RE.match(value))
