"""PID 1's private control socket: JSON lines over a Unix stream socket.

A request is one JSON object per connection, `{"op": "status", ...}`; the answer is one JSON
object `{"ok": true, "result": ...}` or `{"ok": false, "error": "NoSuchCapsule", "message": ...}`.
`{"op": "subscribe"}` keeps the connection and streams capsule state events, one per line.
Mutating operations need the caller (SO_PEERCRED) to be uid 0. Everything runs on PID 1's loop
with non-blocking sockets and bounded buffers: a slow or hostile client cannot stall PID 1.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exo_init.lib.logfile import tail
from exo_init.pid1.capsule import Event
from exo_init.pid1.log import log
from exo_init.pid1.loop import Loop
from exo_init.pid1.manifest import ManifestError
from exo_init.pid1.supervisor import ShutdownAction
from exo_init.pid1.switch import SwitchError

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Any

MAX_REQUEST = 64 * 1024
MAX_OUTBUF = 4 * 1024 * 1024
READ_ONLY_OPS = frozenset({"ping", "info", "status", "logs", "subscribe", "generations", "events"})
MUTATING_OPS = frozenset({"start", "stop", "restart", "reload", "poweroff", "reboot", "freeze", "thaw",
                          "switch", "rollback"})


class ApiError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


@dataclass
class _Client:
    sock: socket.socket
    uid: int
    inbuf: bytes = b""
    outbuf: bytearray = field(default_factory=bytearray)
    streaming: bool = False
    closing: bool = False


if TYPE_CHECKING:  # (an alias for annotations only: `Any` is not there at run time)
    Handler = Callable[[dict[str, Any], int], Any]


class ControlServer:
    def __init__(self, loop: Loop, path: Path, handler: Handler) -> None:
        self.loop = loop
        self.path = path
        self.handler = handler
        self.clients: dict[int, _Client] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)  # everyone may read; mutating calls are checked per caller
        self.sock.listen(16)
        loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            try:
                uid = peer_uid(conn)
            except OSError:
                conn.close()
                continue
            client = _Client(conn, uid)
            self.clients[conn.fileno()] = client
            self.loop.add_reader(conn.fileno(), lambda c=client: self._readable(c))  # type: ignore[misc]

    def _readable(self, c: _Client) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        if c.streaming:
            return  # a subscriber has nothing more to say
        c.inbuf += data
        if len(c.inbuf) > MAX_REQUEST:
            self._reply(c, {"ok": False, "error": "BadRequest", "message": "request too large"}, close=True)
            return
        if b"\n" not in c.inbuf:
            return
        line = c.inbuf.split(b"\n", 1)[0]
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ApiError("BadRequest", 'a request is a JSON object with a string "op"')
            op = request["op"]
            if op not in READ_ONLY_OPS | MUTATING_OPS:
                raise ApiError("UnknownOperation", f"unknown operation {op!r}")
            if op in MUTATING_OPS and c.uid != 0:
                raise ApiError("AccessDenied", f"{op} needs root (caller uid {c.uid})")
            if op == "subscribe":
                c.streaming = True
                self._send(c, {"ok": True, "result": "subscribed"})
                return
            result = self.handler(request, c.uid)
            self._reply(c, {"ok": True, "result": result}, close=True)
        except json.JSONDecodeError as e:
            self._reply(c, {"ok": False, "error": "BadRequest", "message": f"not JSON: {e.msg}"}, close=True)
        except ApiError as e:
            self._reply(c, {"ok": False, "error": e.name, "message": e.message}, close=True)
        except Exception as e:
            log.exception("control request failed")
            self._reply(c, {"ok": False, "error": "Failed", "message": f"{type(e).__name__}: {e}"}, close=True)

    def publish(self, event: Event) -> None:
        for c in list(self.clients.values()):
            if c.streaming:
                self._send(c, {"event": event.to_json()})

    def _reply(self, c: _Client, obj: dict[str, Any], close: bool) -> None:
        c.closing = close
        self._send(c, obj)

    def _send(self, c: _Client, obj: dict[str, Any]) -> None:
        c.outbuf += json.dumps(obj).encode() + b"\n"
        if len(c.outbuf) > MAX_OUTBUF:
            self._close(c)  # a subscriber that does not read is dropped
            return
        self._flush(c)

    def _flush(self, c: _Client) -> None:
        try:
            while c.outbuf:
                sent = c.sock.send(c.outbuf)
                del c.outbuf[:sent]
        except BlockingIOError:
            self.loop.add_writer(c.sock.fileno(), lambda: self._flush(c))
            return
        except OSError:
            self._close(c)
            return
        self.loop.remove_writer(c.sock.fileno())
        if c.closing:
            self._close(c)

    def _close(self, c: _Client) -> None:
        fd = c.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
            self.clients.pop(fd, None)
        c.sock.close()

    def close(self) -> None:
        for c in list(self.clients.values()):
            self._close(c)
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def make_handler(sup: Any, generations: Any = None) -> Handler:
    """The operations, on a Supervisor (typed Any to keep this module free of an import cycle),
    and the generation switcher (exo_init.pid1.switch.Switcher; None: no generation store)."""

    def capsule(request: dict[str, Any]) -> str:
        name = request.get("name")
        if not isinstance(name, str):
            raise ApiError("BadRequest", 'this operation needs "name"')
        if name not in sup.capsules:
            raise ApiError("NoSuchCapsule", f"no capsule named {name!r}")
        return name

    def status(request: dict[str, Any]) -> Any:
        """One capsule (`name`), some (`names`: those that exist) or all; `"stats": false` leaves out
        the cgroup figures, which cost PID 1 a dozen file reads per capsule."""
        stats = request.get("stats", True)
        names = request.get("names")
        if not isinstance(stats, bool) or not (names is None or (
                isinstance(names, list) and all(isinstance(n, str) for n in names))):
            raise ApiError("BadRequest", '"stats" must be a boolean and "names" a list of capsule names')
        if "name" in request:
            return sup.status(capsule(request), stats)
        return sup.status_all(names, stats)

    def handle(request: dict[str, Any], uid: int) -> Any:
        op = request["op"]
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "info":
            return {"pid": os.getpid(), "pid1": sup.config.pid1, "hostname": sup.hostname,
                    "manifest": sup.manifest_source, "boot_complete": sup.boot_reported,
                    "orphans_reaped": sup.orphans_reaped, "shutting_down": sup.shutdown_action,
                    "cgroups": str(sup.host.cgroup_root) if sup.host.cgroup_root else None,
                    "capsules": len(sup.capsules), "capsule_set": sup.capsule_set,
                    "generation": generations.running if generations is not None else None}
        if op == "status":
            return status(request)
        if op == "logs":
            name = capsule(request)
            count = request.get("lines", 50)
            if not isinstance(count, int) or count < 0:
                raise ApiError("BadRequest", '"lines" must be a non-negative integer')
            return {"path": str(sup.capsules[name].log.path), "lines": tail(sup.capsules[name].log.path, count)}
        if op in ("switch", "rollback", "generations", "events"):
            return generation_op(generations, request)
        try:
            # (the reply to a change is the capsule's status without its cgroup figures: reading a
            # dozen files before the loop turns again delayed the capsule's readiness)
            if op in ("start", "stop", "restart"):
                getattr(sup, op)(capsule(request))
                return sup.status(request["name"], stats=False)
            if op in ("freeze", "thaw"):
                sup.freeze(capsule(request), op == "freeze")
                return sup.status(request["name"], stats=False)
            if op == "reload":
                return sup.reload()
            if op in ("poweroff", "reboot"):
                sup.request_shutdown(ShutdownAction(op))
                return {"action": op}
        except ManifestError as e:
            raise ApiError("InvalidManifest", str(e)) from None
        except OSError as e:
            raise ApiError("Failed", f"{op}: {e.strerror or e}") from None
        raise ApiError("UnknownOperation", f"unknown operation {op!r}")

    return handle


def generation_op(switcher: Any, request: dict[str, Any]) -> Any:
    """switch / rollback / generations / events (see exo_init/pid1/switch.py)."""
    op = request["op"]
    if switcher is None:
        raise ApiError("Failed", f"{op}: no generation store (see exo_init's log)")
    try:
        if op == "generations":
            return switcher.listing()
        if op == "events":
            count = request.get("lines", 50)
            if not isinstance(count, int) or count < 0:
                raise ApiError("BadRequest", '"lines" must be a non-negative integer')
            return switcher.events(count)
        if op == "rollback":
            return switcher.rollback()
        target, try_mode, probation = request.get("target"), request.get("try", True), request.get("probation")
        if isinstance(target, int) and not isinstance(target, bool):
            target = str(target)
        if not isinstance(target, str) or not target:
            raise ApiError("BadRequest", 'switch needs "target": a manifest path or a generation number')
        if not isinstance(try_mode, bool) or not (probation is None or isinstance(probation, (int, float))):
            raise ApiError("BadRequest", '"try" must be a boolean and "probation" a number of seconds')
        if probation is None:
            return switcher.switch(target, try_mode)
        return switcher.switch(target, try_mode, float(probation))
    except SwitchError as e:
        raise ApiError(e.name, e.message) from None
    except ManifestError as e:
        raise ApiError("InvalidManifest", str(e)) from None
    except OSError as e:
        raise ApiError("Failed", f"{op}: {e.strerror or e}") from None
