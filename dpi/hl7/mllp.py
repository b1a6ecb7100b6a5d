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


def charset(payload: bytes) -> str:
    """MSH-18: ``8859/1`` is Latin-1; ``UNICODE UTF-8`` (or nothing) is UTF-8, falling back to Latin-1."""
    first = payload.split(b"\r", 1)[0]
    if b"8859/1" in first or b"8859-1" in first:
        return "latin-1"
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


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
        from dpi.hl7.receiver import receive

        self.request.settimeout(IDLE_SECONDS)
        try:
            for payload in frames(lambda: self.request.recv(65536), max_bytes=settings.DPI_HL7_MAX_BYTES):
                encoding = charset(payload)
                answer = receive(payload.decode(encoding, errors="replace"))
                self.request.sendall(frame(answer, encoding))
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
