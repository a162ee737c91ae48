"""A hostile client of PID 1's control socket (issue 13 #1, #7): each mode is one attack, run as
any user or from inside a capsule granted `control`; it prints one JSON line of what it saw.

    hostile.py SOCKET idle N HOLD            open N connections, say nothing, hold them HOLD s
    hostile.py SOCKET trickle HOLD           send a request one byte every 0.5 s
    hostile.py SOCKET noread N HOLD REQUEST  send REQUEST on N connections, never read the answers
    hostile.py SOCKET subscribers N HOLD     subscribe on N connections, never read the events
    hostile.py SOCKET bad N                  N requests of each bad kind; the answers' error names
    hostile.py SOCKET extra                  a ping followed by more requests on one connection
    hostile.py SOCKET flood SECONDS          connect and close as fast as possible
    hostile.py NOTIFY notify SECONDS         send sd_notify datagrams to NOTIFY as fast as possible
    hostile.py SOCKET latency SECONDS        `info` every 50 ms; the worst and median round trip
                                             (SIGTERM ends it sooner)
    hostile.py @FILE                         the arguments above from FILE, a JSON list, once it
                                             exists (a capsule's argv is fixed: the booted-image
                                             test starts it, then writes FILE)

Standalone (the standard library only), so it runs in any capsule with Python. Every wait is
bounded; the socket closed by the server is what the attacks look for, and is reported.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter
from typing import Any

BAD = {
    "not UTF-8": b'{"op": "ping\xff\xfe"}\n',
    "not JSON": b"{not json\n",
    "nested 15000 deep": b"[" * 15000 + b"\n",
    "a 5000-digit number": b'{"op": "events", "lines": ' + b"9" * 5000 + b"}\n",
    "not an object": b"[1, 2]\n",
    "no op": b'{"name": "x"}\n',
    "lines out of range": b'{"op": "events", "lines": 100000000000000000000}\n',
    "NUL in a path": b'{"op": "switch", "target": "/etc/\\u0000x"}\n',
    "too long": b'{"op": "' + b"x" * 20000 + b'"}\n',
}


def connect(path: str, timeout: float = 5.0, wait: bool = True) -> socket.socket:
    """A connection. `wait`: as a patient client, waiting up to `timeout` for room in the server's
    backlog (a blocking connect bounded by SO_SNDTIMEO); else failing at once (EAGAIN) when it is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if wait:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(timeout), 0))
        else:
            s.settimeout(timeout)
        s.connect(path)
        s.settimeout(timeout)
    except OSError:
        s.close()
        raise
    return s


def read_all(s: socket.socket, timeout: float) -> bytes:
    """Everything until EOF (or `timeout`)."""
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (TimeoutError, BlockingIOError):
            break
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def hold(socks: list[socket.socket], seconds: float) -> dict[str, object]:
    """Wait up to `seconds` for the server to close each socket, reading nothing (POLLRDHUP says
    the server closed it even while its answer sits unread). Returns how many it closed, when."""
    start = time.monotonic()
    by_fd = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLRDHUP)
    closed_at: list[float] = []
    while by_fd and time.monotonic() - start < seconds:
        for fd, _event in poller.poll(200):
            poller.unregister(fd)
            del by_fd[fd]
            closed_at.append(round(time.monotonic() - start, 2))
    for s in socks:
        s.close()
    return {"closed_by_server": len(closed_at), "still_open": len(by_fd),
            "first_closed_after": min(closed_at, default=None), "last_closed_after": max(closed_at, default=None)}


