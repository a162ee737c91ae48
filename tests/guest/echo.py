"""A TCP echo server on 0.0.0.0:PORT (a capsule of the test image, reached from the host through a
QEMU port forward). Each connection gets its lines back, prefixed with the capsule's name."""

from __future__ import annotations

import os
import socketserver
import sys


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        prefix = os.environ.get("EXO_CAPSULE", "echo").encode()
        for line in self.rfile:
            self.wfile.write(prefix + b": " + line)
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7777
    with Server(("0.0.0.0", port), Echo) as server:  # every address: reached from outside the VM
        print(f"echo: listening on port {port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
