"""One inbound HL7 v2 message in, one acknowledgement out.

- Processed once: a control id (MSH-10) its sender (MSH-3/MSH-4) already had processed gets the stored
  acknowledgement again, nothing else.
- In order per patient: the message's patients (PID-3, MRG-1) are locked (PostgreSQL advisory lock) for the
  transaction, so two connections never interleave one patient's movements; an identity update older (MSH-7)
  than one already applied is acknowledged and not applied. MSH-7 is therefore required, and refused when it is
  more than ``MAX_CLOCK_SKEW`` ahead of this server's clock (a far-future time would freeze the identity).
- All or nothing: the message is applied in one transaction; any error rolls it back and is answered AE (its
  content) or AR (the message itself), with an ERR segment naming the field.
- Dead letters: errors are kept (``manage.py hl7_deadletters``) for the integration team to fix and replay. A
  message refused because something it refers to was not there yet (an A03 before its A01) is retried on its own
  after the next message of the same patient succeeds.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone, translation

from dpi.hl7 import ack, feed
from dpi.hl7.message import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    MAX_CLOCK_SKEW,
    UNKNOWN_KEY_IDENTIFIER,
    Header,
    Hl7Error,
    Reader,
    parse,
    read_header,
)
from dpi.hl7.models import InboundMessage

log = logging.getLogger("dpi.hl7")
IDENTITY_EVENTS = frozenset({"A08", "A28", "A31"})


def receive(text: str, *, invalid_charset: str = "") -> str:
    """Process one message (already taken out of its MLLP frame) and return the acknowledgement.
    ``invalid_charset``: the character set the message declares (MSH-18) and its bytes are not valid in."""
    try:
        header = read_header(text)
    except Hl7Error as error:
        _dead_letter(text, Header(), error)
        return ack.build(None, "AR", error)
    existing = _same_message(header).first() if header.control_id else None
    if existing is not None and existing.status == InboundMessage.Status.PROCESSED:
        return existing.ack  # a duplicate: the same answer, nothing done again
    if invalid_charset:
        error = Hl7Error(
            "MSH-18",
            DATA_TYPE_ERROR,
            f"The message is not valid in its declared character set ({invalid_charset[:20]}).",
            reject=True,
        )
        return _refused(text, header, "", error)[0]
    answer, row = process(text, header)
    if row is not None and row.status == InboundMessage.Status.PROCESSED and row.patient_key:
        retry_waiting(row.patient_key)
    return answer


# Acknowledgement texts are in English, as the rest of the interface (HL7 tables, docs/hl7.md), whatever the
# site's language: the services' translated messages would otherwise mix French into them.
@translation.override("en")
def process(text: str, header: Header) -> tuple[str, InboundMessage | None]:
    key = ""
    try:
        with transaction.atomic():
            message = parse(text)
            reader = Reader(header)
            key = feed.patient_key(message, reader)
            _lock(sorted({k for k in (key, feed.merged_key(message, reader)) if k}))
            when = message.header.time
            note = ""
            if header.event in IDENTITY_EVENTS and _superseded(key, when):
                note = "Superseded by a later identity message: not applied."
                patient = feed.patient_existing(feed.Context(message, reader))
            else:
                patient = feed.apply(message)
            answer = ack.build(header, "AA")
            row = _store(
                text,
                header,
                key=key,
                patient_id=patient.pk,
                status=InboundMessage.Status.PROCESSED,
                answer=answer,
                error=None,
                when=when,
                note=note,
            )
        return answer, row
    except Hl7Error as error:
        return _refused(text, header, key, error)
    except ValidationError as exc:
        return _refused(text, header, key, _from_validation(exc))
    except PermissionDenied as exc:
        return _refused(text, header, key, Hl7Error("MSH-9", APPLICATION_INTERNAL_ERROR, f"Refused by the gate: {exc}"))
    except IntegrityError:
        stored = _same_message(header).filter(status="processed").first()
        if stored is not None:  # the same message, processed meanwhile on another connection
            return stored.ack, None
        log.exception("HL7 message %s: integrity error", header.control_id)
        return _refused(text, header, key, Hl7Error("MSH", APPLICATION_INTERNAL_ERROR, "Conflicting update."))
    except Exception:  # noqa: BLE001 - any failure is answered (AE) and kept for replay, never a dropped connection
        log.exception("HL7 message %s failed", header.control_id)
        return _refused(text, header, key, Hl7Error("MSH", APPLICATION_INTERNAL_ERROR, "Internal error."))


def _sender(header: Header) -> str:
    return f"{header.sending_application}^{header.sending_facility}"[:200]


def _same_message(header: Header):
    """A control id is unique for its sender (MSH-3/MSH-4): two applications may number alike."""
    return InboundMessage.objects.filter(sender=_sender(header), control_id=header.control_id)


def _refused(text: str, header: Header, key: str, error: Hl7Error) -> tuple[str, InboundMessage]:
    code = "AR" if error.reject else "AE"
    answer = ack.build(header, code, error)
    return answer, _dead_letter(text, header, error, key=key, answer=answer)


def _from_validation(exc: ValidationError) -> Hl7Error:
    if hasattr(exc, "error_dict"):
        name, errors = next(iter(exc.error_dict.items()))
        message = "; ".join(str(m) for e in errors for m in e.messages)
        location = feed.FIELD_OF.get(name, "PID-3" if name == "__all__" else "MSH")
        return Hl7Error(location, DATA_TYPE_ERROR, message[:250] or "Invalid value.")
    return Hl7Error("MSH", DATA_TYPE_ERROR, "; ".join(exc.messages)[:250])


def _lock(keys: list[str]) -> None:
    with connection.cursor() as cur:
        for key in keys:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"hl7:{key}"])


def _superseded(key: str, when) -> bool:
    if not key or when is None:
        return False
    return InboundMessage.objects.filter(
        patient_key=key,
        status=InboundMessage.Status.PROCESSED,
        message_time__gt=when,
        # rows stored before MSH-7 was checked (year 9999) would otherwise freeze the identity for good
        message_time__lte=timezone.now() + MAX_CLOCK_SKEW,
        message_type__in=[f"ADT^{e}" for e in IDENTITY_EVENTS],
    ).exists()


def _store(
    text: str,
    header: Header,
    *,
    key: str,
    patient_id: int | None,
    status: str,
    answer: str,
    error: Hl7Error | None,
    when=None,
    note: str = "",
) -> InboundMessage:
    values = {
        "message_type": header.message_type[:20],
        "sender": _sender(header),
        "patient_key": key[:64],
        "patient_id": patient_id,
        "raw": text,
        "status": status,
        "ack_code": "AA" if error is None else ("AR" if error.reject else "AE"),
        "ack": answer,
        "error_field": error.location[:20] if error else "",
        "error_code": error.condition[0] if error else "",
        "error_text": (error.text if error else note)[:300],
        "message_time": when,
    }
    if header.control_id:
        row = _same_message(header).select_for_update().first()
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)
            row.attempts += 1
            row.save()
            return row
    return InboundMessage.objects.create(control_id=header.control_id, **values)


def _dead_letter(text: str, header: Header, error: Hl7Error, *, key: str = "", answer: str = "") -> InboundMessage:
    status = InboundMessage.Status.REJECTED if error.reject else InboundMessage.Status.ERROR
    with transaction.atomic():
        return _store(
            text,
            header,
            key=key,
            patient_id=None,
            status=status,
            answer=answer or ack.build(header, "AR" if error.reject else "AE", error),
            error=error,
        )


def replay(row: InboundMessage) -> InboundMessage:
    """Process a dead letter again (after the cause was fixed); returns the row with its new status."""
    try:
        header = read_header(row.raw)
    except Hl7Error:
        return row
    process(row.raw, header)
    row.refresh_from_db()
    return row


def retry_waiting(key: str, *, limit: int = 50) -> int:
    """Messages of this patient that were refused for a missing visit or patient (they arrived before the
    message they follow): try them again in the order they came, until none succeeds."""
    done = 0
    progress = True
    while progress and done < limit:
        progress = False
        waiting = InboundMessage.objects.filter(
            patient_key=key, status=InboundMessage.Status.ERROR, error_code=UNKNOWN_KEY_IDENTIFIER[0]
        ).order_by("received_at", "id")[:limit]
        for row in waiting:
            if replay(row).status == InboundMessage.Status.PROCESSED:
                done += 1
                progress = True
    return done
