"""PID 1's private control socket: JSON lines over a Unix stream socket.

A request is one JSON object per connection, `{"op": "status", ...}`; the answer is one JSON
object `{"ok": true, "result": ...}` or `{"ok": false, "error": "NoSuchCapsule", "message": ...}`.
`{"op": "subscribe"}` keeps the connection and streams capsule state events, one per line.
Mutating operations (exo_init/lib/ops.py) need the caller (SO_PEERCRED) to be uid 0.

The socket is mode 0666: every local user, and every capsule granted `control`, may connect. So it
is treated as hostile input, and nothing a client does can take more of PID 1 than these bounds:

- **A bounded client table** (MAX_CLIENTS connections). Each non-root uid holds at most PER_UID of
  them, and non-root uids together leave ROOT_RESERVE free for root: `exoctl` as root always gets
  in. A connection over its share is answered `Busy` and closed at once. Root has a socket of its
  own besides (`control.root.sock`, mode 0600), so its connects never queue behind a flood of
  other users' in the kernel's backlog.
- **Deadlines.** A request must be complete within REQUEST_DEADLINE of the connect (a client that
  says nothing, or trickles, is closed) and its answer read within REPLY_DEADLINE.
- **Bounded input.** A request line is at most MAX_REQUEST bytes; bytes after its newline are never
  read (one request per connection: nothing can run a request twice). A subscriber that talks
  after subscribing is closed.
- **Bounded output.** All clients together hold at most OUTBUF_TOTAL bytes of unsent answers and
  events, one client at most OUTBUF_CLIENT; past the total, the clients holding more than their
  share (OUTBUF_TOTAL / clients holding output) are dropped, largest first: a subscriber or a
  `logs` client that never reads is dropped, PID 1 does not grow.
- **Out of file descriptors** (EMFILE/ENFILE on accept): accepting pauses (not an error of the
  loop) and resumes when a client closes, or after ACCEPT_RETRY seconds. PID 1 raises its own
  RLIMIT_NOFILE at start (main.py) far above the table, so this is the last line, not the first.
- **Root first.** A root request is answered as soon as it is read; a non-root one waits its
  turn, one per loop turn, so a burst of expensive requests cannot hold root's `info` behind it.
- **Bad requests** (not UTF-8, not JSON, nested too deeply, not an object, unknown op, bad
  arguments) are one `BadRequest` answer each, logged at most once per LOG_INTERVAL.

`info` answers carry the server's own figures (`control`: clients, refused, dropped, ..., and the
longest time one request of each operation held the loop, `slowest_ms_OP`).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from exo_init.lib import ops
from exo_init.lib.errors import ApiError
from exo_init.lib.logfile import tail
from exo_init.pid1.capsule import Event
from exo_init.pid1.config import Config
from exo_init.pid1.health import HealthEvent
from exo_init.pid1.log import Throttle, log
from exo_init.pid1.loop import Loop
from exo_init.pid1.manifest import ManifestError
from exo_init.pid1.supervisor import NotApplicable, ShutdownAction
from exo_init.pid1.switch import Switcher

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object

MAX_REQUEST = 16 * 1024          # one request line (a path is at most 4 KiB)
MAX_CLIENTS = 256                # open connections, all uids together
ROOT_RESERVE = 64                # of those, never taken by non-root uids
PER_UID = 32                     # one non-root uid's share
REQUEST_DEADLINE = 5.0           # connect -> complete request line
REPLY_DEADLINE = 10.0            # answer queued -> answer read
OUTBUF_CLIENT = 4 * 1024 * 1024  # unsent bytes of one client
OUTBUF_TOTAL = 8 * 1024 * 1024   # unsent bytes of all clients together
SUBSCRIBER_TALK = 4096           # what a subscriber may send after subscribing before it is closed
PART_TIME = 0.01                 # seconds of a `Parts` answer's parts one loop turn computes
ACCEPTS_PER_TURN = 16            # then back to the loop: a connect flood cannot starve it
LISTEN_BACKLOG = 128             # short: a client queued behind a connect flood waits for at most this
                                 # many accepts (and clients wait for room: client/control.py's connect)
ACCEPT_RETRY = 1.0               # seconds before accepting again after EMFILE/ENFILE
SWEEP_INTERVAL = 0.5             # how often deadlines are checked
MAX_LINES = 100_000              # "lines" of `logs` / `events`
LOG_INTERVAL = 10.0              # at most one log line per kind of client misbehaviour per this
OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def reply_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def parse_request(line: bytes) -> dict[str, Any]:
    """A request line -> the request object; ApiError BadRequest / UnknownOperation otherwise."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError("BadRequest", f"not UTF-8 (byte {e.start})") from None
    try:
        request = json.loads(text)
    except RecursionError:
        raise ApiError("BadRequest", "not JSON: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and integers too long for int()
        raise ApiError("BadRequest", f"not JSON: {getattr(e, 'msg', 'invalid number')}") from None
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise ApiError("BadRequest", 'a request is a JSON object with a string "op"')
    if request["op"] not in ops.OPERATIONS:
        raise ApiError("UnknownOperation", f"unknown operation {request['op'][:100]!r}")
    return request


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    fd: int
    uid: int
    deadline: float                     # closed at this (monotonic) time; inf: no deadline
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    streaming: bool = False             # a subscriber
    answered: bool = False              # the request was read: nothing more is read from it
    closing: bool = False               # close once outbuf is sent
    talked: int = 0                     # bytes a subscriber sent after subscribing


@dataclass(frozen=True)
class Parts:
    """An answer the server computes in parts, PART_TIME of them per loop turn, and sends as the
    list of the parts: `status` of every capsule reads a dozen cgroup files for each, and in one
    go it held PID 1's loop for seconds in the booted image (under TCG) while root's `info` waited."""

    parts: Iterator[Callable[[], Any]]


if TYPE_CHECKING:  # (an alias for annotations only: `Any` is not there at run time)
    Handler = Callable[[dict[str, Any], int], Any]


def _listen(path: Path, mode: int) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class ControlServer:
    def __init__(self, loop: Loop, path: Path, handler: Handler, root_path: Path | None = None,
                 may_mutate: Callable[[int, str], bool] | None = None) -> None:
        """Listen on `path` (mode 0666: everyone may read; mutating calls are checked per caller)
        and, given `root_path`, on a socket only root can connect to (mode 0600): root's clients
        (exo_init/client/control.py prefers it) never queue behind a flood of other users'
        connects. A mutating call needs uid 0 or `may_mutate(uid, op)` (a capsule's `manage` grant)."""
        self.may_mutate = may_mutate
        self.loop = loop
        self.path = path
        self.handler = handler
        self.clients: dict[int, _Client] = {}
        self.queue: deque[tuple[_Client, dict[str, Any]]] = deque()  # non-root requests, served in turn
        self.by_uid: Counter[int] = Counter()
        self.outbuf_total = 0
        self.figures: Counter[str] = Counter()
        self.accepting = False
        self.closed = False
        self.throttles: dict[str, Throttle] = {}
        self.listeners = [_listen(path, 0o666)]
        if root_path is not None:
            try:
                self.listeners.append(_listen(root_path, 0o600))
            except OSError:
                self.listeners[0].close()
                raise
        self._resume_accepting()
        self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    # --- misbehaviour, counted and logged sparingly --------------------------------------------------

    def _note(self, kind: str, message: str, *args: object) -> None:
        self.figures[kind] += 1
        throttle = self.throttles.setdefault(kind, Throttle(LOG_INTERVAL))
        suppressed = throttle.ready(self.loop.now())
        if suppressed is not None:
            more = f" (and {suppressed} more since the last report)" if suppressed else ""
            log.warning("control socket: " + message + more, *args)

    def snapshot(self) -> dict[str, int]:
        """The server's figures, for `info`."""
        return {"clients": len(self.clients), "outbuf": self.outbuf_total, "accepting": int(self.accepting),
                **self.figures}

    # --- accepting ----------------------------------------------------------------------------------

    def _resume_accepting(self) -> None:
        if not self.accepting and not self.closed:
            self.accepting = True
            for sock in self.listeners:
                self.loop.add_reader(sock.fileno(), lambda sock=sock: self._accept(sock))  # type: ignore[misc]

    def _pause_accepting(self, err: OSError) -> None:
        self.accepting = False
        for sock in self.listeners:
            self.loop.remove_reader(sock.fileno())
        self._note("accept_paused", "no file descriptor for a new client (%s); accepting paused",
                   errno.errorcode.get(err.errno or 0, "?"))
        self.loop.call_later(ACCEPT_RETRY, self._resume_accepting)

    def _share_left(self, uid: int) -> bool:
        if len(self.clients) >= MAX_CLIENTS:
            return False
        if uid == 0:
            return True
        non_root = len(self.clients) - self.by_uid[0]
        return self.by_uid[uid] < PER_UID and non_root < MAX_CLIENTS - ROOT_RESERVE

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in OUT_OF_FDS:
                    self._pause_accepting(e)
                    return
                self._note("accept_errors", "accept: %s", e)
                return
            try:
                conn.setblocking(False)
                uid = peer_uid(conn)
            except OSError:
                conn.close()
                continue
            if not self._share_left(uid):
                self._refuse(conn, uid)
                continue
            c = _Client(conn, conn.fileno(), uid, self.loop.now() + REQUEST_DEADLINE)
            self.clients[c.fd] = c
            self.by_uid[uid] += 1
            if listener is not self.listeners[0]:
                self.figures["root_socket"] += 1
            if uid != 0 and self.by_uid[uid] > self.figures["peak_per_uid"]:
                self.figures["peak_per_uid"] = self.by_uid[uid]  # (the most one non-root uid held at once)
            self.loop.add_reader(c.fd, lambda c=c: self._readable(c))  # type: ignore[misc]

    def _refuse(self, conn: socket.socket, uid: int) -> None:
        share = MAX_CLIENTS if uid == 0 else PER_UID
        self._note("refused", "too many connections (uid %d, %d open); refusing", uid, len(self.clients))
        try:
            conn.send(reply_line({"ok": False, "error": "Busy",
                                  "message": f"too many connections (uid {uid} may hold {share}); try again"}))
        except OSError:
            pass
        conn.close()

    # --- reading the request ----------------------------------------------------------------------

    def _readable(self, c: _Client) -> None:
        want = SUBSCRIBER_TALK if c.streaming else MAX_REQUEST + 1 - len(c.inbuf)
        try:
            data = c.sock.recv(want)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        if c.streaming:  # a subscriber has nothing more to say
            c.talked += len(data)
            if c.talked > SUBSCRIBER_TALK:
                self._note("dropped_talkative", "a subscriber (uid %d) keeps sending; closed", c.uid)
                self._close(c)
            return
        end = data.find(b"\n")
        if end < 0:
            c.inbuf += data
            if len(c.inbuf) > MAX_REQUEST:
                self._bad(c, ApiError("BadRequest", f"request longer than {MAX_REQUEST} bytes"))
            return
        line = bytes(c.inbuf) + data[:end]
        c.inbuf = bytearray()
        c.answered = True  # what follows the newline is never read
        self.loop.remove_reader(c.fd)
        if len(line) > MAX_REQUEST:
            self._bad(c, ApiError("BadRequest", f"request longer than {MAX_REQUEST} bytes"))
            return
        self._serve(c, line)

    def _bad(self, c: _Client, e: ApiError) -> None:
        self._note("bad_requests", "bad request from uid %d: %s", c.uid, e.message)
        c.answered = True
        self.loop.remove_reader(c.fd)
        self._reply(c, {"ok": False, "error": e.name, "message": e.message})

    def _serve(self, c: _Client, line: bytes) -> None:
        try:
            request = parse_request(line)
        except ApiError as e:
            self._bad(c, e)
            return
        if c.uid == 0:
            self._answer(c, request)
            return
        # Non-root requests wait their turn: one per loop turn, so a burst of expensive ones
        # (`logs` reads and encodes up to 512 KiB) cannot hold root's requests behind it.
        c.deadline = self.loop.now() + REPLY_DEADLINE
        self.queue.append((c, request))
        if len(self.queue) == 1:
            self.loop.call_later(0, self._next_queued)

    def _next_queued(self) -> None:
        while self.queue:
            c, request = self.queue.popleft()
            if self._open(c):
                self._answer(c, request)
                break
        if self.queue:
            self.loop.call_later(0, self._next_queued)

    def _answer(self, c: _Client, request: dict[str, Any]) -> None:
        op = request["op"]
        try:
            if ops.OPERATIONS[op].mutating and c.uid != 0 and not (self.may_mutate and self.may_mutate(c.uid, op)):
                raise ApiError("AccessDenied", f"{op} needs root or a capsule granted capabilities.manage = "
                                               f'[ "{op}" ] (caller uid {c.uid})')
            if op == "subscribe":
                c.streaming, c.deadline = True, float("inf")
                self.loop.add_reader(c.fd, lambda: self._readable(c))  # to see it leave
                self._send(c, b'{"ok": true, "result": "subscribed"}\n')
                return
            result = self._timed(op, lambda: self.handler(request, c.uid))
            if isinstance(result, Parts):
                c.deadline = self.loop.now() + REPLY_DEADLINE
                self._next_part(c, op, result.parts, [])
                return
            if op == "info" and isinstance(result, dict):
                result = {**result, "control": self.snapshot()}
            answer = {"ok": True, "result": result}
        except ApiError as e:
            answer = {"ok": False, "error": e.name, "message": e.message}
        except Exception as e:  # a bug: the client gets one line, the log a (rate-limited) traceback
            self.figures["failed"] += 1
            throttle = self.throttles.setdefault("failed", Throttle(LOG_INTERVAL))
            if throttle.ready(self.loop.now()) is not None:
                log.exception("control request %s failed", op)
            answer = {"ok": False, "error": "Failed", "message": f"{type(e).__name__}: {e}"}
        self._reply(c, answer)

    def _timed(self, op: str, fn: Callable[[], Any]) -> Any:
        """fn(), noting the longest time one call of each operation held the loop."""
        started = self.loop.now()
        try:
            return fn()
        finally:
            took = round((self.loop.now() - started) * 1000)
            self.figures[f"slowest_ms_{op}"] = max(self.figures[f"slowest_ms_{op}"], took)

    def _next_part(self, c: _Client, op: str, parts: Iterator[Callable[[], Any]], done: list[Any]) -> None:
        """Parts of a `Parts` answer for at most PART_TIME per loop turn (one at least); the list of
        them once all are there. (One part per turn made `exoctl status` of the test image's 50
        capsules, most of them stopped and cheap, take 50 turns: 1.3 s under TCG.)"""
        if not self._open(c):
            return
        began = self.loop.now()
        while True:
            part = next(parts, None)
            if part is None:
                self._reply(c, {"ok": True, "result": done})
                return
            try:
                done.append(self._timed(op, part))
            except KeyError:
                pass  # (what the part was about is gone meanwhile: a removed capsule)
            except Exception as e:
                self._reply(c, {"ok": False, "error": "Failed", "message": f"{type(e).__name__}: {e}"})
                return
            if self.loop.now() - began >= PART_TIME:
                break
        self.loop.call_later(0, lambda: self._next_part(c, op, parts, done))

    # --- writing ------------------------------------------------------------------------------------

    def publish(self, event: Event | HealthEvent) -> None:
        subscribers = [c for c in self.clients.values() if c.streaming]
        if subscribers:
            line = reply_line({"event": event.to_json()})
            for c in subscribers:
                self._send(c, line)

    def _reply(self, c: _Client, obj: dict[str, Any]) -> None:
        c.closing = True
        c.deadline = self.loop.now() + REPLY_DEADLINE
        self._send(c, reply_line(obj))

    def _send(self, c: _Client, data: bytes) -> None:
        if not self._open(c):
            return
        if not c.outbuf:  # the common case: straight to the kernel, nothing kept
            try:
                sent = c.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(c)
                return
            data = data[sent:]
            if not data:
                if c.closing:
                    self._close(c)
                return
        if len(c.outbuf) + len(data) > OUTBUF_CLIENT:
            self._note("dropped_over_share", "a client (uid %d) does not read its %s; closed", c.uid,
                       "events" if c.streaming else "answer")
            self._close(c)
            return
        if not c.outbuf:
            self.loop.add_writer(c.fd, lambda: self._flush(c))
        c.outbuf += data
        self.outbuf_total += len(data)
        if self.outbuf_total > OUTBUF_TOTAL:
            self._trim()

    def _trim(self) -> None:
        """Over the total: drop the clients holding more than their share, largest first."""
        holders = sorted((c for c in self.clients.values() if c.outbuf), key=lambda c: len(c.outbuf), reverse=True)
        share = OUTBUF_TOTAL // max(1, len(holders))
        for c in holders:
            if self.outbuf_total <= OUTBUF_TOTAL:
                return
            if len(c.outbuf) > share:
                self._note("dropped_over_share", "a client (uid %d) holds %d unsent bytes, over its share; closed",
                           c.uid, len(c.outbuf))
                self._close(c)

    def _flush(self, c: _Client) -> None:
        try:
            while c.outbuf:
                sent = c.sock.send(c.outbuf)
                del c.outbuf[:sent]
                self.outbuf_total -= sent
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(c)
            return
        self.loop.remove_writer(c.fd)
        if c.closing:
            self._close(c)

    # --- deadlines and closing ----------------------------------------------------------------------

    def _sweep(self) -> None:
        if self.closed:
            return
        self.loop.call_later(SWEEP_INTERVAL, self._sweep)
        now = self.loop.now()
        for c in [c for c in self.clients.values() if c.deadline <= now]:
            if c.answered:
                self._note("dropped_slow", "a client (uid %d) did not read its answer within %g s; closed",
                           c.uid, REPLY_DEADLINE)
            else:
                self._note("dropped_idle", "a client (uid %d) sent no complete request within %g s; closed",
                           c.uid, REQUEST_DEADLINE)
            self._close(c)

    def _open(self, c: _Client) -> bool:
        """Whether `c` is still a client: its fd may have been closed and given to a new one."""
        return self.clients.get(c.fd) is c

    def _close(self, c: _Client) -> None:
        if not self._open(c):
            return
        del self.clients[c.fd]
        self.loop.remove_reader(c.fd)
        self.loop.remove_writer(c.fd)
        self.by_uid[c.uid] -= 1
        if self.by_uid[c.uid] <= 0:
            del self.by_uid[c.uid]
        self.outbuf_total -= len(c.outbuf)
        c.outbuf = bytearray()
        c.sock.close()
        self._resume_accepting()  # an fd is free again

    def close(self) -> None:
        self.closed = True
        for c in list(self.clients.values()):
            self._close(c)
        for sock in self.listeners:
            if self.accepting:
                self.loop.remove_reader(sock.fileno())
            sock.close()
        self.accepting = False


# --- the operations -------------------------------------------------------------------------------

class _LogFile(Protocol):
    @property
    def path(self) -> Path: ...


class _Capsule(Protocol):
    @property
    def log(self) -> _LogFile | None: ...

    @property
    def degraded(self) -> str: ...


class _Host(Protocol):
    @property
    def cgroup_root(self) -> Path | None: ...


class Supervised(Protocol):
    """What the operations use of the supervisor (exo_init/pid1/supervisor.py): typed by what is
    called, so this module depends on exactly that."""

    @property
    def config(self) -> Config: ...
    @property
    def capsules(self) -> Mapping[str, _Capsule]: ...
    @property
    def hostname(self) -> str: ...
    @property
    def manifest_source(self) -> str: ...
    @property
    def boot_reported(self) -> bool: ...
    @property
    def orphans_reaped(self) -> int: ...
    @property
    def shutdown_action(self) -> str | None: ...
    @property
    def host(self) -> _Host: ...
    @property
    def capsule_set(self) -> int: ...
    @property
    def changes(self) -> int: ...
    def status(self, name: str, stats: bool = True) -> dict[str, object]: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def freeze(self, name: str, frozen: bool) -> None: ...
    def checkpoint(self, name: str) -> None: ...
    def manager(self, uid: int, op: str) -> str | None: ...
    def degrade(self, name: str, reason: str) -> None: ...
    def reload(self) -> dict[str, list[str]]: ...
    def request_shutdown(self, action: ShutdownAction) -> None: ...


def line_count(request: dict[str, Any], default: int = 50) -> int:
    count = request.get("lines", default)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_LINES:
        raise ApiError("BadRequest", f'"lines" must be an integer from 0 to {MAX_LINES}')
    return count


def make_handler(sup: Supervised, generations: Switcher | None = None) -> Handler:
    """The operations, on the supervisor and the generation switcher (None: no generation store)."""

    def capsule(request: dict[str, Any]) -> str:
        name = request.get("name")
        if not isinstance(name, str):
            raise ApiError("BadRequest", 'this operation needs "name"')
        if name not in sup.capsules:
            raise ApiError("NoSuchCapsule", f"no capsule named {name[:100]!r}")
        return name

    def status(request: dict[str, Any]) -> Any:
        """One capsule (`name`), some (`names`: those that exist) or all, by name; `"stats": false`
        leaves out the cgroup figures, which cost PID 1 a dozen file reads per capsule: with them,
        several capsules are answered in parts (PART_TIME of them per turn), without them at once."""
        stats = request.get("stats", True)
        names = request.get("names")
        if not isinstance(stats, bool) or not (names is None or (
                isinstance(names, list) and all(isinstance(n, str) for n in names))):
            raise ApiError("BadRequest", '"stats" must be a boolean and "names" a list of capsule names')
        if "name" in request:
            return sup.status(capsule(request), stats)
        chosen = sorted(sup.capsules) if names is None else sorted(n for n in set(names) if n in sup.capsules)
        if not stats:
            return [sup.status(name, False) for name in chosen]
        return Parts(iter([partial(sup.status, name) for name in chosen]))

    def handle(request: dict[str, Any], uid: int) -> Any:
        op = request["op"]
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "info":
            return {"pid": os.getpid(), "pid1": sup.config.pid1, "hostname": sup.hostname,
                    "manifest": sup.manifest_source, "boot_complete": sup.boot_reported,
                    "orphans_reaped": sup.orphans_reaped, "shutting_down": sup.shutdown_action,
                    "cgroups": str(sup.host.cgroup_root) if sup.host.cgroup_root else None,
                    "capsules": len(sup.capsules), "capsule_set": sup.capsule_set, "changes": sup.changes,
                    "degraded": {name: r.degraded for name, r in sup.capsules.items() if r.degraded},
                    "generation": generations.running if generations is not None else None}
        if op == "status":
            return status(request)
        if op == "logs":
            name = capsule(request)
            count = line_count(request)
            logfile = sup.capsules[name].log
            if logfile is None:
                return {"path": None, "lines": []}
            return {"path": str(logfile.path), "lines": tail(logfile.path, count)}
        if op == "degrade":
            reason = request.get("reason", "")
            if not isinstance(reason, str) or len(reason) > 500 or not reason.isprintable():
                raise ApiError("BadRequest", '"reason" must be a printable string of at most 500 characters')
            name = capsule(request)
            sup.degrade(name, reason)
            return sup.status(name)
        if op in ("switch", "rollback", "generations", "events"):
            return generation_op(generations, request)
        actions: dict[str, Callable[[str], None]] = {
            "start": sup.start, "stop": sup.stop, "restart": sup.restart,
            "freeze": lambda name: sup.freeze(name, True), "thaw": lambda name: sup.freeze(name, False),
            "checkpoint": sup.checkpoint,
        }
        try:
            if op in actions:  # (the reply to a change is the capsule's status without its cgroup
                name = capsule(request)  # figures: reading a dozen files before the loop turns again
                by = sup.manager(uid, op) if uid != 0 else None  # delayed the capsule's readiness)
                actions[op](name)
                if by is not None and generations is not None:  # a capsule's `manage` grant: on the record
                    generations.record(kind="action", action=op, capsule=name, by=by)
                return sup.status(name, stats=False)
            if op == "reload":
                return sup.reload()
            if op in ("poweroff", "reboot"):
                sup.request_shutdown(ShutdownAction(op))
                return {"action": op}
        except ManifestError as e:
            raise ApiError("InvalidManifest", str(e)) from None
        except NotApplicable as e:
            raise ApiError("NotApplicable", str(e)) from None
        except OSError as e:
            raise ApiError("Failed", f"{op}: {e.strerror or e}") from None
        raise ApiError("UnknownOperation", f"unknown operation {op!r}")

    return handle


def generation_op(switcher: Switcher | None, request: dict[str, Any]) -> Any:
    """switch / rollback / generations / events (see exo_init/pid1/switch.py)."""
    op = request["op"]
    if switcher is None:
        raise ApiError("Failed", f"{op}: no generation store (see exo_init's log)")
    try:
        if op == "generations":
            return switcher.listing()
        if op == "events":
            return switcher.events(line_count(request))
        if op == "rollback":
            return switcher.rollback()
        target, try_mode, probation = request.get("target"), request.get("try", True), request.get("probation")
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < 10 ** 9:
            target = str(target)
        if not isinstance(target, str) or not target or "\0" in target:
            raise ApiError("BadRequest", 'switch needs "target": a manifest path or a generation number')
        if not isinstance(try_mode, bool) or not (probation is None or (
            isinstance(probation, int | float) and not isinstance(probation, bool) and -1e9 < probation < 1e9
        )):
            raise ApiError("BadRequest", '"try" must be a boolean and "probation" a number of seconds')
        if probation is None:
            return switcher.switch(target, try_mode)
        return switcher.switch(target, try_mode, float(probation))
    except ManifestError as e:
        raise ApiError("InvalidManifest", str(e)) from None
    except OSError as e:
        raise ApiError("Failed", f"{op}: {e.strerror or e}") from None

