"""RFC 3161: each checkpoint's digest is time-stamped by the configured authority (here a local one, on
loopback, with its own CA), the token is kept in the witness file and checked by verify_audit; a token that
stamps something else, or signed by another authority than DPI_AUDIT_TSA_CA_FILE's, is refused."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ, useful
from pyasn1_modules import rfc3161, rfc5280, rfc5652

from audit import timestamp, witness
from audit.signing import checkpoint_digest
from audit.verification import chain_verify
from tests.test_audit_support import signed

pytestmark = pytest.mark.django_db


def _authority(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _attribute(oid, value) -> rfc5652.Attribute:
    attr = rfc5652.Attribute()
    attr["attrType"] = oid
    attr["attrValues"].append(value)
    return attr


def _token(key, cert, imprint: bytes, nonce) -> rfc5652.ContentInfo:
    """A TimeStampToken as an RFC 3161 authority makes it (ECDSA P-256, SHA-256)."""
    tst = rfc3161.TSTInfo()
    tst["version"] = 1
    tst["policy"] = univ.ObjectIdentifier("1.3.6.1.4.1.32473.1")
    tst["messageImprint"]["hashAlgorithm"]["algorithm"] = timestamp.SHA256
    tst["messageImprint"]["hashedMessage"] = imprint
    tst["serialNumber"] = 42
    tst["genTime"] = useful.GeneralizedTime(datetime.now(UTC).strftime("%Y%m%d%H%M%SZ"))
    if nonce is not None:
        tst["nonce"] = nonce
    content = encoder.encode(tst)

    signer = rfc5652.SignerInfo()
    signer["version"] = 1
    cert_asn1, _ = decoder.decode(cert.public_bytes(serialization.Encoding.DER), asn1Spec=rfc5280.Certificate())
    signer["sid"]["issuerAndSerialNumber"]["issuer"] = cert_asn1["tbsCertificate"]["issuer"]
    signer["sid"]["issuerAndSerialNumber"]["serialNumber"] = cert.serial_number
    signer["digestAlgorithm"]["algorithm"] = timestamp.SHA256
    signer["signedAttrs"].append(_attribute(rfc5652.id_contentType, rfc3161.id_ct_TSTInfo))
    signer["signedAttrs"].append(_attribute(timestamp.MESSAGE_DIGEST,
                                            univ.OctetString(hashlib.sha256(content).digest())))
    der = bytearray(encoder.encode(signer["signedAttrs"]))
    der[0] = 0x31
    signer["signatureAlgorithm"]["algorithm"] = univ.ObjectIdentifier("1.2.840.10045.4.3.2")
    signer["signature"] = key.sign(bytes(der), ec.ECDSA(hashes.SHA256()))

    sd = rfc5652.SignedData()
    sd["version"] = 3
    algorithm = sd["digestAlgorithms"].componentType.clone()
    algorithm["algorithm"] = timestamp.SHA256
    sd["digestAlgorithms"].append(algorithm)
    sd["encapContentInfo"]["eContentType"] = rfc3161.id_ct_TSTInfo
    sd["encapContentInfo"]["eContent"] = content
    choice = sd["certificates"].componentType.clone()
    choice["certificate"] = cert_asn1
    sd["certificates"].append(choice)
    sd["signerInfos"].append(signer)
    info = rfc5652.ContentInfo()
    info["contentType"] = rfc5652.id_signedData
    info["content"] = sd
    return info


class _Tsa:
    """A time-stamping authority on loopback; ``tamper`` makes it stamp another datum."""

    def __init__(self, name: str = "Test TSA"):
        self.key, self.cert = _authority(name)
        self.tamper = False
        self.requests = 0
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                req, _ = decoder.decode(self.rfile.read(int(self.headers["Content-Length"])),
                                        asn1Spec=rfc3161.TimeStampReq())
                tsa.requests += 1
                imprint = bytes(req["messageImprint"]["hashedMessage"])
                if tsa.tamper:
                    imprint = bytes(32)
                resp = rfc3161.TimeStampResp()
                resp["status"]["status"] = 0
                resp["timeStampToken"] = _token(tsa.key, tsa.cert, imprint, int(req["nonce"]))
                body = encoder.encode(resp)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tsa(settings, tmp_path):
    with _Tsa() as authority:
        ca = tmp_path / "tsa-ca.pem"
        ca.write_bytes(authority.cert.public_bytes(serialization.Encoding.PEM))
        settings.DPI_AUDIT_TSA_URL = authority.url
        settings.DPI_AUDIT_TSA_CA_FILE = str(ca)
        yield authority


def _stamps(settings) -> list[dict]:
    lines = [json.loads(x) for x in settings.DPI_AUDIT_WITNESS_FILE.read_text().splitlines()]
    return [x for x in lines if x["type"] == "timestamp"]


def test_each_checkpoint_is_time_stamped_and_the_token_verifies(tsa, settings):
    signed(2)
    stamps = _stamps(settings)
    assert tsa.requests == 1 and len(stamps) == 1
    cp_number = stamps[0]["number"]
    token = base64.b64decode(stamps[0]["token"])
    entry = witness.read().checkpoints[cp_number][0][1]
    stamp = timestamp.check(token, bytes.fromhex(entry["digest"]))
    assert stamp.tsa_subject == "CN=Test TSA" and abs(stamp.gen_time - datetime.now(UTC)) < timedelta(minutes=1)
    run = chain_verify(alert=False)
    assert run.ok, run.message
    assert any("1 RFC 3161 time-stamp" in note for note in run.result.notes)


def test_a_token_for_another_datum_is_refused_at_signing(tsa, settings):
    tsa.tamper = True
    signed(1)
    assert _stamps(settings) == []  # refused (and logged): the checkpoint itself is signed and witnessed
    assert witness.read().last_number >= 1


def test_a_token_from_another_authority_is_refused(tsa, settings):
    signed(1)
    token = base64.b64decode(_stamps(settings)[0]["token"])
    digest = checkpoint_digest(__import__("audit.models", fromlist=["AuditCheckpoint"]).AuditCheckpoint.objects
                               .order_by("-number").first())
    with _Tsa("Other TSA") as other:
        other_ca = settings.DPI_AUDIT_WITNESS_FILE.parent / "other-ca.pem"
        other_ca.write_bytes(other.cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(timestamp.TimestampError, match="not issued by"):
        timestamp.check(token, digest, ca_file=str(other_ca))
    with pytest.raises(timestamp.TimestampError, match="another datum"):
        timestamp.check(token, bytes(32))


def test_an_altered_stamp_in_the_witness_is_named(tsa, settings):
    signed(1)
    path = settings.DPI_AUDIT_WITNESS_FILE
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        entry = json.loads(line)
        if entry["type"] == "timestamp":
            raw = bytearray(base64.b64decode(entry["token"]))
            raw[-5] ^= 0xFF  # a byte of the signature
            entry["token"] = base64.b64encode(bytes(raw)).decode()
            lines[i] = witness.line_of(entry)
    path.write_text("\n".join(lines) + "\n")
    run = chain_verify(alert=False)
    assert not run.ok and "time-stamp" in run.message