def open_many(path: str, n: int, payload: bytes = b"") -> tuple[list[socket.socket], Counter[str]]:
    socks: list[socket.socket] = []
    outcome: Counter[str] = Counter()
    for _ in range(n):
        try:
            s = connect(path, 2.0)
        except OSError as e:
            outcome[errno.errorcode.get(e.errno or 0, str(e))] += 1
            continue
        try:
            if payload:
                s.sendall(payload)
        except OSError:
            pass  # refused meanwhile: its "Busy" is still there to read
        socks.append(s)
    # A refusal ("Busy") is sent at accept; give the server up to a second to answer each socket.
    # In `noread` mode an answer is expected on every held socket: there, only "Busy" counts.
    answered = _answered(socks, 1.0)
    held = []
    for s in socks:
        peek = answered.get(s.fileno())
        if peek is None or (payload and b'"Busy"' not in peek and peek):
            held.append(s)
        elif b'"Busy"' in peek:
            outcome["refused Busy"] += 1
            s.close()
        else:
            outcome["closed at once"] += 1
            s.close()
    outcome["held"] = len(held)
    return held, outcome


def _answered(socks: list[socket.socket], seconds: float) -> dict[int, bytes]:
    """fd -> what the server sent (peeked, left unread; b"" for a close) within `seconds`."""
    by_fd = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLRDHUP)
    out: dict[int, bytes] = {}
    end = time.monotonic() + seconds
    while len(out) < len(by_fd) and time.monotonic() < end:
        for fd, _event in poller.poll(max(1, int((end - time.monotonic()) * 1000))):
            poller.unregister(fd)
            try:
                out[fd] = by_fd[fd].recv(200, socket.MSG_PEEK)
            except OSError:
                out[fd] = b""
    return out


