"""A simulated machine for the scheduler's unit tests: the real Supervisor and runners, driven by
a fake clock (`SimLoop`) and a fake operating system (`SimHost`, the one boundary object every
system call of the supervisor goes through). No process is started, no time passes.

A simulated process lives from `launch` until it exits: by `sim.exit(name, code)`, by a signal it
does not ignore (`SimProc.ignores`), or by `kill_all` of its capsule. Its exit is queued and the
supervisor's reaper collects it, as with a real SIGCHLD.
"""

from __future__ import annotations

import io
import itertools
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exo_init.pid1.capsule import State
from exo_init.pid1.config import Config
from exo_init.pid1.host import CheckCommand, Launched, LaunchError
from exo_init.pid1.loop import Loop
from exo_init.pid1.manifest import Health, HealthKind, Manifest, Readiness, ReadinessKind, parse_manifest
from exo_init.pid1.plan import UserEntry, Users
from exo_init.pid1.spawn import SpawnPlan
from exo_init.pid1.supervisor import Supervisor

USERS = Users(users={"root": UserEntry(0, 0, "/root"), "nobody": UserEntry(65534, 65534, "/nonexistent")},
              groups={"root": 0, "nogroup": 65534}, members={})


class SimLoop(Loop):
    """Timers on a clock that moves only when the test says so; fd readers kept by number."""

    def __init__(self) -> None:
        self.t = 0.0
        super().__init__(clock=lambda: self.t)
        self.readers: dict[int, Callable[[], None]] = {}

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self.readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        self.readers.pop(fd, None)

    def turn(self, fds: list[int]) -> None:
        """One loop turn at the current time: the callbacks of `fds`, then the timers due."""
        self.turns += 1
        for fd in fds:
            callback = self.readers.get(fd)
            if callback is not None:
                callback()
        self.run_timers(self.t)


@dataclass
class SimProc:
    name: str
    pid: int
    plan: SpawnPlan
    ignores: frozenset[int] = frozenset()
    alive: bool = True


@dataclass
class SimHost:
    """The fake OS. `spawn_errors[name]` makes the exec fail; `launch_errors[name]` the launch."""

    cgroup_root: Path | None = None
    spawn_errors: dict[str, str] = field(default_factory=dict)
    launch_errors: dict[str, str] = field(default_factory=dict)
    exit_at_once: dict[str, int] = field(default_factory=dict)        # runs that exit with CODE right after exec
    ignores: dict[str, frozenset[int]] = field(default_factory=dict)  # signals a capsule's processes ignore
    probes_ok: set[str] = field(default_factory=set)                  # "file:PATH", "tcp:HOST:PORT" that succeed
    procs: dict[int, SimProc] = field(default_factory=dict)
    signals: list[tuple[str, int]] = field(default_factory=list)      # (capsule, signal) sent to a main pid
    launches: list[tuple[float, str]] = field(default_factory=list)
    exits: list[tuple[int, int]] = field(default_factory=list)        # (pid, wait status) to be reaped
    fd_data: dict[int, list[bytes]] = field(default_factory=dict)     # pending pipe contents; [] = EOF next
    fd_owner: dict[int, tuple[str, str]] = field(default_factory=dict)  # fd -> (capsule, "err"|"log"|"notify")
    cpu: dict[str, int] = field(default_factory=dict)                 # capsule -> its cgroup's CPU usage (usec)
    queries: list[tuple[str, str]] = field(default_factory=list)      # (query, capsule): cgroup reads made
    clock: Callable[[], float] = lambda: 0.0
    _pids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    _fds: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    # --- Host ---------------------------------------------------------------------------------

    def launch(self, name: str, plan: SpawnPlan) -> Launched:
        if name in self.launch_errors:
            raise LaunchError(self.launch_errors[name])
        pid = next(self._pids)
        self.procs[pid] = SimProc(name, pid, plan, self.ignores.get(name, frozenset()))
        self.launches.append((self.clock(), name))
        err, logfd = next(self._fds), next(self._fds)
        self.fd_owner[err], self.fd_owner[logfd] = (name, "err"), (name, "log")
        self.fd_data[err] = [self.spawn_errors[name].encode()] if name in self.spawn_errors else []
        self.fd_data[logfd] = [b"hello\n"]
        notify = None
        if plan.notify_fd is not None:
            notify = next(self._fds)
            self.fd_owner[notify] = (name, "notify")
        if name in self.spawn_errors:
            self._end(pid, 127 << 8)
        elif name in self.exit_at_once:
            self._end(pid, self.exit_at_once[name] << 8)
        return Launched(pid, err, logfd, notify)

    def spawn_error(self, fd: int) -> str | None:
        chunks = self.fd_data.pop(fd, [])
        return b"".join(chunks).decode() or None

    def reap(self) -> Iterator[tuple[int, int]]:
        while self.exits:
            yield self.exits.pop(0)

    def read(self, fd: int, size: int) -> bytes | None:
        chunks = self.fd_data.get(fd)
        if chunks is None:
            return b""
        if not chunks:
            owner = self.fd_owner.get(fd)
            if owner is not None and owner[1] == "log" and any(
                    p.alive for p in self.procs.values() if p.name == owner[0]):
                return None  # the writer is alive: nothing now
            return b""
        return chunks.pop(0)

    def close(self, fd: int) -> None:
        self.fd_data.pop(fd, None)

    def signal(self, pid: int, sig: int) -> None:
        proc = self.procs.get(pid)
        if proc is None or not proc.alive:
            return
        self.signals.append((proc.name, int(sig)))
        if sig not in proc.ignores and sig != signal.SIGCONT:
            self._end(pid, int(sig))

    def program_started(self, init_pid: int) -> bool:
        return True

    def kill_all(self, name: str, pgid: int | None) -> None:
        for proc in list(self.procs.values()):
            if proc.name == name and proc.alive:
                self._end(proc.pid, signal.SIGKILL)

    def populated(self, name: str) -> bool:
        self.queries.append(("populated", name))
        return any(p.alive for p in self.procs.values() if p.name == name)

    def leftovers(self, name: str) -> list[int]:
        return [p.pid for p in self.procs.values() if p.name == name and p.alive]

    def forget(self, name: str) -> None:
        pass

    def probe(self, readiness: Readiness | Health, ns_pid: int | None) -> bool:
        key = f"file:{readiness.path}" if readiness.kind in (ReadinessKind.FILE, HealthKind.FILE) else \
            f"tcp:{readiness.host}:{readiness.port}"
        return key in self.probes_ok

    def spawn_check(self, name: str, check: CheckCommand) -> int:
        raise OSError(38, "the simulation runs no check commands")

    def kill_check(self, pid: int) -> None:
        pass

    def cpu_usage(self, name: str) -> int | None:
        self.queries.append(("cpu_usage", name))
        return self.cpu.get(name)

    def stats(self, name: str) -> dict[str, object] | None:
        self.queries.append(("stats", name))
        return {"cpu_usage_usec": self.cpu[name]} if name in self.cpu else None

    def freeze(self, name: str, frozen: bool) -> None:
        pass

    def owner_of(self, pid: int) -> str | None:
        proc = self.procs.get(pid)  # (as /proc/PID/cgroup: only while the process exists)
        return proc.name if proc is not None and proc.alive else None

    def teardown(self) -> None:
        pass

    # --- the simulation -----------------------------------------------------------------------

    def _end(self, pid: int, status: int) -> None:
        proc = self.procs[pid]
        if proc.alive:
            proc.alive = False
            self.exits.append((pid, status))

    def main(self, name: str) -> SimProc:
        live = [p for p in self.procs.values() if p.name == name and p.alive]
        assert live, f"{name} has no live process"
        return live[-1]

    def readable(self, fd: int) -> bool:
        kind = self.fd_owner.get(fd, ("", ""))[1]
        chunks = self.fd_data.get(fd)
        if kind == "err":
            return True  # the exec result is there at once
        if chunks:
            return True
        return kind == "log" and not any(p.alive for p in self.procs.values()
                                         if p.name == self.fd_owner[fd][0])


