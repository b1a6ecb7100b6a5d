"""`manage.py hl7_listener [--host H] [--port P]`: the HL7 v2 MLLP listener (ADT and ORU feeds), in the
foreground until SIGTERM or Ctrl-C. See docs/hl7.md."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dpi.hl7.mllp import serve, startup_refusal


class Command(BaseCommand):
    help = "Listen for HL7 v2 messages over MLLP (ADT A01-A40, ORU^R01) and answer each with an ACK."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.DPI_HL7_HOST)
        parser.add_argument("--port", type=int, default=settings.DPI_HL7_PORT)

    def handle(self, *args, host: str, port: int, **options):
        refusal = startup_refusal(host, production=settings.PRODUCTION,
                                  allowlist_explicit=settings.DPI_HL7_ALLOWED_NETWORKS_EXPLICIT)
        if refusal:
            raise CommandError(refusal)
        server = serve(host, port)
        bound = server.server_address
        stop = threading.Event()

        def shutdown(*_args):
            if not stop.is_set():
                stop.set()
                threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        tls = " over TLS, client certificate required" if settings.DPI_HL7_TLS_CERT else ""
        senders = ", ".join(str(n) for n in server.allowed_networks)
        self.stdout.write(f"HL7 listener on {bound[0]}:{bound[1]} (MLLP{tls}); senders from {senders}")
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            server.server_close()
        self.stdout.write("HL7 listener stopped.")
