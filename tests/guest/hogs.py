"""Misbehaving workloads for the cgroup quota tests (run as capsules in the test image)."""

from __future__ import annotations

import os
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


if __name__ == "__main__":
    {"mem": mem, "fork": fork, "cpu": cpu, "crash": crash, "idle": idle}[sys.argv[1]]()
