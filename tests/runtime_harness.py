"""Running a capsule runtime (`python3 -m exo_init.runtimes.NAME`) as PID 1 would, for the host
tests of every runtime (tests/test_wasm.py, tests/test_crush_capsule.py): its configuration in
$EXO_RUNTIME, a real $NOTIFY_SOCKET whose messages are collected."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exo_init.lib.runtime import ENV_CONFIG, RuntimeConfig, parse_metrics
from tests.exo import REPO


@dataclass
class Ran:
    code: int
    out: str
    err: str
    notes: list[dict[str, str]] = field(default_factory=list)   # every sd_notify message, parsed

    @property
    def failure(self) -> str:
        return next((n["EXO_FAILURE"] for n in reversed(self.notes) if "EXO_FAILURE" in n), "")

    @property
    def last_metrics(self) -> dict[str, Any]:
        for note in reversed(self.notes):
            if "EXO_METRICS" in note:
                return {k: v.to_json() for k, v in parse_metrics(note["EXO_METRICS"]).items()}
        return {}


def _drain(sock: socket.socket, notes: list[dict[str, str]]) -> None:
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        notes.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))


def run_runtime(name: str, workdir: Path, options: Mapping[str, Any], grants: Mapping[str, Any], *,
                state: bool = True, timeout: float = 60,
                until: Callable[[list[dict[str, str]]], bool] | None = None, sig: int = signal.SIGTERM) -> Ran:
    """Run runtime `name` with `options` and `grants`; with `until`, send it `sig` once the
    notifications collected so far satisfy `until` (then wait for its exit)."""
    state_dir = workdir / "state"
    state_dir.mkdir(exist_ok=True)
    config = RuntimeConfig(runtime=name, capsule="test", options=dict(options), grants=dict(grants),
                           state_dir=str(state_dir) if state else None)
    sock_path = workdir / "notify.sock"
    sock_path.unlink(missing_ok=True)
    notes: list[dict[str, str]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        env = {**os.environ, ENV_CONFIG: config.to_json(), "NOTIFY_SOCKET": str(sock_path), "PYTHONPATH": str(REPO)}
        with subprocess.Popen([sys.executable, "-m", f"exo_init.runtimes.{name}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as proc:
            if until is not None:
                sent, deadline = False, time.monotonic() + timeout
                while proc.poll() is None and not sent and time.monotonic() < deadline:
                    ready, _, _ = select.select([sock], [], [], 0.05)
                    if ready:
                        sock.setblocking(False)
                        _drain(sock, notes)
                        sock.setblocking(True)
                        if until(notes):
                            proc.send_signal(sig)
                            sent = True
            out, err = proc.communicate(timeout=timeout)
        sock.setblocking(False)
        _drain(sock, notes)
    return Ran(proc.returncode, out, err, notes)
