"""A capsule's state machine and the typed values its runner and the scheduler exchange.

Every state change goes through `CapsuleRunner.change_state()` (runner.py), which checks the
transition against `TRANSITIONS`; the supervisor publishes the resulting `Event`. What the
scheduler should do with a capsule is one `Goal`, not a set of flags; a configuration change
waiting for the capsule to stop is one `Pending` value; how a run ended is one `RunEnd`.
"""

from __future__ import annotations

import enum
import os
import signal
from collections import deque
from dataclasses import dataclass

from exo_init.pid1.manifest import Capsule, Restart

SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}


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
STARTABLE = frozenset({State.STOPPED, State.EXITED, State.FAILED})


class Goal(enum.StrEnum):
    """What the scheduler does with a capsule.

    DOWN: not wanted; stopped once no running capsule depends on it.
    UP: wanted; started from `stopped` once its dependencies are ready. A run that settled in
        `exited` or `failed` stays settled (a oneshot that succeeded is not run again).
    AGAIN: wanted, and started even from `exited` or `failed` (exoctl start/restart, a changed
        definition, a capsule whose earlier definition failed); becomes UP once started.
    """

    DOWN = "down"
    UP = "up"
    AGAIN = "again"


@dataclass(frozen=True)
class Replace:
    """Once stopped, the capsule continues with this definition (a reload changed it)."""

    spec: Capsule


@dataclass(frozen=True)
class Remove:
    """Once stopped, the capsule is forgotten (a reload removed it)."""


Pending = Replace | Remove | None


class Abort(enum.Enum):
    """Why exo_init ends a run itself, and the signal it sends to the main process."""

    WATCHDOG = signal.SIGABRT   # the capsule missed its watchdog (SIGABRT: it may dump core)
    NOT_READY = signal.SIGKILL  # no readiness within readiness.timeout


@dataclass(frozen=True)
class RunEnd:
    """How a run's main process ended: `exit_code` (>= 0) or `signal` (> 0), or aborted by exo_init."""

    exit_code: int | None = None
    signal: int | None = None
    aborted: Abort | None = None

    @classmethod
    def from_status(cls, status: int, scoped: bool = False) -> RunEnd:
        """A scoped capsule's namespace init reports a killed main process as 128+signal
        (tini's convention): that is translated back."""
        code = os.waitstatus_to_exitcode(status)
        if scoped and code > 128 and code - 128 in SIGNAL_NAMES:
            return cls(signal=code - 128)
        if code >= 0:
            return cls(exit_code=code)
        return cls(signal=-code)

    @property
    def clean(self) -> bool:
        return self.exit_code == 0

    def __str__(self) -> str:
        if self.aborted is Abort.WATCHDOG:
            return "watchdog timeout"
        if self.aborted is Abort.NOT_READY:
            return "not ready in time"
        if self.signal is not None:
            return f"killed by {SIGNAL_NAMES.get(self.signal, str(self.signal))}"
        return f"exited {self.exit_code}"


@dataclass(frozen=True)
class Event:
    capsule: str
    old: State
    new: State
    reason: str
    time: float  # wall clock
    final: bool = False  # failed for good: a runtime's deterministic failure (out of its budget, ...)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"capsule": self.capsule, "old": self.old.value, "new": self.new.value,
                                  "reason": self.reason, "time": self.time}
        if self.final:
            out["final"] = True
        return out


def backoff_delay(policy: Restart, consecutive_failures: int) -> float:
    """Exponential backoff: delay, 2*delay, 4*delay, ... capped at max_delay."""
    if consecutive_failures <= 0:
        return 0.0
    return float(min(policy.max_delay, policy.delay * (2 ** min(consecutive_failures - 1, 64))))


def start_limit_hit(policy: Restart, failure_times: deque[float], now: float) -> bool:
    """True when limit_burst failures happened within limit_interval (prunes old entries)."""
    while failure_times and now - failure_times[0] > policy.limit_interval:
        failure_times.popleft()
    return len(failure_times) >= policy.limit_burst
