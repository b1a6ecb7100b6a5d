"""MLLP over TLS (DPI_HL7_TLS_*): the listener answers a sender whose certificate the configured CA issued, and
a sender with no certificate, or one from another CA, gets no acknowledgement and changes nothing. A throwaway CA
is generated for the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from dpi.hl7 import testing as t
from dpi.hl7.mllp import END, frame, serve, tls_context
from patients.models import CareUnit, Encounter
from tests.personas import make_patient

pytestmark = pytest.mark.django_db(transaction=True)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject: str, key, issuer: str, issuer_key, *, ca: bool = False, ip: str | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(tmp_path, name: str, cert, key) -> tuple[str, str]:
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def pki(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test HL7 CA", ca_key, "Test HL7 CA", ca_key, ca=True)
    ca_path, _ = _write(tmp_path, "ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _write(tmp_path, "server", _cert("dpi", server_key, "Test HL7 CA", ca_key, ip="127.0.0.1"), server_key)
    engine_key = ec.generate_private_key(ec.SECP256R1())
    engine = _write(tmp_path, "engine", _cert("engine", engine_key, "Test HL7 CA", ca_key), engine_key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _write(tmp_path, "rogue", _cert("rogue", rogue_key, "rogue", rogue_key), rogue_key)
    return {"ca": ca_path, "server": server, "engine": engine, "rogue": rogue}


@pytest.fixture
def listener(pki):
    server = serve("127.0.0.1", 0, tls=tls_context(*pki["server"], pki["ca"]))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.fixture
def patient():
    CareUnit.objects.create(code="pneumo-x", name="Pneumo X")
    return make_patient(ipp="TLSIPP0001", identity_status="PROV", sex="F", birth_name="X", first_name="Y")


def _send(address, pki, client_cert: tuple[str, str] | None) -> bytes:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert:
        context.load_cert_chain(*client_cert)
    when = timezone.localtime().strftime("%Y%m%d%H%M%S")
    message = t.adt("A01", "TLSIPP0001", visit="TLS1", unit="pneumo-x", when=when, family="X", given="Y",
                    extra_given="Z", birth="19000101", sex="F")
    answer = b""
    try:
        with socket.create_connection(address, timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(frame(message, "latin-1"))
            while END not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except (ssl.SSLError, ConnectionError):
        pass  # refused during or right after the handshake (TLS 1.3 reports a missing certificate late)
    return answer


def test_a_sender_with_a_certificate_from_the_ca_is_answered(listener, pki, patient):
    answer = _send(listener, pki, pki["engine"])
    assert t.ack_fields(answer.decode("latin-1").strip("\x0b\x1c\r"))["code"] == "AA", answer
    assert Encounter.objects.filter(patient=patient).exists()


@pytest.mark.parametrize("who", ["none", "rogue"])
def test_a_sender_without_a_valid_certificate_gets_nothing(listener, pki, patient, who):
    assert _send(listener, pki, None if who == "none" else pki[who]) == b""
    assert not Encounter.objects.filter(patient=patient).exists()
