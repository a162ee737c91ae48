"""The client side of PID 1's control socket (JSON lines over a Unix stream socket): one request
per connection with `call`, or a stream of capsule state events with `subscribe`."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class ControlError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def _read_line(sock: socket.socket, buf: bytearray) -> bytes:
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("control socket closed the connection")
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line


def call(path: Path, request: dict[str, Any], timeout: float = 10.0) -> Any:
    """One request; returns the result or raises ControlError (the server's error) / OSError."""
    with _connect(path, timeout) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(_read_line(sock, bytearray()))
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "Failed"), reply.get("message", ""))
    return reply["result"]


def subscribe(path: Path, timeout: float | None = None,
              on_subscribed: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield state events as they happen (blocking; `timeout` bounds each wait).
    `on_subscribed` runs once the server has confirmed the subscription."""
    with _connect(path, 10.0) as sock:
        sock.sendall(b'{"op": "subscribe"}\n')
        buf = bytearray()
        json.loads(_read_line(sock, buf))
        if on_subscribed is not None:
            on_subscribed()
        sock.settimeout(timeout)
        while True:
            yield json.loads(_read_line(sock, buf))["event"]
