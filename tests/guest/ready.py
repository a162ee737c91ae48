"""A notify-type service that does nothing: READY=1 on $NOTIFY_SOCKET at once, then sleeps.

The spawn and restart benchmark (tests/bench/versus.py) starts it under exo_init, under systemd
and by a bare fork/exec; it runs as `python3 -I -S` so that the program's own start-up is small
next to what the supervisor adds. Standard library only, no exo_init import.
"""

from __future__ import annotations

import os
import signal
import socket


def main() -> None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if path:
        address = "\0" + path[1:] if path.startswith("@") else path
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"READY=1", address)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
