"""Readiness the way exo_init means it, for the units `exoctl export-systemd` writes.

systemd knows sd_notify and "the exec succeeded"; exo_init also takes a notification fd (s6 style)
and file and TCP probes. The exported units run this program (by path, standard library only, so
it needs no PYTHONPATH) to get the same meaning:

    systemd_ready.py fd N -- PROGRAM ARGS...   (Type=notify, NotifyAccess=all)
        gives PROGRAM a pipe as fd N and execs it, keeping the unit's main PID; a helper process
        sends READY=1 (with MAINPID=) to $NOTIFY_SOCKET when a newline arrives on the pipe
    systemd_ready.py file PATH                 (ExecStartPost=)
    systemd_ready.py tcp HOST PORT             (ExecStartPost=)
        poll every 0.1 s until PATH exists / HOST:PORT accepts a connection, then exit 0
        (TimeoutStartSec= bounds the wait, as readiness.timeout bounds exo_init's)
"""

from __future__ import annotations

import os
import socket
import sys
import time

POLL = 0.1


def notify(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), path)


def wait_for_newline(fd: int) -> bool:
    while True:
        data = os.read(fd, 512)
        if not data:
            return False
        if b"\n" in data:
            return True


def fd_mode(number: int, argv: list[str]) -> None:
    """Exec `argv` with a pipe's write end as fd `number`; a detached grandchild (re-parented to
    PID 1, so nobody's zombie) watches the read end."""
    main_pid = os.getpid()
    r, w = os.pipe()
    watcher = os.fork()
    if watcher == 0:
        os.close(w)
        if os.fork() == 0:
            if wait_for_newline(r):
                notify(f"READY=1\nMAINPID={main_pid}")
            os._exit(0)
        os._exit(0)
    os.waitpid(watcher, 0)
    os.close(r)
    if w != number:
        os.dup2(w, number)  # (dup2 leaves the new fd inheritable)
        os.close(w)
    else:
        os.set_inheritable(w, True)
    os.execv(argv[0], argv)


def probe(kind: str, args: list[str]) -> bool:
    if kind == "file":
        return os.path.exists(args[0])
    try:
        with socket.create_connection((args[0], int(args[1])), timeout=1.0):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> None:
    if len(argv) >= 4 and argv[0] == "fd" and argv[1].isdigit() and argv[2] == "--":
        fd_mode(int(argv[1]), argv[3:])
    elif (len(argv) == 2 and argv[0] == "file") or (len(argv) == 3 and argv[0] == "tcp" and argv[2].isdigit()):
        while not probe(argv[0], argv[1:]):
            time.sleep(POLL)
    else:
        sys.stderr.write("usage: systemd_ready.py fd N -- PROGRAM [ARGS...] | file PATH | tcp HOST PORT\n")
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
