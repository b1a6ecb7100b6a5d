"""Reading an HL7 v2 message: hl7apy's reference tables check the version and every segment name; this module
splits the fields with the message's own encoding characters and reads the fields dpi uses into plain values,
naming the field (``PID-7``) whenever one is missing or malformed, so the acknowledgement can say which.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone as django_timezone
from hl7apy import check_version
from hl7apy.core import Segment as Hl7apySegment
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from dpi.core import dates

# HL7 table 0357 (message error condition codes).
SEGMENT_SEQUENCE_ERROR = ("100", "Segment sequence error")
REQUIRED_FIELD_MISSING = ("101", "Required field missing")
DATA_TYPE_ERROR = ("102", "Data type error")
TABLE_VALUE_NOT_FOUND = ("103", "Table value not found")
UNSUPPORTED_MESSAGE_TYPE = ("200", "Unsupported message type")
UNSUPPORTED_EVENT_CODE = ("201", "Unsupported event code")
UNSUPPORTED_PROCESSING_ID = ("202", "Unsupported processing id")
UNSUPPORTED_VERSION_ID = ("203", "Unsupported version id")
UNKNOWN_KEY_IDENTIFIER = ("204", "Unknown key identifier")
DUPLICATE_KEY_IDENTIFIER = ("205", "Duplicate key identifier")
APPLICATION_RECORD_LOCKED = ("206", "Application record locked")
APPLICATION_INTERNAL_ERROR = ("207", "Application internal error")

ADT_EVENTS = frozenset(
    {
        "A01",
        "A02",
        "A03",
        "A04",
        "A05",
        "A06",
        "A07",
        "A08",
        "A11",
        "A12",
        "A13",
        "A21",
        "A22",
        "A28",
        "A31",
        "A38",
        "A40",
    }
)
ORU_EVENTS = frozenset({"R01"})
# How far ahead of dpi's clock a sender's MSH-7 may be (clocks drift; NTP keeps them within seconds). Beyond,
# the time is wrong, and would make later identity updates look older than this one (they are ordered by MSH-7).
MAX_CLOCK_SKEW = timedelta(hours=1)


class Hl7Error(Exception):
    """A message that cannot be applied. ``reject`` (AR) for the message itself (header, type, syntax), else
    AE for its content; ``location`` is the field, e.g. ``PID-7`` (or a segment, e.g. ``OBX``)."""

    def __init__(self, location: str, condition: tuple[str, str], text: str, *, reject: bool = False):
        super().__init__(f"{location}: {text}")
        self.location = location
        self.condition = condition
        self.text = text
        self.reject = reject


@dataclass
class Segment:
    name: str
    fields: list[str]  # fields[n] is field n (for MSH, fields[1] is the field separator)
    index: int  # 1-based occurrence of this segment name in the message

    def get(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""


@dataclass
class Header:
    """What MSH says, readable even when the rest of the message is not."""

    control_id: str = ""
    message_type: str = ""  # ADT^A01
    code: str = ""  # ADT
    event: str = ""  # A01
    sending_application: str = ""
    sending_facility: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    charset: str = ""
    encoding: str = "^~\\&"
    timestamp: str = ""  # MSH-7 as written
    time: datetime | None = None  # MSH-7 read, once check_header has passed


@dataclass
class Message:
    header: Header
    segments: list[Segment] = field(default_factory=list)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        found = self.all(name)
        return found[0] if found else None

    def require(self, name: str) -> Segment:
        segment = self.first(name)
        if segment is None:
            raise Hl7Error(name, SEGMENT_SEQUENCE_ERROR, f"Segment {name} is required for {self.header.message_type}.")
        return segment


def split_segments(text: str) -> list[str]:
    return [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]


def read_header(text: str) -> Header:
    """MSH alone, by hand (so that a message hl7apy refuses still gets an acknowledgement naming the field)."""
    lines = split_segments(text)
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise Hl7Error("MSH", SEGMENT_SEQUENCE_ERROR, "The message does not start with an MSH segment.", reject=True)
    sep = lines[0][3]
    fields = ["MSH", sep, *lines[0][4:].split(sep)]  # fields[n] is MSH-n
    header = Header(encoding=fields[2] if len(fields) > 2 else "^~\\&")
    comp = header.encoding[0] if header.encoding else "^"

    def f(n: int) -> str:
        return fields[n] if n < len(fields) else ""

    header.sending_application = f(3).split(comp)[0]
    header.sending_facility = f(4).split(comp)[0]
    header.control_id = f(10).strip()
    kind = f(9).split(comp)
    header.code = kind[0].strip().upper()
    header.event = (kind[1] if len(kind) > 1 else "").strip().upper()
    header.message_type = f"{header.code}^{header.event}" if header.event else header.code
    header.processing_id = f(11).split(comp)[0] or "P"
    header.version = f(12).split(comp)[0]
    header.charset = f(18)
    header.timestamp = f(7).split(comp)[0]
    if len(header.control_id) > 199:
        raise Hl7Error("MSH-10", DATA_TYPE_ERROR, "The message control id is longer than 199 characters.", reject=True)
    return header


def check_header(header: Header) -> None:
    if not header.control_id:
        raise Hl7Error("MSH-10", REQUIRED_FIELD_MISSING, "The message control id is missing.", reject=True)
    if header.code not in ("ADT", "ORU"):
        raise Hl7Error(
            "MSH-9",
            UNSUPPORTED_MESSAGE_TYPE,
            f"Message type {header.code or '(none)'} is not accepted (ADT and ORU are).",
            reject=True,
        )
    if (header.code == "ADT" and header.event not in ADT_EVENTS) or (
        header.code == "ORU" and header.event not in ORU_EVENTS
    ):
        raise Hl7Error("MSH-9", UNSUPPORTED_EVENT_CODE, f"Event {header.message_type} is not accepted.", reject=True)
    if not header.version.startswith("2."):
        raise Hl7Error(
            "MSH-12", UNSUPPORTED_VERSION_ID, f"Version {header.version or '(none)'} is not HL7 v2.", reject=True
        )
    if header.processing_id not in ("P", "T", "D"):
        raise Hl7Error("MSH-11", UNSUPPORTED_PROCESSING_ID, "Processing id must be P, T or D.", reject=True)
    try:  # MSH-7 is required by HL7 v2, and orders identity updates
        header.time = parse_ts(header.timestamp, "MSH-7", required=True)
    except Hl7Error as error:
        raise Hl7Error(error.location, error.condition, error.text, reject=True) from error
    if header.time is not None and header.time > django_timezone.now() + MAX_CLOCK_SKEW:
        raise Hl7Error("MSH-7", DATA_TYPE_ERROR, "MSH-7 is more than an hour ahead of the receiver's clock.",
                       reject=True)


@functools.cache
def _segment_known(name: str, version: str) -> bool:
    """hl7apy's reference tables for this version know the segment (Z segments are site-defined)."""
    if name.startswith("Z"):
        return True
    try:
        Hl7apySegment(name, version=version)
    except HL7apyException:
        return False
    return True


