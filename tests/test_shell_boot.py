"""The console shell's first prompt waits for PID 1's "boot complete" (corecaps/sh.py
`wait_for_boot`), against a real exo_init on this host: it does not return while a capsule is
still starting, returns once the last one is ready, and at once when PID 1 cannot be asked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from corecaps.sh import wait_for_boot
from tests.exo import ExoInit


def test_waits_for_boot_complete_then_returns(tmp_path: Path) -> None:
    flag = tmp_path / "ready-now"
    e = ExoInit(tmp_path, {"capsules": {
        "quick": {"argv": ["/bin/sleep", "100"]},
        "slow": {"argv": ["/bin/sleep", "100"], "readiness": {"kind": "file", "path": str(flag), "timeout": 120}},
    }})
    try:
        e.wait_state("quick", "ready")
        waiter = threading.Thread(target=wait_for_boot, args=(e.runtime / "control.sock", 120.0), daemon=True)
        waiter.start()
        waiter.join(2.0)
        assert waiter.is_alive(), "returned before boot complete"
        assert e.call("info")["boot_complete"] is False
        flag.touch()
        waiter.join(60.0)
        assert not waiter.is_alive(), f"still waiting 60 s after the last capsule was ready:\n{e.log()}"
        assert e.call("info")["boot_complete"] is True
    finally:
        e.close()


def test_returns_at_once_without_pid1(tmp_path: Path) -> None:
    started = time.monotonic()
    wait_for_boot(tmp_path / "no-such.sock", 120.0)
    assert time.monotonic() - started < 30.0
