"""Readiness channels: the sd_notify datagram socket and probes (file exists, TCP port open)."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from exo_init.lib.openat2 import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
from exo_init.pid1.syscalls import setns

CLONE_NEWNET = 0x40000000

SCM_CREDENTIALS = 2
SO_PASSCRED = 16
_UCRED = struct.Struct("iII")
# Messages read per wake-up, then back to the loop: the socket is 0666, and senders flooding it
# (each message costs PID 1 a look at the sender's cgroup) must not keep PID 1 in this loop.
NOTIFY_PER_TURN = 64


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

    def receive(self, limit: int = NOTIFY_PER_TURN) -> list[tuple[int, int, dict[str, str]]]:
        """Pending messages, at most `limit` (the rest wake the loop again):
        [(sender pid, sender uid, {"READY": "1", ...})]."""
        out: list[tuple[int, int, dict[str, str]]] = []
        while len(out) < limit:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except BlockingIOError:
                return out
            pid, uid = 0, -1
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS and len(payload) >= _UCRED.size:
                    pid, uid, _gid = _UCRED.unpack(payload[: _UCRED.size])
            fields: dict[str, str] = {}
            for line in data.decode(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key.strip()] = value
            out.append((pid, uid, fields))
        return out

    def close(self) -> None:
        self.sock.close()


def probe_file(path: str, root: str | None = None) -> bool:
    """Whether `path` exists; with `root` (a scoped capsule's /proc/PID/root), as the capsule sees
    it: resolved by openat2(RESOLVE_IN_ROOT), so a symlink the capsule made cannot make PID 1 look
    at the host's files."""
    if root is None:
        return os.path.exists(path)
    try:
        dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fd = openat2(dirfd, path.lstrip("/") or ".", os.O_PATH | os.O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return False
    finally:
        os.close(dirfd)
    os.close(fd)
    return True


def probe_tcp(host: str, port: int, netns: str | None = None) -> bool:
    """Whether HOST:PORT accepts a connection; with `netns` (a scoped capsule's /proc/PID/ns/net),
    from inside the capsule's network namespace (a listener of the host's does not count). A
    connect to a local port is answered at once (accepted or refused); 0.2 s bounds the rest."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = _socket_in(netns, family) if netns is not None else socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return False
    with sock:
        sock.settimeout(0.2)
        try:
            sock.connect((host, port))
        except OSError:
            return False
        return True


_own_netns: int | None = None


def _socket_in(netns: str, family: int) -> socket.socket:
    """A TCP socket created in another network namespace (a socket belongs to the namespace it
    was made in); PID 1 is single-threaded, and returns to its own namespace at once."""
    global _own_netns
    if _own_netns is None:
        _own_netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(target, CLONE_NEWNET)
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            setns(_own_netns, CLONE_NEWNET)
    finally:
        os.close(target)
