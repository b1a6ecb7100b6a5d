"""Witnesses outside the database (file, syslog RFC 5424 over UDP and TCP to a local collector), and the signed
verification report the DPO hands to the CNIL (JSON and PDF, checked by ``audit_report_verify``)."""

from __future__ import annotations

import io
import json
import socket
import socketserver
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit import verification_report, witness
from audit.services import checkpoint_sign
from audit.verification import chain_verify
from tests.helpers import audit_events
from tests.test_audit_support import chain_now, record, signed, sql, stored_run, triggers_off, verified_client

pytestmark = pytest.mark.django_db


# --- syslog ----------------------------------------------------------------------------------------------------
class _Collector:
    """A local syslog collector: UDP datagrams, or TCP with octet counting (RFC 6587)."""

    def __init__(self, kind: str):
        self.messages: list[bytes] = []
        received = self.messages

        class Udp(socketserver.BaseRequestHandler):
            def handle(self):
                received.append(self.request[0])

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    length = b""
                    while (c := self.rfile.read(1)) not in (b" ", b""):
                        length += c
                    if not length:
                        return
                    received.append(self.rfile.read(int(length)))

        server_cls = socketserver.UDPServer if kind == "udp" else socketserver.TCPServer
        self.server = server_cls(("127.0.0.1", 0), Udp if kind == "udp" else Tcp)
        self.url = f"{kind}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_each_checkpoint_goes_to_the_syslog_collector_in_rfc_5424(settings, kind):
    record(2)
    chain_now()
    with _Collector(kind) as collector:
        settings.DPI_AUDIT_SYSLOG = collector.url
        cp = checkpoint_sign()
        for _ in range(200):  # UDP: delivered asynchronously to the server thread
            if collector.messages:
                break
            threading.Event().wait(0.01)
    assert cp.witness_status["syslog"] >= 1
    message = collector.messages[-1].decode()
    header, _, rest = message.partition(" [")
    pri, version = header.split(" ")[0].split(">")
    assert (pri, version) == ("<109", "1")  # facility 13 (log audit), severity 5 (notice); RFC 5424 version 1
    assert header.split(" ")[3:6] == ["dpi", header.split(" ")[4], "checkpoint"]
    assert f'number="{cp.number}"' in rest and f'seq="{cp.seq}"' in rest
    entry = json.loads(message[message.index("{"):])
    assert entry == witness.entry_of(cp)


def test_an_unreachable_collector_does_not_stop_signing(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once this block ends: nothing listens there
    settings.DPI_AUDIT_SYSLOG = f"tcp://127.0.0.1:{port}"
    cp = signed_checkpoint()
    assert str(cp.witness_status["syslog"]).startswith("failed")
    assert witness.read().last_number == cp.number  # the file witness has it


def signed_checkpoint():
    record()
    chain_now()
    return checkpoint_sign()


def test_a_checkpoint_committed_but_never_written_is_caught_up(settings):
    first = signed_checkpoint()
    settings.DPI_AUDIT_WITNESS_FILE.write_text("")  # as if the process died between the commit and the write
    second = signed_checkpoint()
    assert first.number in witness.read().checkpoints
    assert sorted(witness.read().checkpoints) == list(range(1, second.number + 1))
    assert chain_verify(alert=False).ok


def test_a_missing_witness_file_fails_the_verification(settings):
    signed(2)
    settings.DPI_AUDIT_WITNESS_FILE.unlink()
    run = chain_verify(alert=False)
    assert not run.ok and "witness file" in run.message and "is missing" in run.message


# --- the signed report -------------------------------------------------------------------------------------------
@pytest.fixture
def verified_trail():
    signed(3)
    return chain_verify(alert=False)


def test_the_json_report_is_signed_and_any_change_is_caught(verified_trail, tmp_path):
    blob = verification_report.signed_json(verification_report.report_data())
    checked = verification_report.check(blob)
    assert checked.valid and checked.report["verification"]["id"] == verified_trail.pk
    assert checked.report["verification"]["ok"] is True
    envelope = json.loads(blob)
    envelope["report"]["verification"]["ok"] = False
    assert not verification_report.check(json.dumps(envelope).encode()).valid

    path, key = tmp_path / "report.json", tmp_path / "key.pem"
    path.write_bytes(blob)
    key.write_bytes(verification_report.public_key_pem())
    out = io.StringIO()
    call_command("audit_report_verify", str(path), "--public-key", str(key), stdout=out)
    assert "signature valid (the public key given)" in out.getvalue()


def test_the_pdf_report_is_signed_and_any_change_is_caught(verified_trail, tmp_path):
    path = tmp_path / "report.pdf"
    call_command("audit_report", "--format", "pdf", "--output", str(path), stderr=io.StringIO())
    blob = path.read_bytes()
    assert blob.startswith(b"%PDF") and verification_report.check(blob).valid
    tampered = blob.replace(b"INTACT", b"INTACX", 1) if b"INTACT" in blob else blob[:200] + b" " + blob[201:]
    path.write_bytes(tampered)
    with pytest.raises(CommandError, match="NOT VALID"):
        call_command("audit_report_verify", str(path), stdout=io.StringIO())


def test_only_the_dpo_downloads_the_report_and_each_download_is_recorded(cast, verified_trail):
    url = reverse("audit:verification_report", kwargs={"fmt": "json"})
    assert verified_client(cast.physician).get(url).status_code == 403
    assert audit_events(actor_id=cast.physician.pk, resource_type="verification_report", outcome="denied")
    response = verified_client(cast.dpo).get(url)
    assert response.status_code == 200
    assert verification_report.check(response.content).valid
    assert audit_events(actor_id=cast.dpo.pk, resource_type="verification_report", outcome="allowed")
    pdf = verified_client(cast.dpo).get(reverse("audit:verification_report", kwargs={"fmt": "pdf"}))
    assert pdf.status_code == 200 and verification_report.check(pdf.content).valid


def test_the_dashboard_shows_the_latest_runs_real_state_and_age(cast, now):
    client = verified_client(cast.dpo)
    stored_run(started_at=now - timedelta(hours=50), finished_at=now - timedelta(hours=50),
                                   ok=True, events_checked=10)
    html = client.get("/dpo/").content.decode()
    assert "2" in html and "/audit/verification/report.pdf" in html
    assert "jour et demi" in html or "day and a half" in html  # stale: the nightly run did not happen
    signed(1)
    with triggers_off():
        sql("DELETE FROM audit_auditcheckpoint")
    chain_verify(alert=False)  # fails: the witness holds checkpoints the database lost
    html = client.get("/dpo/").content.decode()
    assert "chaîne rompue" in html or "chain broken" in html
    assert "jour et demi" not in html and "day and a half" not in html


def test_verify_audit_reconciles_a_copy_of_the_collectors_log(settings, tmp_path):
    signed(2)
    copy = tmp_path / "collector.log"
    copy.write_text("".join(f"Dec  2 04:00:00 collector dpi[7]: {line}\n"
                            for line in settings.DPI_AUDIT_WITNESS_FILE.read_text().splitlines()))
    out = io.StringIO()
    call_command("verify_audit", "--witness", str(copy), stdout=out)
    assert "audit trail intact" in out.getvalue()
    copy.write_text("")  # a collector that lost everything: the database's checkpoints are not in it
    with pytest.raises(CommandError, match="holds none of the"):
        call_command("verify_audit", "--witness", str(copy), stdout=io.StringIO())
