"""Liveness checks: a capsule's `health` section, run by PID 1 while the capsule is ready.

One `HealthCheck` per run, created when the capsule becomes ready and cancelled when the run ends.
Every `interval` seconds it runs one check, never blocking the loop:

    tcp, file         the readiness probes (readiness.py, through `Host.probe`), in the capsule's
                      network namespace and root for an isolated capsule (bounded at 0.2 s)
    notify-watchdog   whether a WATCHDOG=1 arrived within the last interval (the runner notes it)
    exec              `argv` forked by `Host.spawn_check` into the capsule's cgroup, namespaces and
                      root, as its uid; its exit comes back through the supervisor's reaper, and a
                      check still running after `timeout` is killed (its process group) and fails

`threshold` failures in a row turn the check `failing`: one `HealthEvent` goes to the supervisor's
health listeners (the control socket's subscribers: the Sentry, which applies `health.action`).
The first success after that turns it `ok` again, with another event. PID 1 itself never acts on
a failing check: what to do is the Sentry's policy.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Protocol

from exo_init.pid1.capsule import RunEnd
from exo_init.pid1.loop import Loop, Timer
from exo_init.pid1.manifest import Health, HealthKind


class Verdict(enum.StrEnum):
    PENDING = "pending"   # no check has completed yet
    OK = "ok"
    FAILING = "failing"   # `threshold` failures in a row


@dataclass(frozen=True)
class HealthEvent:
    """A check turned failing, or ok again: streamed to control subscribers beside state events."""

    capsule: str
    health: Verdict
    failures: int
    detail: str
    action: str
    network: bool
    time: float  # wall clock

    def to_json(self) -> dict[str, object]:
        return {"capsule": self.capsule, "health": self.health.value, "failures": self.failures,
                "detail": self.detail, "action": self.action, "network": self.network, "time": self.time}


class Checked(Protocol):
    """What a check needs from its runner and the supervisor."""

    name: str
    loop: Loop

    def probe_health(self, spec: Health) -> bool: ...

    def spawn_health(self, spec: Health) -> int: ...

    def watchdog_age(self) -> float: ...

    def kill_health(self, pid: int) -> None: ...

    def report_health(self, event: HealthEvent) -> None: ...


class HealthCheck:
    def __init__(self, owner: Checked, spec: Health) -> None:
        self.owner = owner
        self.spec = spec
        self.verdict = Verdict.PENDING
        self.failures = 0        # in a row
        self.checks = 0
        self.last = ""           # what the last failed check said
        self.running: int | None = None  # the pid of a running exec check
        self.timer: Timer | None = None
        self.deadline: Timer | None = None
        self.cancelled = False
        self.timer = owner.loop.call_later(spec.interval, self._tick)

    def cancel(self) -> None:
        """The run ended: no more checks; a running exec check is killed (its exit is still reaped)."""
        self.cancelled = True
        for timer in (self.timer, self.deadline):
            if timer is not None:
                timer.cancel()
        if self.running is not None:
            self.owner.kill_health(self.running)

    def _tick(self) -> None:
        self.timer = None
        if self.cancelled:
            return
        if self.spec.kind is HealthKind.EXEC:
            if self.running is not None:  # the last one is killed but not reaped yet
                self._next()
                return
            try:
                self.running = self.owner.spawn_health(self.spec)
            except OSError as e:
                self._result(False, f"exec check not started: {e.strerror or e}")
                return
            self.deadline = self.owner.loop.call_later(self.spec.timeout, self._timed_out)
            return
        if self.spec.kind is HealthKind.NOTIFY_WATCHDOG:
            age = self.owner.watchdog_age()
            self._result(age <= self.spec.interval, f"no WATCHDOG=1 for {age:.1f} s")
            return
        ok = self.owner.probe_health(self.spec)
        what = f"{self.spec.host}:{self.spec.port} refused" if self.spec.kind is HealthKind.TCP \
            else f"{self.spec.path} missing"
        self._result(ok, what)

    def _timed_out(self) -> None:
        self.deadline = None
        if self.running is not None:
            self.owner.kill_health(self.running)  # its exit (SIGKILL) is the failed result

    def exited(self, pid: int, status: int, timed_out: bool = False) -> None:
        """The exec check `pid` ended with wait status `status` (the reaper)."""
        if pid != self.running:
            return
        self.running = None
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        else:
            timed_out = True
        if self.cancelled:
            return
        if timed_out:
            self._result(False, f"{self.spec.argv[0]} still running after {self.spec.timeout:g} s")
            return
        end = RunEnd.from_status(status)
        self._result(end.clean, f"{self.spec.argv[0]} {end}")

    def _result(self, ok: bool, why: str) -> None:
        self.checks += 1
        if ok:
            self.failures = 0
            if self.verdict is not Verdict.OK:
                recovered = self.verdict is Verdict.FAILING
                self.verdict = Verdict.OK
                if recovered:
                    self._report("check passes again")
        else:
            self.failures += 1
            self.last = why
            if self.failures >= self.spec.threshold and self.verdict is not Verdict.FAILING:
                self.verdict = Verdict.FAILING
                self._report(why)
        self._next()

    def _next(self) -> None:
        if not self.cancelled:
            self.timer = self.owner.loop.call_later(self.spec.interval, self._tick)

    def _report(self, detail: str) -> None:
        self.owner.report_health(HealthEvent(self.owner.name, self.verdict, self.failures, detail,
                                             self.spec.action.value, self.spec.network, time.time()))

    def status(self) -> dict[str, object]:
        return {"kind": self.spec.kind.value, "state": self.verdict.value, "failures": self.failures,
                "checks": self.checks, "last_failure": self.last, "action": self.spec.action.value,
                "network": self.spec.network}
