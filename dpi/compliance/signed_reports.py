"""Reports the DPO hands over (to the CNIL, an auditor), signed with the audit signing key (Ed25519).

The signature is appended after the PDF's end as a PDF comment line, so readers open the file unchanged:

    %DPI-SIGNATURE-v1 key=<version> sig=<base64 Ed25519 signature>

It covers ``dpi-signed-report/1`` + the SHA-256 of every byte before that line. ``manage.py
verify_signed_report FILE`` checks it with the public key derived from the keyring (any version it holds).
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from dpi import crypto

MARKER = b"\n%DPI-SIGNATURE-v1 "


def _message(body: bytes) -> bytes:
    return b"dpi-signed-report/1\n" + hashlib.sha256(body).hexdigest().encode()


def sign(body: bytes) -> bytes:
    version, key = crypto.signing_key()
    sig = base64.b64encode(key.sign(_message(body))).decode()
    return body + MARKER + f"key={version} sig={sig}\n".encode()


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str
    key_version: int | None = None
    sha256: str = ""


def verify(data: bytes) -> Verification:
    at = data.rfind(MARKER)
    if at < 0:
        return Verification(False, "no dpi signature in this file")
    body, trailer = data[:at], data[at + len(MARKER):].strip()
    try:
        fields = dict(part.split(b"=", 1) for part in trailer.split(b" "))
        version = int(fields[b"key"])
        signature = base64.b64decode(fields[b"sig"], validate=True)
    except (ValueError, KeyError):
        return Verification(False, "malformed signature line")
    try:
        crypto.signing_key(version)[1].public_key().verify(signature, _message(body))
    except crypto.KeyringError:
        return Verification(False, f"key version {version} is not in this keyring", version)
    except InvalidSignature:
        return Verification(False, "signature does not match: the file was changed after signing", version)
    return Verification(True, "signature valid", version, hashlib.sha256(body).hexdigest())


def live_state_pdf(state, *, generated_by: str) -> bytes:
    """The live state as a PDF (reportlab), page numbers and generation time on every page, then signed."""
    from xml.sax.saxutils import escape

    from django.utils import timezone
    from django.utils.translation import gettext as _
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    when = timezone.localtime(state.generated_at).strftime("%d/%m/%Y %H:%M")
    colour = {"green": colors.HexColor("#1b7a3a"), "amber": colors.HexColor("#a66300"),
              "red": colors.HexColor("#b00020")}
    label = {"green": _("green"), "amber": _("amber"), "red": _("red")}

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(15 * mm, 10 * mm, _("dpi — live conformity state — generated %(when)s by %(who)s")
                          % {"when": when, "who": generated_by})
        canvas.drawRightString(195 * mm, 10 * mm, _("page %(n)d") % {"n": doc.page})
        canvas.restoreState()

    story = [Paragraph(escape(_("Live conformity state of this instance")), styles["Title"]),
             Paragraph(escape(_("Overall: %(status)s") % {"status": label[state.status]}), styles["Heading2"])]
    for _key, title, checks in state.sections:
        story.append(Paragraph(escape(str(title)), styles["Heading3"]))
        rows = [[Paragraph(f"<b>{escape(h)}</b>", small) for h in (_("check"), _("state"), _("value"), _("rule"))]]
        for c in checks:
            value = str(c.value) + ("" if not c.details else " — " + ", ".join(str(d) for d in c.details[:10]))
            rows.append([Paragraph(escape(str(c.label)), small),
                         Paragraph(f'<font color="{colour[c.status].hexval()}"><b>{escape(label[c.status])}</b></font>',
                                   small),
                         Paragraph(escape(value), small), Paragraph(escape(str(c.rule)), small)])
        table = Table(rows, colWidths=[45 * mm, 18 * mm, 50 * mm, 67 * mm], repeatRows=1)
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story += [table, Spacer(1, 4 * mm)]
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=A4, title=_("Live conformity state"), author="dpi",
                      bottomMargin=18 * mm).build(story, onFirstPage=footer, onLaterPages=footer)
    return sign(buf.getvalue())