def _hl7apy_version(version: str) -> str:
    """The hl7apy reference version for a message version (2.5, 2.5.1...); refused when hl7apy has none."""
    try:
        check_version(version)
    except HL7apyException as exc:
        raise Hl7Error(
            "MSH-12", UNSUPPORTED_VERSION_ID, f"Version {version[:10]} is not supported.", reject=True
        ) from exc
    return version


def parse(text: str) -> Message:
    """The whole message: the header checked, every segment name checked against hl7apy's HL7 v2 reference
    tables for the message's version, fields split by the message's own encoding characters. Raises Hl7Error
    naming the segment or field at fault.

    hl7apy's full element tree (``parse_message``) costs about 45 ms a message here and dpi reads fields by
    position anyway; ``parse_tree`` builds it when a caller needs it.
    """
    header = read_header(text)
    check_header(header)
    version = _hl7apy_version(header.version)
    lines = split_segments(text)
    sep = lines[0][3]
    segments: list[Segment] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, start=1):
        name = line[:3]
        if n > 1 and (not re.fullmatch(r"[A-Z][A-Z0-9]{2}", name) or (len(line) > 3 and line[3] != sep)):
            raise Hl7Error(f"segment {n}", SEGMENT_SEQUENCE_ERROR, f"Unreadable segment {n}.", reject=True)
        if n > 1 and name == "MSH":
            raise Hl7Error(
                "MSH", SEGMENT_SEQUENCE_ERROR, "A second MSH segment (batches are not accepted).", reject=True
            )
        if not _segment_known(name, version):
            raise Hl7Error(name, SEGMENT_SEQUENCE_ERROR, f"Unknown segment {name} for HL7 {version}.", reject=True)
        seen[name] = seen.get(name, 0) + 1
        fields = ["MSH", sep, *line[4:].split(sep)] if n == 1 else line.split(sep)
        segments.append(Segment(name, fields, seen[name]))
    return Message(header, segments)


