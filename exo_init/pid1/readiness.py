"""Readiness channels: the sd_notify datagram socket and probes (file exists, TCP port open)."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

SCM_CREDENTIALS = 2
SO_PASSCRED = 16
_UCRED = struct.Struct("iII")


class NotifySocket:
    """One AF_UNIX datagram socket ($NOTIFY_SOCKET) for every capsule; senders are identified by
    their credentials (SCM_CREDENTIALS), as systemd does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> list[tuple[int, dict[str, str]]]:
        """Drain pending messages: [(sender pid, {"READY": "1", ...})]."""
        out: list[tuple[int, dict[str, str]]] = []
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except BlockingIOError:
                return out
            pid = 0
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS and len(payload) >= _UCRED.size:
                    pid = _UCRED.unpack(payload[: _UCRED.size])[0]
            fields: dict[str, str] = {}
            for line in data.decode(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key.strip()] = value
            out.append((pid, fields))

    def close(self) -> None:
        self.sock.close()


def probe_file(path: str) -> bool:
    return os.path.exists(path)


def probe_tcp(host: str, port: int) -> bool:
    """A connect to a local port is answered at once (accepted or refused); 0.2 s bounds the rest."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