def latency(path: str, seconds: float) -> dict[str, object]:
    """`info` every 50 ms for `seconds` (SIGTERM ends it sooner, with the figures so far).

    A heartbeat thread wakes every 10 ms and notes when it could not (the gaps): in a VM under
    TCG on a shared host the whole guest stops for a while at times, and no process in it, PID 1
    included, can answer then. Each call's latency is reported raw and without the part of it
    inside such a gap ("unstalled"); run this at real-time priority, so a gap means the guest,
    not this process, did not run."""
    times: list[tuple[float, float]] = []
    gaps: list[tuple[float, float]] = []
    failures: Counter[str] = Counter()
    stop = [time.monotonic() + seconds]
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.__setitem__(0, 0.0))
    print(STARTED, flush=True)  # (from now on SIGTERM ends it with its figures)

    def heartbeat() -> None:
        last = time.monotonic()
        while time.monotonic() < stop[0]:
            time.sleep(0.01)
            now = time.monotonic()
            if now - last > 0.1:
                gaps.append((last + 0.01, now))
            last = now

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    while time.monotonic() < stop[0]:
        t0 = time.monotonic()
        try:
            s = connect(path, 5.0)
            s.sendall(b'{"op": "info"}\n')
            reply = read_all(s, 5.0)
            s.close()
            if b'"ok": true' not in reply:
                failures["no answer within 5 s"] += 1
        except OSError as e:
            failures[errno.errorcode.get(e.errno or 0, str(e))] += 1
        times.append((t0, time.monotonic()))
        time.sleep(0.05)
    beat.join(1.0)

    def stalled(t0: float, t1: float) -> float:
        return sum(max(0.0, min(t1, g1) - max(t0, g0)) for g0, g1 in gaps)

    raw = sorted(round((t1 - t0) * 1000, 1) for t0, t1 in times) or [0.0]
    unstalled = sorted(round((t1 - t0 - stalled(t0, t1)) * 1000, 1) for t0, t1 in times) or [0.0]
    return {"mode": "latency", "calls": len(times), "worst_ms": raw[-1], "p50_ms": raw[len(raw) // 2],
            "worst_unstalled_ms": unstalled[-1], "p50_unstalled_ms": unstalled[len(unstalled) // 2],
            "guest_stalls": len(gaps), "longest_stall_ms": round(max((g1 - g0 for g0, g1 in gaps), default=0) * 1000),
            "failures": dict(failures)}


REPORT = "HOSTILE "
STARTED = "LATENCY started"


def parse_report(output: str) -> dict[str, Any]:
    """The (last) JSON line this script printed, from its output (in a capsule's log: after a
    timestamp, and after the reports of earlier runs)."""
    line = [line for line in output.splitlines() if REPORT in line][-1]
    result: dict[str, Any] = json.loads(line.split(REPORT, 1)[1])
    return result


def main(argv: list[str]) -> dict[str, object]:
    path, mode, args = argv[0], argv[1], argv[2:]
    if mode == "idle":
        held, outcome = open_many(path, int(args[0]))
        return {"mode": mode, "uid": os.getuid(), **outcome, **hold(held, float(args[1]))}
    if mode == "trickle":
        s = connect(path)
        start = time.monotonic()
        sent = 0
        request = b'{"op": "info"}'
        while time.monotonic() - start < float(args[0]):
            try:
                s.send(request[sent % len(request):sent % len(request) + 1])
                sent += 1
            except OSError:
                break
            readable, _, _ = select.select([s], [], [], 0.5)
            if readable:
                break
        answer = read_all(s, 1.0)
        s.close()
        return {"mode": mode, "bytes_sent": sent, "closed_after": round(time.monotonic() - start, 2),
                "answer": answer.decode(errors="replace")[:200]}
    if mode == "noread":
        held, outcome = open_many(path, int(args[0]), args[2].encode() + b"\n")
        return {"mode": mode, **outcome, **hold(held, float(args[1]))}
    if mode == "subscribers":
        held, outcome = open_many(path, int(args[0]), b'{"op": "subscribe"}\n')
        return {"mode": mode, **outcome, **hold(held, float(args[1]))}
    if mode == "bad":
        answers: dict[str, Counter[str]] = {}
        for kind, payload in BAD.items():
            names: Counter[str] = Counter()
            for _ in range(int(args[0])):
                try:
                    s = connect(path)
                    s.sendall(payload)
                    reply = read_all(s, 5.0)
                    s.close()
                    names[json.loads(reply.split(b"\n")[0]).get("error", "ok") if reply else "no answer"] += 1
                except (OSError, ValueError) as e:
                    names[type(e).__name__] += 1
            answers[kind] = names
        return {"mode": mode, "answers": answers}
    if mode == "extra":
        s = connect(path)
        s.sendall(b'{"op": "ping"}\n{"op": "ping"}\n{"op": "reboot"}\n' + b"x" * 1000)
        reply = read_all(s, 5.0)
        s.close()
        return {"mode": mode, "answer_lines": reply.count(b"\n"), "answer": reply.decode(errors="replace")[:200]}
    if mode == "flood":
        count, errors = 0, Counter[str]()
        end = time.monotonic() + float(args[0])
        while time.monotonic() < end:
            try:
                connect(path, 1.0, wait=False).close()
                count += 1
            except OSError as e:
                errors[errno.errorcode.get(e.errno or 0, str(e))] += 1
        return {"mode": mode, "connects": count, "errors": dict(errors)}
    if mode == "notify":
        sent, errors = 0, Counter[str]()
        end = time.monotonic() + float(args[0])
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as d:
            d.settimeout(1.0)
            while time.monotonic() < end:
                try:
                    d.sendto(b"STATUS=flood\nWATCHDOG=1\nREADY=1", path)
                    sent += 1
                except OSError as e:
                    errors[errno.errorcode.get(e.errno or 0, str(e))] += 1
        return {"mode": mode, "sent": sent, "errors": dict(errors)}
    if mode == "latency":
        return latency(path, float(args[0]))
    raise SystemExit(f"hostile.py: unknown mode {mode!r}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 1 and args[0].startswith("@"):  # (waiting for the file, up to 5 minutes)
        deadline = time.monotonic() + 300
        while not os.path.exists(args[0][1:]):
            if time.monotonic() > deadline:
                raise SystemExit(f"hostile.py: no {args[0][1:]} within 300 s")
            time.sleep(0.1)
        with open(args[0][1:]) as f:
            args = [str(a) for a in json.load(f)]
    print(REPORT + json.dumps(main(args)), flush=True)
