"""Misbehaving workloads for the cgroup quota tests (run as capsules in the test image)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time


def mem() -> None:
    """Allocate 8 MiB at a time, touching every page, until the OOM killer stops us."""
    chunks = []
    while True:
        chunks.append(bytearray(8 << 20))
        print(f"allocated {len(chunks) * 8} MiB", flush=True)
        time.sleep(0.02)


def fork() -> None:
    """Fork sleeping children until fork fails (pids.max), report, and keep them."""
    children = 0
    while True:
        try:
            pid = os.fork()
        except OSError as e:
            print(f"fork failed after {children} children: {e.strerror}", flush=True)
            break
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        children += 1
    while True:
        time.sleep(3600)


def cpu() -> None:
    """Spin forever."""
    n = 0
    while True:
        n += 1


def crash() -> None:
    print("crashing", flush=True)
    time.sleep(0.2)
    sys.exit(3)


def idle() -> None:
    while True:
        print("heartbeat", flush=True)
        time.sleep(1)


def pressure() -> None:
    """Hold argv[2] MiB, then allocate and free 4 MiB over and over: above memory.high, every
    allocation makes the kernel reclaim (nothing to reclaim without swap) and throttle us, which
    is memory pressure (PSI) in our cgroup."""
    held = bytearray(int(sys.argv[2]) << 20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    print(f"holding {len(held) >> 20} MiB", flush=True)
    while True:
        chunk = bytearray(4 << 20)
        for i in range(0, len(chunk), 4096):
            chunk[i] = 1
        del chunk


def stubborn() -> None:
    """Ignore SIGTERM: only the stop timeout's SIGKILL ends us."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ignoring SIGTERM", flush=True)
    while True:
        time.sleep(3600)


def watchdog() -> None:
    """sd_notify READY=1, then WATCHDOG=1 every 0.25 s: forever (argv[2] = 0) or argv[2] times, then
    nothing more (the process keeps running: only the missed watchdog can end it)."""
    pings = int(sys.argv[2])
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
        print(f"ready; WATCHDOG_USEC={os.environ.get('WATCHDOG_USEC')}", flush=True)
        sent = 0
        while pings == 0 or sent < pings:
            s.sendto(b"WATCHDOG=1", os.environ["NOTIFY_SOCKET"])
            sent += 1
            time.sleep(0.25)
    print(f"sent WATCHDOG=1 {sent} times; silent from now on", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    {"mem": mem, "fork": fork, "cpu": cpu, "crash": crash, "idle": idle, "pressure": pressure,
     "stubborn": stubborn, "watchdog": watchdog}[sys.argv[1]]()
