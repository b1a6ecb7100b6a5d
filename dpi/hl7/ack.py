"""Acknowledgements (HL7 v2.5 original mode): MSA-1 AA / AE / AR, MSA-2 the message control id, and an ERR
segment naming the field at fault (ERR-2 location, ERR-3 code of table 0357, ERR-4 severity, ERR-8 text)."""

from __future__ import annotations

import itertools
import re

from django.conf import settings
from django.utils import timezone

from dpi.hl7.message import Header, Hl7Error

_counter = itertools.count(1)


def _escape(value: str) -> str:
    """HL7 escapes for the default encoding characters, and no segment break inside a value."""
    out = value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
    return re.sub(r"[\r\n]+", " ", out.replace("~", "\\R\\"))


def error_location(location: str) -> str:
    """``PID-7`` -> ``PID^1^7`` (ERL: segment, sequence, field); ``OBX`` -> ``OBX``; ``OBX[2]-5`` -> ``OBX^2^5``."""
    match = re.fullmatch(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?", location)
    if not match:
        return ""
    segment, seq, fld = match.groups()
    return "^".join(p for p in (segment, seq or "1", fld) if p) if fld or seq else segment


def build(header: Header | None, code: str, error: Hl7Error | None = None) -> str:
    header = header or Header()
    now = timezone.localtime().strftime("%Y%m%d%H%M%S")
    ack_id = f"ACK{timezone.now().strftime('%Y%m%d%H%M%S%f')}{next(_counter)}"
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            _escape(settings.DPI_HL7_APPLICATION),
            _escape(settings.DPI_HL7_FACILITY),
            _escape(header.sending_application),
            _escape(header.sending_facility),
            now,
            "",
            f"ACK^{_escape(header.event)}^ACK" if header.event else "ACK",
            ack_id,
            header.processing_id if header.processing_id in ("P", "T", "D") else "P",
            "2.5",
        ]
    )
    text = error.text if error else ""
    segments = [msh, f"MSA|{code}|{_escape(header.control_id)}" + (f"|{_escape(text[:80])}" if text else "")]
    if error is not None:
        condition = f"{error.condition[0]}^{_escape(error.condition[1])}^HL70357"
        segments.append(f"ERR||{error_location(error.location)}|{condition}|E||||{_escape(text[:250])}")
    return "\r".join(segments) + "\r"
