"""A capsule's run-time record and its state machine.

Every state change goes through `CapsuleRuntime.change_state()`, which checks the transition
against `TRANSITIONS` and returns the event for the supervisor to publish.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass, field

from exo_init.pid1.logsink import LogSink
from exo_init.pid1.loop import Timer
from exo_init.pid1.manifest import Capsule, CapsuleType, Restart


class State(enum.StrEnum):
    STOPPED = "stopped"     # not running, not scheduled
    STARTING = "starting"   # spawned, waiting for readiness
    READY = "ready"         # running and ready (dependents may start)
    STOPPING = "stopping"   # stop signal sent, waiting for the cgroup to empty
    EXITED = "exited"       # ran to completion (oneshot success, or no restart wanted)
    BACKOFF = "backoff"     # failed; a restart is scheduled
    FAILED = "failed"       # given up: bad config, spawn failure, start limit, dependency failed


TRANSITIONS: dict[State, frozenset[State]] = {
    State.STOPPED: frozenset({State.STARTING, State.FAILED}),
    State.STARTING: frozenset({State.READY, State.STOPPING, State.BACKOFF, State.FAILED, State.EXITED}),
    State.READY: frozenset({State.STOPPING, State.BACKOFF, State.FAILED, State.EXITED}),
    State.STOPPING: frozenset({State.STOPPED, State.FAILED}),
    State.EXITED: frozenset({State.STARTING, State.STOPPED, State.FAILED}),
    State.BACKOFF: frozenset({State.STARTING, State.STOPPED, State.FAILED}),
    State.FAILED: frozenset({State.STARTING, State.STOPPED}),
}

RUNNING = frozenset({State.STARTING, State.READY, State.STOPPING})
SETTLED = frozenset({State.READY, State.EXITED, State.FAILED})


@dataclass(frozen=True)
class Event:
    capsule: str
    old: State
    new: State
    reason: str
    time: float  # wall clock

    def to_json(self) -> dict[str, object]:
        return {"capsule": self.capsule, "old": self.old.value, "new": self.new.value,
                "reason": self.reason, "time": self.time}


def backoff_delay(policy: Restart, consecutive_failures: int) -> float:
    """Exponential backoff: delay, 2*delay, 4*delay, ... capped at max_delay."""
    if consecutive_failures <= 0:
        return 0.0
    return float(min(policy.max_delay, policy.delay * (2 ** (consecutive_failures - 1))))


def start_limit_hit(policy: Restart, failure_times: deque[float], now: float) -> bool:
    """True when limit_burst failures happened within limit_interval (prunes old entries)."""
    while failure_times and now - failure_times[0] > policy.limit_interval:
        failure_times.popleft()
    return len(failure_times) >= policy.limit_burst


@dataclass(frozen=True)
class Identity:
    """Who a capsule's main process runs as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


@dataclass
class CapsuleRuntime:
    name: str
    spec: Capsule | None
    load_error: str | None = None
    state: State = State.STOPPED
    wanted: bool = False
    pid: int | None = None
    pgid: int | None = None                # the session/process group of the last run (no-cgroup mode)
    started_at: float | None = None        # monotonic, when the current run was spawned
    ready_at: float | None = None
    state_since: float = field(default_factory=time.monotonic)
    restarts: int = 0
    consecutive_failures: int = 0
    failure_times: deque[float] = field(default_factory=deque)
    last_exit: str = ""
    reason: str = ""
    status_text: str = ""
    next_spec: Capsule | None = None       # a changed spec to apply once stopped (reload)
    remove_when_stopped: bool = False
    restart_requested: bool = False
    last_watchdog: float | None = None
    err_fd: int | None = None
    log_fd: int | None = None
    notify_fd: int | None = None
    identity: Identity | None = None       # of the current (or last) run
    scoped: bool = False                   # the current run is isolated: its main pid is the namespace's init
    log: LogSink | None = None
    timers: dict[str, Timer] = field(default_factory=dict)
    cpu_sample: tuple[float, int] | None = None
    cpu_percent: float = 0.0

    @property
    def is_oneshot(self) -> bool:
        return self.spec is not None and self.spec.type is CapsuleType.ONESHOT

    def satisfies_dependents(self) -> bool:
        return self.state is State.READY or (self.state is State.EXITED and self.last_exit == "exited 0")

    def change_state(self, new: State, reason: str = "") -> Event:
        old = self.state
        if new not in TRANSITIONS[old]:
            raise AssertionError(f"capsule {self.name}: invalid transition {old} -> {new} ({reason})")
        self.state = new
        self.reason = reason
        self.state_since = time.monotonic()
        return Event(self.name, old, new, reason, time.time())

    def set_timer(self, key: str, timer: Timer) -> None:
        self.cancel_timer(key)
        self.timers[key] = timer

    def cancel_timer(self, key: str) -> None:
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
