"""MLLP (Minimal Lower Layer Protocol) over TCP: each message framed as 0x0B <message> 0x1C 0x0D, answered with
its acknowledgement framed the same way on the same connection. One thread per connection; messages of one
connection are processed in the order they arrive."""

from __future__ import annotations

import logging
import socketserver
from collections.abc import Callable

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


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(IDLE_SECONDS)
        try:
            for payload in frames(lambda: self.request.recv(65536), max_bytes=settings.DPI_HL7_MAX_BYTES):
                self.request.sendall(answer(payload))
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.info("HL7 connection from %s closed: %s", self.client_address[0], exc)
        finally:
            connections.close_all()  # this thread's database connection


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(host: str, port: int) -> Server:
    """A bound server (``serve_forever()`` to run it); port 0 picks a free port (``server.server_address``)."""
    return Server((host, port), Handler)
