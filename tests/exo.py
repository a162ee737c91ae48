"""Run a real exo_init (child-subreaper mode) on the host for tests: real processes, real
signals, the real control socket, and real cgroup2 grouping where the host offers it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from exo_init.client.control import call, subscribe

REPO = Path(__file__).resolve().parent.parent
UNIFIED = Path("/sys/fs/cgroup/unified")


def host_cgroup_parent() -> Path | None:
    """A writable cgroup2 directory on this host (hybrid: /sys/fs/cgroup/unified), if any."""
    for cand in (UNIFIED, Path("/sys/fs/cgroup")):
        if (cand / "cgroup.procs").exists() and os.access(cand, os.W_OK) and \
                (cand / "cgroup.subtree_control").exists():
            return cand
    return None


def unconfined(capsules: dict[str, Any]) -> dict[str, Any]:
    """Capsules that declare no capabilities get `host = true`: the supervision tests run host
    programs (this Python, temporary files). The scope tests declare their capabilities."""
    return {name: ({"capabilities": {"host": True}, **c} if isinstance(c, dict) else c)
            for name, c in capsules.items()}


def manifest_json(capsules: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "hostname": "test", "capsules": unconfined(capsules)})


class ExoInit:
    def __init__(self, tmp: Path, manifest: dict[str, Any], cgroups: bool = True) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        # Short (AF_UNIX paths are limited to 108 bytes) and reachable by other users.
        self.runtime = Path(tempfile.mkdtemp(prefix="exo-run-"))
        self.runtime.chmod(0o755)
        self.manifest_path = tmp / "manifest.json"
        self.write_manifest(manifest)
        self.events: list[dict[str, Any]] = []
        parent = host_cgroup_parent() if cgroups else None
        self.cgroup_root = parent / f"exo-test-{os.getpid()}-{time.monotonic_ns()}" if parent else None
        argv = [sys.executable, "-m", "exo_init", "--manifest", str(self.manifest_path),
                "--runtime-dir", str(self.runtime)]
        argv += ["--cgroup-root", str(self.cgroup_root)] if self.cgroup_root else ["--no-cgroups"]
        self.output = tmp / "exo_init.out"
        self._out = open(self.output, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        self.wait_for((self.runtime / "control.sock").exists, 10, "control socket")
        self.subscribed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()
        if not self.subscribed.wait(10):
            raise AssertionError(f"could not subscribe to exo_init's events:\n{self.log()}")

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        doc = {"version": 1, "hostname": "test", **manifest}
        if isinstance(doc.get("capsules"), dict):
            doc["capsules"] = unconfined(doc["capsules"])
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.manifest_path)

    def _watch(self) -> None:
        try:
            for event in subscribe(self.runtime / "control.sock", on_subscribed=self.subscribed.set):
                self.events.append({**event, "seen": time.monotonic()})
        except (OSError, ValueError, ConnectionError):
            return

    def call(self, op: str, **kw: Any) -> Any:
        return call(self.runtime / "control.sock", {"op": op, **kw})

    def status(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status", name=name)
        return result

    def wait_for(self, cond: Any, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"exo_init exited ({self.proc.returncode}) waiting for {what}:\n{self.log()}")
            if time.monotonic() > end:
                raise AssertionError(f"{what} not reached within {timeout} s\n{self.log()}")
            time.sleep(0.02)

    def wait_state(self, name: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> bool:
            nonlocal last
            last = self.status(name)
            return bool(last["state"] == state)

        try:
            self.wait_for(check, timeout, f"{name} {state}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nlast status of {name}: {last}") from None
        return last

    def transitions(self, name: str) -> list[tuple[str, float]]:
        return [(e["new"], e["time"]) for e in self.events if e["capsule"] == name and "new" in e]

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"exo_init did not exit within {timeout} s of {sig}:\n{self.log()}") from None
        self._out.close()
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.stop()
        shutil.rmtree(self.runtime, ignore_errors=True)
        if self.cgroup_root is not None and self.cgroup_root.exists():
            # belt and braces for a failed test: kill and remove what is left
            for leaf in sorted(self.cgroup_root.rglob("cgroup.kill"), reverse=True):
                try:
                    leaf.write_text("1")
                except OSError:
                    pass
            for d in sorted((p for p in self.cgroup_root.rglob("*") if p.is_dir()), reverse=True):
                for _ in range(50):
                    try:
                        d.rmdir()
                        break
                    except OSError:
                        time.sleep(0.02)
