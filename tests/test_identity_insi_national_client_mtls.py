"""The national INSi client talks mutual TLS: it verifies the service's certificate against the configured CA and
presents the establishment's certificate; a service that does not know that certificate refuses the connection
(an "error" answer, nothing applied). Against a local HTTPS server on loopback with throw-away certificates;
the SOAP answer shapes (one identity, several, none) are read as the service writes them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from patients.insi import InsiTraits, NationalBackend

IDENTITY = ("<insi:Individu><insi:NumIdentifiant>2850375112001</insi:NumIdentifiant><insi:Cle>{key}</insi:Cle>"
            "<insi:OID>1.2.250.1.213.1.4.10</insi:OID><insi:NomNaissance>MARTIN</insi:NomNaissance>"
            "<insi:ListePrenom>CLAIRE MARIE</insi:ListePrenom><insi:Sexe>F</insi:Sexe>"
            "<insi:DateNaissance>1985-03-14</insi:DateNaissance><insi:LieuNaissance>75112</insi:LieuNaissance>"
            "</insi:Individu>")


def _pair(name: str, issuer=None, *, ca: bool = False, server: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer[0].subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _write(folder, name, cert, key):
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return str(folder / f"{name}.pem"), str(folder / f"{name}.key")


@pytest.fixture
def national(tmp_path, settings):
    """A loopback INSi service requiring a client certificate signed by its CA; answers what ``answer`` says."""
    ca = _pair("INSi test CA", ca=True)
    ca_file, _ = _write(tmp_path, "ca", *ca)
    server_cert, server_key = _write(tmp_path, "server", *_pair("127.0.0.1", ca, server=True))
    client_cert, client_key = _write(tmp_path, "client", *_pair("etablissement-test", ca))
    stranger_cert, stranger_key = _write(tmp_path, "stranger", *_pair("inconnu"))  # self-signed
    state = {"answer": "", "bodies": [], "peers": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            state["bodies"].append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            state["peers"].append(self.connection.getpeercert()["subject"])
            payload = ('<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
                       'xmlns:insi="http://www.cnamts.fr/webservice"><soap:Body><insi:Reponse>'
                       f'{state["answer"]}</insi:Reponse></soap:Body></soap:Envelope>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/soap+xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # no trait in any log line
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    settings.DPI_INSI_ENDPOINT = f"https://127.0.0.1:{httpd.server_address[1]}/insi"
    settings.DPI_INSI_CERT_FILE, settings.DPI_INSI_KEY_FILE = client_cert, client_key
    settings.DPI_INSI_CA_FILE = ca_file
    state["stranger"] = (stranger_cert, stranger_key)
    yield state
    httpd.shutdown()
    httpd.server_close()


TRAITS = InsiTraits(birth_name="Martin", first_names="Claire Marie", sex="F",
                    birth_date=dt.date(1985, 3, 14), birthplace_insee="75112")


def test_one_identity_found_over_mutual_tls(national):
    from patients.ins import compute_key

    national["answer"] = IDENTITY.format(key=f"{compute_key('2850375112001'):02d}")
    answer = NationalBackend().search(TRAITS)
    assert answer.outcome == "found"
    [person] = answer.identities
    assert (person.ins[:13], person.first_name, person.birth_date) == ("2850375112001", "CLAIRE",
                                                                        dt.date(1985, 3, 14))
    # The service saw the establishment's certificate, and the traits as the referential writes them.
    assert national["peers"][0] == ((("commonName", "etablissement-test"),),)
    assert "<insi:NomNaissance>MARTIN</insi:NomNaissance>" in national["bodies"][0]
    assert "<insi:Prenom>CLAIRE MARIE</insi:Prenom>" in national["bodies"][0]


def test_several_and_none_are_read_as_such(national):
    national["answer"] = IDENTITY.format(key="01") * 2
    assert NationalBackend().search(TRAITS).outcome == "several"
    national["answer"] = ""
    assert NationalBackend().search(TRAITS).outcome == "none"


def test_a_certificate_the_service_does_not_know_is_refused(national, settings):
    settings.DPI_INSI_CERT_FILE, settings.DPI_INSI_KEY_FILE = national["stranger"]
    answer = NationalBackend().search(TRAITS)
    assert answer.outcome == "error" and not national["bodies"]


def test_a_service_whose_certificate_is_not_signed_by_the_configured_ca_is_refused(national, settings, tmp_path):
    other_ca, _ = _write(tmp_path, "other-ca", *_pair("another CA", ca=True))
    settings.DPI_INSI_CA_FILE = other_ca
    answer = NationalBackend().search(TRAITS)
    assert answer.outcome == "error" and not national["bodies"]
