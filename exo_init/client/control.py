"""The one client of PID 1's control socket (JSON lines over a Unix stream socket): one request per
connection with `call`, or a stream of capsule state events with `Subscription` / `subscribe`.
exoctl, the CoreCaps, the Sentry, the dashboard, the power button and the D-Bus bridge all use it;
it imports nothing of PID 1.

Every wait is bounded: `call` by its timeout, a subscription's confirmation by its timeout and each
later wait by the caller's; a reply line longer than MAX_LINE is an error, not unbounded memory.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from exo_init.lib.errors import ApiError
from exo_init.lib.paths import CONTROL_SOCKET, ROOT_CONTROL_SOCKET

MAX_LINE = 64 * 1024 * 1024  # the longest reply line read (a `status` of every capsule is ~1 KiB each)


class Lines:
    """Line framing: bytes in, complete lines out (without the newline)."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        if b"\n" not in data:
            if len(self.buf) > self.limit:
                raise ConnectionError(f"control socket: a line longer than {self.limit} bytes")
            return []
        *lines, rest = bytes(self.buf).split(b"\n")
        self.buf[:] = rest
        return lines


def _connect(path: Path, timeout: float) -> socket.socket:
    """A connection to `path`, or, for root, to the root-only socket beside it when there is one
    (its backlog is never full of other users' connects). Waits at most `timeout` for room in the
    server's backlog: a blocking connect bounded by SO_SNDTIMEO (one with a Python timeout is
    non-blocking and fails at once with EAGAIN while a connect flood keeps the backlog full)."""
    if os.geteuid() == 0 and path.name == CONTROL_SOCKET:
        try:
            return _connect_to(path.with_name(ROOT_CONTROL_SOCKET), timeout)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):
            pass  # (an older exo_init, or a capsule's world that holds only the shared socket)
    return _connect_to(path, timeout)


def _connect_to(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        seconds = max(timeout, 0.001)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                        struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000)))
        sock.connect(str(path))
        sock.settimeout(timeout)
    except OSError:
        sock.close()
        raise
    return sock


def _read_line(sock: socket.socket, lines: Lines, pending: list[bytes]) -> bytes:
    """The next line: from `pending`, else from the socket (blocking, within its timeout)."""
    while not pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("control socket closed the connection")
        pending += lines.feed(chunk)
    return pending.pop(0)


def _result(reply: Any) -> Any:
    """A reply's result, or ApiError (the server's error)."""
    if not isinstance(reply, dict):
        raise ApiError("Failed", f"not a control socket reply: {str(reply)[:200]}")
    if not reply.get("ok"):
        raise ApiError(str(reply.get("error", "Failed")), str(reply.get("message", "")))
    return reply.get("result")


def call(path: Path, request: dict[str, Any], timeout: float = 10.0) -> Any:
    """One request; returns the result or raises ApiError (the server's error) / OSError (cannot
    reach it, or no answer within `timeout`) / ValueError (the answer is not JSON)."""
    with _connect(path, timeout) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(_read_line(sock, Lines(), []))
    return _result(reply)


def _wait_readable(sock: socket.socket, timeout: float | None) -> bool:
    """Whether `sock` is readable within `timeout` seconds (None: until it is). poll, not select:
    select refuses fd numbers from 1024 on, which a client holding many files has."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


class Subscription:
    """PID 1's stream of capsule state events. The constructor connects and waits (at most
    `timeout`) for the server's confirmation; then `receive` reads what is there (the socket may be
    made non-blocking for a GLib io watch) and `events(timeout)` waits at most `timeout` for some."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = _connect(path, timeout)
        self.lines = Lines()
        self.pending: list[bytes] = []
        try:
            self.sock.sendall(b'{"op": "subscribe"}\n')
            _result(json.loads(_read_line(self.sock, self.lines, self.pending)))
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def _decode(self) -> list[dict[str, Any]]:
        out = []
        for line in self.pending:
            msg = json.loads(line)
            if isinstance(msg, dict) and isinstance(msg.get("event"), dict):
                out.append(msg["event"])
        self.pending.clear()
        return out

    def receive(self) -> list[dict[str, Any]]:
        """One read: the events it completed (maybe none). ConnectionError when the stream ended;
        ValueError for a line that is not JSON."""
        if not self.pending:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return []
            if not chunk:
                raise ConnectionError("exo_init closed the event stream")
            self.pending += self.lines.feed(chunk)
        return self._decode()

    def events(self, timeout: float | None) -> list[dict[str, Any]]:
        """The events that arrive within `timeout` seconds (None: wait for some); [] if none did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self.pending:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not _wait_readable(self.sock, wait):
                    return []
            events = self.receive()
            if events or (deadline is not None and time.monotonic() >= deadline):
                return events

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def subscribe(path: Path, timeout: float | None = None,
              on_subscribed: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield state events as they happen (blocking; `timeout` bounds each wait: TimeoutError).
    `on_subscribed` runs once the server has confirmed the subscription."""
    with Subscription(path) as sub:
        if on_subscribed is not None:
            on_subscribed()
        while True:
            events = sub.events(timeout)
            if not events:
                raise TimeoutError(f"no event within {timeout:g} s")
            yield from events