class Sim:
    """A Supervisor over a SimHost and a SimLoop; `trace` collects (time, capsule, new state)."""

    def __init__(self, tmp: Path, capsules: dict[str, Any], **host: Any) -> None:
        self.loop = SimLoop()
        self.host = SimHost(**host)
        self.host.clock = lambda: self.loop.t
        config = Config(manifest=tmp / "manifest.json", runtime_dir=tmp / "run", log_dir=tmp / "log",
                        cgroup_root=None, pid1=False)
        self.console = io.StringIO()
        self.sup = Supervisor(config, self.console, loop=self.loop, host=self.host, users=lambda: USERS)
        self.trace: list[tuple[float, str, str]] = []
        self.sup.listeners.append(lambda e: self.trace.append((round(self.loop.t, 3), e.capsule, e.new.value)))
        self.sup.apply(self.manifest(capsules))
        self.settle()

    def close(self) -> None:
        """Close every runner's log file (a thousand-capsule test holds a thousand of them)."""
        for runner in self.sup.capsules.values():
            runner.release()

    @staticmethod
    def manifest(capsules: dict[str, Any]) -> Manifest:
        """Unconfined capsules, `/bin/true` unless they say otherwise (a runtime capsule has no argv)."""
        host = {name: {**({} if "runtime" in c else {"argv": ["/bin/true"]}), "capabilities": {"host": True}, **c}
                for name, c in capsules.items()}
        return parse_manifest({"version": 1, "capsules": host}, "sim")

    def settle(self) -> None:
        """Deliver everything that is ready now (pipes, exits, timers due now: a loop turn's work),
        until nothing changes."""
        for _ in range(10_000):
            fds = [fd for fd in list(self.loop.readers) if self.host.readable(fd)]
            due = (deadline := self.loop.next_deadline()) is not None and deadline <= self.loop.t
            if not fds and not self.host.exits and not due:
                return
            self.loop.turn(fds)
            self.sup.reap()
        raise AssertionError("the simulation does not settle")

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass: every timer fires at its own deadline, followed by what it caused."""
        end = self.loop.t + seconds
        while (deadline := self.loop.next_deadline()) is not None and deadline <= end:
            self.loop.t = max(self.loop.t, deadline)
            self.loop.turn([])
            self.settle()
        self.loop.t = end
        self.settle()

    def exit(self, name: str, code: int) -> None:
        self.host._end(self.host.main(name).pid, code << 8)
        self.settle()

    def notify(self, name: str, **fields: str) -> None:
        self.sup.capsules[name].on_notify(fields)
        self.settle()

    def state(self, name: str) -> State:
        return self.sup.capsules[name].state

    def states(self) -> dict[str, str]:
        return {name: r.state.value for name, r in sorted(self.sup.capsules.items())}

    def events(self, name: str) -> list[tuple[float, str]]:
        return [(t, s) for t, n, s in self.trace if n == name]