def parse_tree(text: str):
    """hl7apy's element tree of the message (slow; for tools and diagnostics)."""
    return parse_message("\r".join(split_segments(text)), find_groups=False)


# --- field values -------------------------------------------------------------------------------------------
class Reader:
    """Field access with the message's encoding characters and HL7 escapes."""

    def __init__(self, header: Header):
        enc = header.encoding.ljust(4, " ")
        self.comp, self.rep, self.esc, self.sub = enc[0], enc[1], enc[2], enc[3]

    def unescape(self, value: str) -> str:
        if self.esc not in value:
            return value
        e = re.escape(self.esc)
        table = {"F": "|", "S": self.comp, "T": self.sub, "R": self.rep, "E": self.esc}
        return re.sub(f"{e}([FSTRE]){e}", lambda m: table[m.group(1)], value)

    def reps(self, seg: Segment, n: int) -> list[str]:
        raw = seg.get(n)
        return [r for r in raw.split(self.rep)] if raw else []

    def comps(self, value: str) -> list[str]:
        return value.split(self.comp)

    def comp_of(self, value: str, n: int) -> str:
        parts = value.split(self.comp)
        return self.unescape(parts[n - 1]) if n - 1 < len(parts) else ""

    def value(self, seg: Segment, n: int, comp: int = 1) -> str:
        first = self.reps(seg, n)
        return self.comp_of(first[0], comp).strip() if first else ""


_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


def parse_ts(raw: str, location: str, *, required: bool = False) -> datetime | None:
    """HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]); without a zone: the hospital's (TIME_ZONE). Years
    1900 to 2100 only, as on the REST API (``dpi.core.dates``)."""
    raw = raw.strip()
    if not raw:
        if required:
            raise Hl7Error(location, REQUIRED_FIELD_MISSING, f"{location} is required.")
        return None
    match = _TS.match(raw)
    if not match:
        raise Hl7Error(location, DATA_TYPE_ERROR, f"{location} is not an HL7 date/time (YYYYMMDD[HHMM[SS]]).")
    y, mo, d, h, mi, s, tz = match.groups()
    try:
        zone = ZoneInfo(settings.TIME_ZONE)
        value = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0), tzinfo=zone)
        if tz:
            sign = 1 if tz[0] == "+" else -1
            offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5]))
            value = value.replace(tzinfo=timezone(sign * offset))
    except ValueError as exc:
        raise Hl7Error(location, DATA_TYPE_ERROR, f"{location} is not a calendar date/time.") from exc
    if error := dates.year_error(value):
        raise Hl7Error(location, DATA_TYPE_ERROR, f"{location}: {error}")
    return value


def parse_dt(raw: str, location: str, *, required: bool = False) -> date | None:
    """HL7 DT, or a DTM whose date is taken: the time, if any, must be a real time too."""
    raw = raw.strip()
    if not raw:
        if required:
            raise Hl7Error(location, REQUIRED_FIELD_MISSING, f"{location} is required.")
        return None
    if not re.fullmatch(r"\d{8}(\d{2,6}([.]\d{1,4})?)?([+-]\d{4})?", raw):
        raise Hl7Error(location, DATA_TYPE_ERROR, f"{location} is not an HL7 date (YYYYMMDD).")
    parse_ts(raw, location)  # a calendar date (and time) within the years allowed
    return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
