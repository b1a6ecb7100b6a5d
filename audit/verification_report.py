"""The signed verification report a DPO can hand to the CNIL (JSON and PDF), and checking its signature.

Both are signed with the audit-signing key of the keyring (Ed25519, the key that signs checkpoints), so the
database's administrators cannot produce or alter one:

- JSON: ``{"report": {...}, "signature": {"alg": "Ed25519", "key_version": v, "public_key": hex, "value": b64}}``;
  the signature covers the canonical UTF-8 JSON of ``report`` (keys sorted, no spaces);
- PDF: the rendered report, then one last line ``%dpi-signature Ed25519 <version> <public key hex> <b64>``: the
  signature covers every byte of the file before that line (PDF readers ignore a comment after ``%%EOF``).

``manage.py audit_report_verify FILE`` checks either against the keyring, or against a public key the DPO
exported beforehand (``manage.py audit_report --public-key``), which is what proves where it comes from: the
key written in the report only proves that it was not altered since.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.utils import timezone

from audit import selectors, witness
from audit.models import AuditCheckpoint, VerificationRun
from dpi.crypto import KeyringError, signing_key

FORMAT = "dpi-audit-verification-report/1"
PDF_MARKER = b"%dpi-signature "


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def report_data(run: VerificationRun | None = None) -> dict[str, Any]:
    """What the report states: the latest verification run (or the given one), the checkpoints, the witness."""
    run = run if run is not None else selectors.last_verification()
    now = timezone.now()
    last_cp = AuditCheckpoint.objects.order_by("-number").first()
    wl = witness.read()
    data: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": now.isoformat(),
        "establishment": getattr(settings, "DPI_ESTABLISHMENT_NAME", "") or "",
        "checkpoint_period_seconds": settings.DPI_AUDIT_CHECKPOINT_SECONDS,
        "verification": None,
        "checkpoints": {
            "count": AuditCheckpoint.objects.count(),
            "last_number": last_cp.number if last_cp else None,
            "last_signed_at": _iso(last_cp.signed_at) if last_cp else None,
            "last_seq": last_cp.seq if last_cp else None,
            "last_head": bytes(last_cp.head_hash).hex() if last_cp else None,
        },
        "witness": {
            "file": str(wl.path) if wl.path else None,
            "present": wl.exists,
            "checkpoints": len(wl.checkpoints),
            "last_number": wl.last_number or None,
            "syslog": bool(getattr(settings, "DPI_AUDIT_SYSLOG", "")),
            "timestamp_authority": bool(getattr(settings, "DPI_AUDIT_TSA_URL", "")),
        },
    }
    if run is not None:
        data["verification"] = {
            "id": run.pk,
            "ok": run.ok,
            "completed": run.completed,
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "age_seconds": int((now - run.finished_at).total_seconds()),
            "events_checked": run.events_checked,
            "checkpoints_checked": run.checkpoints_checked,
            "witness_entries_checked": run.witness_checked,
            "links": [run.first_seq, run.last_seq],
            "last_checkpoint": {"number": run.last_checkpoint_number, "signed_at": _iso(run.last_checkpoint_at)},
            "first_problem": {"event_id": run.first_broken_id, "link": run.first_broken_seq,
                              "occurred_at": _iso(run.first_broken_occurred_at)} if not run.ok else None,
            "message": run.message,
            "problems": run.problems,
        }
    return data


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _public_hex(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_key_pem() -> bytes:
    """The current audit-signing public key, for the DPO to keep (and check reports with) outside dpi."""
    _, key = signing_key()
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signed_json(data: dict) -> bytes:
    version, key = signing_key()
    envelope = {"report": data, "signature": {
        "alg": "Ed25519", "key_version": version, "public_key": _public_hex(key),
        "value": base64.b64encode(key.sign(_canonical(data))).decode()}}
    return json.dumps(envelope, ensure_ascii=False, indent=2, sort_keys=True).encode()


def signed_pdf(data: dict) -> bytes:
    version, key = signing_key()
    body = _render_pdf(data)
    signature = base64.b64encode(key.sign(body)).decode()
    return body + PDF_MARKER + f"Ed25519 {version} {_public_hex(key)} {signature}\n".encode()


@dataclass
class Checked:
    valid: bool
    kind: str  # "json" or "pdf"
    key_version: int | None
    reason: str
    report: dict | None = None


def _key_for(version: int, embedded_hex: str, trusted: Ed25519PublicKey | None) -> tuple[Ed25519PublicKey, str]:
    if trusted is not None:
        return trusted, "the public key given"
    try:
        _, key = signing_key(version)
        return key.public_key(), f"audit-signing key version {version} of the keyring"
    except (KeyringError, KeyError, ValueError):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(embedded_hex)), (
            "the key written in the report only (not in this keyring: give --public-key to prove its origin)")


def load_public_key(blob: bytes) -> Ed25519PublicKey:
    text = blob.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(text)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode()))


def check(blob: bytes, trusted: Ed25519PublicKey | None = None) -> Checked:
    """Check a signed report (JSON or PDF)."""
    if blob.startswith(b"%PDF"):
        cut = blob.rfind(b"\n" + PDF_MARKER)
        if cut < 0:
            return Checked(False, "pdf", None, "no dpi signature line at the end of the PDF")
        body, line = blob[:cut + 1], blob[cut + 1 + len(PDF_MARKER):].strip()
        try:
            alg, version, pub, value = line.decode().split(" ")
            assert alg == "Ed25519"
            key, source = _key_for(int(version), pub, trusted)
            key.verify(base64.b64decode(value), body)
        except InvalidSignature:
            return Checked(False, "pdf", None, "the signature does not match: the PDF was altered or not signed by dpi")
        except (ValueError, AssertionError, UnicodeDecodeError) as exc:
            return Checked(False, "pdf", None, f"unreadable signature line: {exc}")
        return Checked(True, "pdf", int(version), f"signature valid ({source})")
    try:
        envelope = json.loads(blob)
        data, sig = envelope["report"], envelope["signature"]
        key, source = _key_for(int(sig["key_version"]), sig["public_key"], trusted)
        key.verify(base64.b64decode(sig["value"]), _canonical(data))
    except InvalidSignature:
        return Checked(False, "json", None, "the signature does not match: the report was altered or not signed by dpi")
    except (ValueError, KeyError, TypeError) as exc:
        return Checked(False, "json", None, f"not a signed dpi verification report: {exc}")
    return Checked(True, "json", int(sig["key_version"]), f"signature valid ({source})", data)


# --- PDF -----------------------------------------------------------------------------------------------------
def _render_pdf(data: dict) -> bytes:
    """A4, bilingual (French first): the statement, the figures, every problem found."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    def esc(value: Any) -> str:
        return str(value).replace("None", "-").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title="Rapport de vérification de la traçabilité", author="dpi",
                            invariant=1)
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=8, leading=10)
    v = data.get("verification")
    if v is None:
        verdict = "Aucune vérification n'a encore été faite. / No verification has run yet."
    elif v["ok"]:
        verdict = "INTACTE : la traçabilité des accès est vérifiée. / INTACT: the access trail verifies."
    elif not v["completed"]:
        verdict = "ÉCHEC : la vérification n'a pas pu aboutir. / FAILED: the verification could not complete."
    else:
        verdict = "ROMPUE : la traçabilité a été altérée. / BROKEN: the access trail was altered."
    story = [
        Paragraph("Rapport de vérification de la traçabilité des accès<br/>"
                  "<font size=11>Access-trail verification report</font>", styles["Title"]),
        Paragraph(esc(data.get("establishment")), body),
        Paragraph(f"<b>{esc(verdict)}</b>", body),
        Spacer(1, 4 * mm),
    ]
    rows = [["Établi le / Generated", data["generated_at"]]]
    if v is not None:
        rows += [
            ["Vérification / Verification run", f"#{v['id']} {v['started_at']} → {v['finished_at']}"],
            ["Âge / Age", f"{v['age_seconds'] // 3600} h {v['age_seconds'] % 3600 // 60} min"],
            ["Événements vérifiés / Events checked",
             f"{v['events_checked']:,} (links {v['links'][0]}–{v['links'][1]})"],
            ["Points de contrôle signés / Signed checkpoints", str(v["checkpoints_checked"])],
            ["Témoin hors base / Witness entries", str(v["witness_entries_checked"])],
            ["Dernier point de contrôle / Last checkpoint",
             f"#{v['last_checkpoint']['number']} {v['last_checkpoint']['signed_at'] or ''}"],
            ["Résultat / Result", v["message"]],
        ]
    cps, w = data["checkpoints"], data["witness"]
    rows += [
        ["Points de contrôle en base / Checkpoints in the database",
         f"{cps['count']} (#{cps['last_number']}, link {cps['last_seq']}, {cps['last_signed_at']})"],
        ["Tête signée / Signed head", cps["last_head"] or "-"],
        ["Fichier témoin / Witness file", f"{w['file']} ({w['checkpoints']} entries, last #{w['last_number']})"],
        ["Syslog / Horodatage RFC 3161",
         f"{'on' if w['syslog'] else 'off'} / {'on' if w['timestamp_authority'] else 'off'}"],
        ["Période de signature / Signing period", f"{data['checkpoint_period_seconds']} s"],
    ]
    table = Table([[Paragraph(esc(a), small), Paragraph(esc(b), small)] for a, b in rows],
                  colWidths=[62 * mm, 118 * mm])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story.append(table)
    if v is not None and v["problems"]:
        story += [Spacer(1, 4 * mm), Paragraph("<b>Anomalies / Problems</b>", body)]
        for p in v["problems"]:
            story.append(Paragraph(esc(f"[{p.get('kind')}] {p.get('reason')}"), small))
    story += [Spacer(1, 6 * mm), Paragraph(
        "Ce document est signé (Ed25519, clé de signature de la traçabilité) : dernière ligne du fichier. "
        "Vérification : <font face=Courier>manage.py audit_report_verify FICHIER --public-key CLE.pem</font>. / "
        "This file is signed (Ed25519, audit-signing key) on its last line; check it with "
        "<font face=Courier>manage.py audit_report_verify FILE --public-key KEY.pem</font>.", small)]
    doc.build(story)
    return buf.getvalue()
