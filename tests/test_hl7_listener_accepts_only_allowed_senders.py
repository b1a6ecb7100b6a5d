"""Who may send HL7: the MLLP listener, over a real socket, closes a connection from outside
DPI_HL7_ALLOWED_NETWORKS before reading it (no acknowledgement, nothing applied, a denied event naming the peer
address), serves the allowed networks as before, and in production refuses to bind beyond the loopback without an
explicit list. Attack this closes: a nurse on the hospital network sent ADT^A01 "admit the VIP into my unit" and
was at once in the VIP's care team (the feed is trusted)."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AccessEvent
from dpi.hl7 import testing as t
from dpi.hl7.mllp import frame, sender_allowed, serve, startup_refusal
from patients.models import CareUnit, Encounter, Patient
from tests.personas import make_patient

pytestmark = pytest.mark.django_db(transaction=True)


def _run(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return server


@pytest.fixture
def started():
    servers = []

    def start(**kwargs):
        servers.append(_run(serve("127.0.0.1", 0, **kwargs)))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def vip():
    CareUnit.objects.create(code="pneumo-x", name="Pneumo X")
    return make_patient(ipp="VIPIPP0002", birth_name="ZQSECRETNOM", first_name="Marqueur", sex="F",
                        confidentiality="restricted", restriction_reason="vip", identity_status="PROV")


def _self_admission() -> str:
    when = timezone.localtime().strftime("%Y%m%d%H%M%S")
    return t.adt("A01", "VIPIPP0002", visit="EVIL1", unit="pneumo-x", when=when, family="X", given="Y", extra_given="Z",
                 birth="19000101", sex="F")


def _denied_events() -> list[AccessEvent]:
    return list(AccessEvent.objects.filter(basis="deny:hl7_sender", outcome="denied"))


def test_a_sender_outside_the_allowed_networks_gets_nothing_and_changes_nothing(started, vip, settings):
    settings.DPI_HL7_ALLOWED_NETWORKS = ["10.0.0.0/8"]  # excludes 127.0.0.1, where this test connects from
    server = started()
    before = len(_denied_events())
    with socket.create_connection(server.server_address, timeout=10) as sock:
        try:
            sock.sendall(frame(_self_admission(), "latin-1"))
            answer = sock.recv(65536)
        except ConnectionError:  # closed with our bytes unread: a reset
            answer = b""
    assert answer == b""
    assert not Encounter.objects.filter(patient=vip).exists()
    assert Patient.objects.get(pk=vip.pk).birth_name == "ZQSECRETNOM"
    events = _denied_events()
    assert len(events) == before + 1
    event = events[-1]
    assert (event.action, event.channel, event.ip) == ("login_failure", "hl7", "127.0.0.1")
    assert event.details == {"peer": "127.0.0.1"} and event.patient_id is None


def test_an_allowed_sender_is_served_as_before(started, vip, settings):
    settings.DPI_HL7_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8"]
    client = t.MllpClient(*started().server_address, timeout=30)
    try:
        answer = client.send(_self_admission())
    finally:
        client.close()
    assert t.ack_fields(answer)["code"] == "AA", answer
    assert Encounter.objects.filter(patient=vip, unit__code="pneumo-x").exists()


def test_the_default_allows_this_machine_only():
    from dpi import settings as defaults

    allowed = [ipaddress.ip_network(n) for n in defaults.DPI_HL7_ALLOWED_NETWORKS]
    assert sender_allowed("127.0.0.1", allowed) and sender_allowed("::1", allowed)
    assert not sender_allowed("10.1.2.3", allowed) and not sender_allowed("192.168.0.7", allowed)


@pytest.mark.parametrize(("address", "allowed"), [
    ("10.20.30.40", True), ("::ffff:10.20.30.40", True), ("10.21.0.1", False), ("fd00::5", True),
    ("fd01::5", False), ("not-an-address", False), ("", False),
])
def test_sender_networks(address, allowed):
    networks = [ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00::/16")]
    assert sender_allowed(address, networks) is allowed


@pytest.mark.parametrize(("host", "production", "explicit", "refused"), [
    ("0.0.0.0", True, False, True),  # noqa: S104 - the case refused
    ("10.0.0.5", True, False, True),
    ("0.0.0.0", True, True, False),  # noqa: S104
    ("127.0.0.1", True, False, False),
    ("::1", True, False, False),
    ("0.0.0.0", False, False, False),  # noqa: S104 - outside production the default list still applies
])
def test_production_needs_explicit_senders_beyond_the_loopback(host, production, explicit, refused):
    assert bool(startup_refusal(host, production=production, allowlist_explicit=explicit)) is refused


def test_the_listener_command_refuses_to_start(settings):
    settings.PRODUCTION = True
    settings.DPI_HL7_ALLOWED_NETWORKS_EXPLICIT = False
    with pytest.raises(CommandError, match="DPI_HL7_ALLOWED_NETWORKS"):
        call_command("hl7_listener", host="0.0.0.0", port=0)  # noqa: S104
