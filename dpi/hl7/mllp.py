"""MLLP (Minimal Lower Layer Protocol) over TCP: each message framed as 0x0B <message> 0x1C 0x0D, answered with
its acknowledgement framed the same way on the same connection. One thread per connection; messages of one
connection are processed in the order they arrive.

MLLP names no sender, and what the feed says is trusted (an admission puts the unit's team in the care team), so
the listener decides who the feed is at the transport: connections from outside ``DPI_HL7_ALLOWED_NETWORKS`` are
closed before a byte is read and recorded as denied; with ``DPI_HL7_TLS_*`` the sender must also present a
certificate issued by the configured CA (docs/hl7.md, "Who may send")."""

from __future__ import annotations

import ipaddress
import logging
import socketserver
import ssl
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connections

log = logging.getLogger("dpi.hl7")
START, END = b"\x0b", b"\x1c\x0d"
IDLE_SECONDS = 600


def frame(message: str, encoding: str = "utf-8") -> bytes:
    return START + message.encode(encoding, errors="replace") + END


# MSH-18 (HL7 table 0211) values dpi reads, and their Python codec.
CHARSETS = {"ASCII": "ascii", "8859/1": "latin-1", "8859/15": "iso8859-15", "UNICODE UTF-8": "utf-8"}


def declared_charset(payload: bytes) -> str:
    """MSH-18 as written (its first repetition), or ''."""
    first = payload.replace(b"\n", b"\r").split(b"\r", 1)[0]
    if not first.startswith(b"MSH") or len(first) < 8:
        return ""
    fields = first.split(first[3:4])  # fields[n - 1] is MSH-n
    value = fields[17] if len(fields) > 17 else b""
    return value.split(fields[1][1:2] or b"~")[0].decode("latin-1").strip()


def decode(payload: bytes) -> tuple[str, str, str]:
    """The message as text, the codec to answer in, and the declared charset its bytes are not valid in (''
    when they are). A charset declared in MSH-18 (``CHARSETS``) is the one read and answered in; with none (or
    one not in ``CHARSETS``), UTF-8, or Latin-1 when the bytes are not UTF-8."""
    declared = declared_charset(payload)
    codec = CHARSETS.get(declared.upper())
    if codec is not None:
        try:
            return payload.decode(codec), codec, ""
        except UnicodeDecodeError:
            return payload.decode(codec, errors="replace"), codec, declared
    try:
        return payload.decode("utf-8"), "utf-8", ""
    except UnicodeDecodeError:
        return payload.decode("latin-1"), "latin-1", ""


def answer(payload: bytes) -> bytes:
    """The framed acknowledgement of one framed payload, in the message's character set."""
    from dpi.hl7.receiver import receive

    text, codec, invalid = decode(payload)
    return frame(receive(text, invalid_charset=invalid), codec)


def frames(read: Callable[[], bytes], *, max_bytes: int):
    """Yield each framed payload from a byte stream; bytes outside frames are ignored. Stops at the end of the
    stream, or raises ValueError when a frame grows beyond ``max_bytes``."""
    buffer = b""
    while True:
        data = read()
        if not data:
            return
        buffer += data
        while True:
            start = buffer.find(START)
            if start < 0:
                buffer = b""
                break
            end = buffer.find(END, start)
            if end < 0:
                buffer = buffer[start:]
                if len(buffer) > max_bytes:
                    raise ValueError("frame too large")
                break
            yield buffer[start + 1 : end]
            buffer = buffer[end + 2 :]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def sender_allowed(address: str, allowed: Iterable[Network]) -> bool:
    """Whether a peer address is in one of the allowed networks (an IPv4-mapped IPv6 peer counts as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in allowed)


def is_loopback_host(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "", "0.0.0.0"-like names, a host name: reachable from elsewhere


def startup_refusal(host: str, *, production: bool, allowlist_explicit: bool) -> str:
    """Why the listener must not start (empty when it may): in production, bound beyond the loopback, the
    senders must be named (DPI_HL7_ALLOWED_NETWORKS), not left to the default."""
    if production and not is_loopback_host(host) and not allowlist_explicit:
        return (
            f"refusing to listen for HL7 on {host} with DPI_PRODUCTION: name the networks of the interface "
            "engines in DPI_HL7_ALLOWED_NETWORKS (comma-separated CIDRs), or bind DPI_HL7_HOST to the loopback."
        )
    return ""


def tls_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """Server side of MLLP over TLS: TLS 1.2 at least, and a client certificate issued by ``client_ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=client_ca)
    return context


def _record_refused_sender(address: str) -> None:
    """Logged with the address only (nothing was read), and a denied event in the trail."""
    from audit.context import access_context
    from audit.services import event_record

    log.warning("HL7 connection from %s refused: not in DPI_HL7_ALLOWED_NETWORKS", address)
    try:
        with access_context(channel="hl7", ip=address):
            event_record(action="login_failure", outcome="denied", actor_role="system", actor_unit="hl7",
                         basis="deny:hl7_sender", reason="HL7 sender outside DPI_HL7_ALLOWED_NETWORKS",
                         details={"peer": address})
    except Exception:  # noqa: BLE001 - the connection stays refused even if the trail cannot be written
        log.exception("HL7 refused connection from %s: the denied event could not be recorded", address)


class Handler(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        address = str(self.client_address[0])
        try:
            if not sender_allowed(address, self.server.allowed_networks):
                _record_refused_sender(address)
                return  # closed by the server (shutdown_request), unread
            self.request.settimeout(IDLE_SECONDS)
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()  # here, not in accept(): a slow client holds only its own thread
            for payload in frames(lambda: self.request.recv(65536), max_bytes=settings.DPI_HL7_MAX_BYTES):
                self.request.sendall(answer(payload))
        except ssl.SSLError as exc:
            log.warning("HL7 connection from %s refused: TLS handshake failed (%s)", address, exc.reason)
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.info("HL7 connection from %s closed: %s", address, exc)
        finally:
            connections.close_all()  # this thread's database connection


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    allowed_networks: tuple[Network, ...] = ()


def serve(
    host: str,
    port: int,
    *,
    allowed: Iterable[str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Server:
    """A bound server (``serve_forever()`` to run it); port 0 picks a free port (``server.server_address``).
    ``allowed``: the sender networks (default ``DPI_HL7_ALLOWED_NETWORKS``); ``tls``: a server context (default:
    from ``DPI_HL7_TLS_*`` when set, else plain TCP)."""
    server = Server((host, port), Handler)
    server.allowed_networks = networks(settings.DPI_HL7_ALLOWED_NETWORKS if allowed is None else allowed)
    if tls is None and settings.DPI_HL7_TLS_CERT:
        tls = tls_context(settings.DPI_HL7_TLS_CERT, settings.DPI_HL7_TLS_KEY, settings.DPI_HL7_TLS_CLIENT_CA)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server
