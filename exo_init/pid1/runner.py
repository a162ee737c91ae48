"""One capsule's runner: its state machine, its runs, and everything a run owns.

A `CapsuleRunner` holds the capsule's state (changed only by `change_state`, checked against
capsule.TRANSITIONS), its goal and pending configuration change, and the resources of the current
run: the main pid, the pipes (error, log, notification) and the timers (readiness, probe,
watchdog, stop, backoff). It decides what a process event means for the capsule — ready, exited,
failed, backoff, stopped — and reports every state change and every "something may be startable
now" to its `Context`, the supervisor, which publishes events and runs the scheduler.

Life of one run:
    start()  -> launch_plan (plan.py) -> host.launch (cgroup, pipes, fork; spawn.py/scope.py)
             -> state starting; the error pipe, log pipe and notification fd are watched
    exec ok  -> readiness: started | notify (Context routes sd_notify) | fd | file/tcp probe
             -> state ready (dependents may start)
    exited() (from the supervisor's reaper) -> exited | backoff (restart timer) | failed
    begin_stop() -> stop signal, stop timeout escalates to SIGKILL of the whole cgroup -> stopped

A runtime capsule (exo_init/lib/runtime.py has the protocol) also reports figures against its
budgets (`EXO_METRICS=`, kept in `metrics` and shown by `status`) and, when it ends badly, one line
saying why (`EXO_FAILURE=`): that line is the run's reason, and an exit with EXIT_DETERMINISTIC (out
of fuel, a trap, an ungranted import, a bad module) makes the capsule `failed` without a restart,
whatever its restart policy.

Invariants: a run's fds and timers are released by `_cleanup_run` (timers, notification fd),
the log pipe at its EOF, the error pipe when read; a pid is either this runner's `pid` (its exit
is handled here) or handed to the supervisor's abandoned set (reaped, only logged).
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable

from exo_init.lib.runtime import (
    EXIT_DETERMINISTIC,
    NOTIFY_FAILURE,
    NOTIFY_METRICS,
    Metric,
    ProtocolError,
    one_line,
    parse_metrics,
)
from exo_init.pid1.capsule import (
    STARTABLE,
    TRANSITIONS,
    Abort,
    Event,
    Goal,
    Pending,
    Remove,
    Replace,
    RunEnd,
    State,
    backoff_delay,
    start_limit_hit,
)
from exo_init.pid1.health import HealthCheck, HealthEvent
from exo_init.pid1.host import CheckCommand, Host, LaunchError
from exo_init.pid1.log import log
from exo_init.pid1.logsink import LogSink
from exo_init.pid1.loop import Loop, Timer
from exo_init.pid1.manifest import Capsule, CapsuleType, Health, ReadinessKind, RestartPolicy, Runtime
from exo_init.pid1.plan import Facts, PlanError, launch_plan

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object

PROBE_INTERVAL = 0.1
EMPTY_POLL = 0.02
EMPTY_WAIT = 10.0     # how long killed processes may take to leave the cgroup
STOP_RESEND = 0.1     # a stop signal sent before a small init's program ran is sent again after this
LOG_CHUNK = 65536     # one pipe read per wake-up: every capsule's pipe and the control socket get turns
LOG_RATE = 1 << 20    # log bytes per second (timestamps included) a capsule's output may cost PID 1 ...
LOG_BURST = 4 << 20   # ... after a burst of this much; beyond, PID 1 stops reading its pipe for a while
LOG_DRAIN = 16        # reads of a pipe whose main process exited (what it wrote before it died)
CPU_WINDOW = 0.5      # seconds: readings closer than this do not replace the CPU % (two pollers)


class Context(Protocol):
    """What a runner needs from the supervisor."""

    loop: Loop
    host: Host

    def publish(self, runner: CapsuleRunner, event: Event) -> None: ...

    def schedule(self) -> None: ...

    def facts(self, runner: CapsuleRunner) -> Facts: ...

    def claim_uid(self, runner: CapsuleRunner, uid: int | None) -> None: ...

    def watch_pid(self, pid: int, runner: CapsuleRunner) -> None: ...

    def abandon_pid(self, pid: int, why: str) -> None: ...

    def remove(self, runner: CapsuleRunner) -> None: ...

    def touched(self, runner: CapsuleRunner) -> None: ...

    def watch_helper(self, pid: int, on_exit: Callable[[int], None]) -> None: ...

    def publish_health(self, runner: CapsuleRunner, event: HealthEvent) -> None: ...


class CapsuleRunner:
    def __init__(self, ctx: Context, name: str, spec: Capsule | None, log_sink: LogSink) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.host = ctx.host
        self.name = name
        self._spec = spec
        self.log = log_sink
        self.load_error: str | None = None
        self.state = State.STOPPED
        self.state_since = self.loop.now()
        self.reason = ""
        self._goal = Goal.DOWN
        self.pending: Pending = None
        self.fail_when_stopped = ""  # the run is being stopped because a required capsule failed: why
        # the current (or last) run
        self.pid: int | None = None
        self.pgid: int | None = None           # its session/process group (no-cgroup mode)
        self.uid: int | None = None
        self.gid: int | None = None
        self.scoped = False                    # its main pid is the init of its own PID namespace
        self.small_init = False                # ... and that init is the small one (dumb-init)
        self.started_at: float | None = None   # loop clock
        self.ready_at: float | None = None
        self.last_exit: RunEnd | None = None
        self.status_text = ""
        self.metrics: dict[str, Metric] = {}   # a runtime capsule's last reported figures
        self.runtime_failure = ""              # ... and the line saying why its run failed
        self.last_watchdog: float | None = None
        self.health: HealthCheck | None = None  # the run's liveness check (from ready on)
        self.degraded = ""                      # why the Sentry marked it degraded ("": it is not)
        self.err_fd: int | None = None
        self.log_fd: int | None = None
        self.notify_fd: int | None = None
        self.timers: dict[str, Timer] = {}
        # across runs
        self.restarts = 0
        self.consecutive_failures = 0
        self.failure_times: deque[float] = deque()
        self.cpu_sample: tuple[float, int] | None = None
        self.cpu_percent = 0.0
        self.log_credit = float(LOG_BURST)      # the log token bucket: bytes PID 1 will still read now
        self.log_credit_at = self.loop.now()
        self.log_paused = 0                     # times its output was throttled

    # --- state --------------------------------------------------------------------------------

    @property
    def goal(self) -> Goal:
        return self._goal

    @goal.setter
    def goal(self, goal: Goal) -> None:
        self._goal = goal
        self.ctx.touched(self)  # (what the scheduler must look at depends on goal, spec and state)

    @property
    def spec(self) -> Capsule | None:
        return self._spec

    @spec.setter
    def spec(self, spec: Capsule | None) -> None:
        self._spec = spec
        self.ctx.touched(self)

    @property
    def wanted(self) -> bool:
        return self.goal is not Goal.DOWN

    @property
    def own_uid(self) -> bool:
        """Whether the run's uid is the capsule's own dynamic uid (a scoped capsule without `user`):
        then every process with that uid is this capsule's."""
        spec = self.spec
        return self.uid is not None and spec is not None and spec.user is None and spec.capabilities.isolated

    @property
    def is_oneshot(self) -> bool:
        return self.spec is not None and self.spec.type is CapsuleType.ONESHOT

    def satisfies_dependents(self) -> bool:
        return self.state is State.READY or (self.state is State.EXITED and self.last_exit is not None
                                             and self.last_exit.clean)

    def change_state(self, new: State, reason: str = "", final: bool = False) -> None:
        old = self.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise AssertionError(f"capsule {self.name}: invalid transition {old} -> {new} ({reason})")
        self.state, self.reason, self.state_since = new, reason, self.loop.now()
        self.ctx.touched(self)
        self.ctx.publish(self, Event(self.name, old, new, reason, time.time(), final))

    def want(self, again: bool = False) -> None:
        """Make the capsule wanted; `again` also restarts it from exited or failed."""
        self.goal = Goal.AGAIN if again or self.goal is Goal.AGAIN else Goal.UP

    def set_timer(self, key: str, delay: float, callback: Callable[[], None]) -> None:
        self.cancel_timer(key)
        self.timers[key] = self.loop.call_later(delay, callback)

    def cancel_timer(self, key: str) -> None:
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _fired(self, key: str) -> None:
        self.timers.pop(key, None)

    # --- start --------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch a run (the scheduler calls this once the dependencies are ready)."""
        assert self.state in STARTABLE and self.spec is not None
        if isinstance(self.pending, Replace):
            self.spec, self.pending = self.pending.spec, None
        spec = self.spec
        assert spec is not None
        self.goal = Goal.UP
        self.fail_when_stopped = ""
        self.change_state(State.STARTING, "starting")
        try:
            plan = launch_plan(spec, self.ctx.facts(self))
            self.ctx.claim_uid(self, plan.uid)
            self.gid = plan.gid
            run = self.host.launch(self.name, plan)
        except (PlanError, LaunchError) as e:
            self.fail(str(e))
            return
        self.pid, self.pgid, self.err_fd = run.pid, run.pid, run.err_fd
        self.log_fd, self.notify_fd = run.log_fd, run.notify_fd
        self.started_at, self.ready_at = self.loop.now(), None
        self.scoped = plan.scope is not None
        self.small_init = plan.scope is not None and plan.ns_init is not None
        self.status_text = ""
        usage = self.host.cpu_usage(self.name)  # the run's CPU % counts from here (note_cpu)
        self.cpu_sample, self.cpu_percent = (None if usage is None else (self.loop.now(), usage)), 0.0
        self.metrics, self.runtime_failure = {}, ""
        self.ctx.watch_pid(run.pid, self)
        self.loop.add_reader(run.log_fd, lambda: self.on_log(run.log_fd))
        self.loop.add_reader(run.err_fd, lambda: self.on_exec_result(run.err_fd))
        if run.notify_fd is not None:
            notify_fd = run.notify_fd
            self.loop.add_reader(notify_fd, lambda: self.on_notify_fd(notify_fd))
        if spec.readiness.timeout > 0 and not self.is_oneshot:
            self.set_timer("ready", spec.readiness.timeout, self._ready_timeout)

    def on_exec_result(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        if self.err_fd != fd:
            return
        self.err_fd = None
        error = self.host.spawn_error(fd)
        if error is not None:
            # The child exits 127 after reporting; its exit is reaped, but the capsule has failed
            # already: a missing program or a bad working directory will not fix itself.
            self._abandon("failed spawn")
            self._cleanup_run()
            self.fail(error)
            return
        self._exec_succeeded()

    def _exec_succeeded(self) -> None:
        assert self.spec is not None
        if self.is_oneshot:
            return
        kind = self.spec.readiness.kind
        if kind is ReadinessKind.STARTED:
            self.ready("started")
        elif kind in (ReadinessKind.FILE, ReadinessKind.TCP):
            self._probe()
        if self.spec.watchdog_sec > 0:
            self.last_watchdog = self.loop.now()
            self._arm_watchdog()

    def fail(self, reason: str) -> None:
        """Give up on the capsule (a deterministic failure: bad grant, spawn error, dependency)."""
        self.goal = Goal.DOWN
        self.change_state(State.FAILED, reason)
        log.error("capsule %r: %s", self.name, reason)
        self.ctx.schedule()

    def requirement_failed(self, reason: str) -> None:
        """A capsule this one requires failed while this one runs (or waits to restart): the run is
        stopped as by `stop`, and the capsule ends `failed` with `reason`, not restarted."""
        self.goal = Goal.DOWN
        if self.state is State.BACKOFF:
            self.cancel_timer("backoff")
            self.change_state(State.FAILED, reason)
            log.error("capsule %r: %s", self.name, reason)
            return
        if self.state in (State.STARTING, State.READY):
            self.fail_when_stopped = reason
            self.begin_stop(reason)

    def _abandon(self, why: str) -> None:
        """Detach the current main process: its exit is reaped but changes nothing."""
        if self.pid is not None:
            self.ctx.abandon_pid(self.pid, f"{self.name}: {why}")
        self.pid = None

    # --- readiness ----------------------------------------------------------------------------

    def ready(self, how: str) -> None:
        if self.state is not State.STARTING:
            return
        self.cancel_timer("ready")
        self.cancel_timer("probe")
        self.ready_at = self.loop.now()
        self.change_state(State.READY, how)
        if self.spec is not None and self.spec.health is not None:
            self.health = HealthCheck(self, self.spec.health)
        self.ctx.schedule()

    # --- liveness (health.py's Checked) --------------------------------------------------------

    def probe_health(self, spec: Health) -> bool:
        return self.host.probe(spec, self.pid if self.scoped else None)

    def spawn_health(self, spec: Health) -> int:
        assert self.spec is not None and self.uid is not None and self.gid is not None
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **dict(self.spec.env), "EXO_CAPSULE": self.name}
        pid = self.host.spawn_check(self.name, CheckCommand(spec.argv, env, self.uid, self.gid,
                                                            self.pid if self.scoped else None))
        check = self.health
        self.ctx.watch_helper(pid, lambda status: check.exited(pid, status) if check is not None else None)
        return pid

    def kill_health(self, pid: int) -> None:
        self.host.kill_check(pid)

    def watchdog_age(self) -> float:
        now = self.loop.now()
        return now - max(self.last_watchdog or 0.0, self.ready_at or now)

    def report_health(self, event: HealthEvent) -> None:
        self.log.line(f"[exo_init] health {event.health.value}: {event.detail}")
        self.ctx.publish_health(self, event)

    def _probe(self) -> None:
        self._fired("probe")
        if self.state is not State.STARTING or self.spec is None:
            return
        if self.host.probe(self.spec.readiness, self.pid if self.scoped else None):
            self.ready(f"probe {self.spec.readiness.kind.value} ok")
        else:
            self.set_timer("probe", PROBE_INTERVAL, self._probe)

    def _ready_timeout(self) -> None:
        self._fired("ready")
        if self.state is State.STARTING and self.spec is not None:
            self.run_failed(f"not ready within {self.spec.readiness.timeout:g} s", abort=Abort.NOT_READY)

    def on_notify(self, fields: dict[str, str]) -> None:
        """An sd_notify message from one of this capsule's processes."""
        if "STATUS" in fields:
            self.status_text = fields["STATUS"]
        if self.spec is not None and self.spec.runtime is not Runtime.EXEC:
            if NOTIFY_METRICS in fields:
                try:
                    self.metrics = parse_metrics(fields[NOTIFY_METRICS])
                except ProtocolError as e:
                    log.debug("capsule %r: bad %s ignored: %s", self.name, NOTIFY_METRICS, e)
            if fields.get(NOTIFY_FAILURE):
                self.runtime_failure = one_line(fields[NOTIFY_FAILURE])
        if fields.get("WATCHDOG") == "1":
            self.last_watchdog = self.loop.now()
            self._arm_watchdog()
        if fields.get("READY") == "1" and self.spec is not None and self.spec.readiness.kind is ReadinessKind.NOTIFY:
            self.ready("sd_notify READY=1")

    def on_notify_fd(self, fd: int) -> None:
        data = self.host.read(fd, 512)
        if data is None:
            return
        if b"\n" in data:
            self.ready("notification fd")
        if not data or b"\n" in data:
            self._close_notify_fd()

    def _close_notify_fd(self) -> None:
        if self.notify_fd is not None:
            self.loop.remove_reader(self.notify_fd)
            self.host.close(self.notify_fd)
            self.notify_fd = None

    def _arm_watchdog(self) -> None:
        if self.spec is None or self.spec.watchdog_sec <= 0 or self.state not in (State.STARTING, State.READY):
            return
        self.set_timer("watchdog", self.spec.watchdog_sec, self._watchdog_missed)

    def _watchdog_missed(self) -> None:
        self._fired("watchdog")
        if self.state in (State.STARTING, State.READY) and self.pid is not None:
            log.warning("capsule %r missed its watchdog; aborting it", self.name)
            self.run_failed("watchdog timeout", abort=Abort.WATCHDOG)

    # --- logs ---------------------------------------------------------------------------------

    def on_log(self, fd: int) -> None:
        """The capsule's stdout/stderr is readable: one chunk per wake-up, within its budget. A
        capsule whose output costs more than LOG_RATE (after LOG_BURST) is throttled: PID 1 stops
        reading its pipe until the bucket refills, the pipe fills, and the capsule's own writes
        block. The cost is what PID 1 writes for it, a timestamp per line included (yes's 2-byte
        lines cost 13 times what was read). A noisy capsule slows itself down, never PID 1."""
        data = self.host.read(fd, LOG_CHUNK)
        if data is None:
            return
        if not data:
            self._log_eof(fd)
            return
        cost = max(len(data), self.log.feed(data))
        now = self.loop.now()
        self.log_credit = min(LOG_BURST, self.log_credit + (now - self.log_credit_at) * LOG_RATE) - cost
        self.log_credit_at = now
        if self.log_credit < 0:
            self.log_paused += 1
            self.loop.remove_reader(fd)
            self.set_timer(f"log{fd}", -self.log_credit / LOG_RATE, lambda: self._log_resume(fd))

    def _log_resume(self, fd: int) -> None:
        self._fired(f"log{fd}")
        self.loop.add_reader(fd, lambda: self.on_log(fd))

    def _drain_log(self) -> None:
        """Read what the main process wrote before it exited (its pipe may lag the SIGCHLD);
        bounded, in case other processes of the capsule still write to it."""
        fd = self.log_fd
        for _ in range(LOG_DRAIN):
            if fd is None or self.log_fd != fd or f"log{fd}" in self.timers:
                return
            data = self.host.read(fd, LOG_CHUNK)
            if not data:
                if data is not None:
                    self._log_eof(fd)
                return
            self.log.feed(data)

    def _log_eof(self, fd: int) -> None:
        self.log.flush_partial()
        self.loop.remove_reader(fd)
        self.host.close(fd)
        if self.log_fd == fd:
            self.log_fd = None

    # --- exits --------------------------------------------------------------------------------

    def exited(self, status: int) -> None:
        """The main process ended (the supervisor's reaper calls this with the wait status)."""
        if self.err_fd is not None:  # the exit beat the error pipe: read it now
            fd, self.err_fd = self.err_fd, None
            self.loop.remove_reader(fd)
            error = self.host.spawn_error(fd)
            if error is not None:
                self.pid = None
                self._cleanup_run()
                self.fail(error)
                return
            self._exec_succeeded()
        self.pid = None
        self.last_exit = end = RunEnd.from_status(status, self.scoped)
        self._drain_log()
        last_output = self.log.last_line
        self.log.line(f"[exo_init] main process {end}")
        if self.state is State.STOPPING:
            self._kill_rest_then(self._stopped)
            return
        if self.spec is None:
            return
        if end.clean and (self.is_oneshot or self.spec.restart.policy is not RestartPolicy.ALWAYS):
            self._cleanup_run()
            self.change_state(State.EXITED, str(end))
            self._kill_rest_then(self.ctx.schedule)
            return
        if self.spec.runtime is not Runtime.EXEC and not end.clean:
            # The runtime's own line (sd_notify, or else its last line of output) says why.
            if end.exit_code == EXIT_DETERMINISTIC:
                why = self.runtime_failure or last_output[:240] or "no reason given"
                self.run_failed(f"{why} (deterministic: not restarted)", final=True)
                return
            if self.runtime_failure:
                self.run_failed(f"{end}: {self.runtime_failure}")
                return
        self.run_failed(str(end) + (f" (last output: {last_output[:160]!r})" if last_output else ""))

    def run_failed(self, reason: str, abort: Abort | None = None, final: bool = False) -> None:
        """The current run ended badly, or must be ended (`abort`): restart with backoff, or give up
        (`final`: a deterministic failure, which would only happen again)."""
        assert self.spec is not None
        if abort is not None and self.pid is not None:
            self.host.signal(self.pid, abort.value)
            self.kill_group()
            self.last_exit = RunEnd(aborted=abort)
            self._abandon("abandoned run")  # the reaper sees the exit; the state changes now
        self._cleanup_run()
        now = self.loop.now()
        policy = self.spec.restart
        if now - (self.started_at or now) >= policy.reset_after:
            self.consecutive_failures = 0
        self.consecutive_failures += 1
        self.failure_times.append(now)
        give_up = ""
        if final or policy.policy is RestartPolicy.NEVER or not self.wanted:
            give_up = reason
        elif start_limit_hit(policy, self.failure_times, now):
            give_up = f"{reason}; start limit hit ({policy.limit_burst} failures within {policy.limit_interval:g} s)"
        if give_up:
            self.goal = Goal.DOWN
            self._kill_rest_then(lambda: None)
            self.change_state(State.FAILED, give_up, final=final)
            self.ctx.schedule()
            return
        delay = backoff_delay(policy, self.consecutive_failures)
        self.change_state(State.BACKOFF, f"{reason}; restart in {delay:.2f} s")
        self.kill_group()
        self.set_timer("backoff", delay, self._backoff_over)
        self.ctx.schedule()

    def _backoff_over(self) -> None:
        self._fired("backoff")
        if self.state is not State.BACKOFF:
            return
        if not self.wanted:
            self.change_state(State.STOPPED, "stop requested")
        else:
            self.restarts += 1
            self.change_state(State.STOPPED, "backoff over")
        self.ctx.schedule()

    def _cleanup_run(self) -> None:
        for key in ("ready", "probe", "watchdog", "stop"):
            self.cancel_timer(key)
        if self.health is not None:
            self.health.cancel()
        self._close_notify_fd()

    # --- stop ---------------------------------------------------------------------------------

    def begin_stop(self, reason: str) -> None:
        if self.state is State.BACKOFF:
            self.cancel_backoff(reason)
            self._after_stopped()
            return
        if self.state not in (State.STARTING, State.READY):
            return
        assert self.spec is not None
        self.change_state(State.STOPPING, reason)
        self._cleanup_run()
        if self.pid is not None:
            self._send_stop()
            self._thaw()  # a frozen one (the Sentry's freeze) too: else only the stop timeout ends it
            self.set_timer("stop", self.spec.stop.timeout, self._stop_timeout)
        else:
            self._kill_rest_then(self._stopped)

    def _send_stop(self) -> None:
        """The stop signal, and SIGCONT (a stopped process must see it). A small init (dumb-init)
        forwards it to its program, but between its fork and the program's exec its child still has
        the init's catch-all handler, which would take the signal and drop it: while the init's
        program has not started (looked at before sending: a program running then gets the
        forwarded signal), it is sent again every STOP_RESEND s, within the stop timeout."""
        self._fired("stop-resend")
        if self.state is not State.STOPPING or self.pid is None or self.spec is None:
            return
        started = not self.small_init or self.host.program_started(self.pid)
        self.host.signal(self.pid, self.spec.stop.signal)
        self.host.signal(self.pid, signal.SIGCONT)
        if not started:
            self.set_timer("stop-resend", STOP_RESEND, self._send_stop)

    def _thaw(self) -> None:
        try:
            self.host.freeze(self.name, False)
        except OSError:
            pass  # no cgroup2 (nothing can be frozen), or the cgroup is gone

    def cancel_backoff(self, reason: str) -> None:
        """A capsule waiting to restart is stopped at once (stop, restart)."""
        if self.state is State.BACKOFF:
            self.cancel_timer("backoff")
            self.change_state(State.STOPPED, reason)

    def _stop_timeout(self) -> None:
        self._fired("stop")
        self.cancel_timer("stop-resend")
        if self.state is State.STOPPING:
            log.warning("capsule %r did not stop within %g s; killing it", self.name,
                        self.spec.stop.timeout if self.spec else 0)
            self.kill_group()
            if self.pid is not None:
                self.host.signal(self.pid, signal.SIGKILL)

    def kill_group(self) -> None:
        """SIGKILL everything of the capsule (its cgroup; without cgroups its process group)."""
        self.host.kill_all(self.name, self.pgid)

    def _kill_rest_then(self, then: Callable[[], None], waited: float = 0.0) -> None:
        """Kill whatever is left of the capsule, then call `then` once its cgroup is empty
        (polled; bounded at EMPTY_WAIT, after which `then` runs anyway and the leftovers are logged)."""
        if waited == 0.0:
            self.kill_group()
        if not self.host.populated(self.name):
            then()
            return
        if waited >= EMPTY_WAIT:
            log.error("capsule %r: processes %s survive cgroup.kill", self.name, self.host.leftovers(self.name))
            then()
            return
        self.loop.call_later(EMPTY_POLL, lambda: self._kill_rest_then(then, waited + EMPTY_POLL))

    def _stopped(self) -> None:
        if self.state is not State.STOPPING:
            return
        self.cancel_timer("stop")
        self.cancel_timer("stop-resend")
        failed, self.fail_when_stopped = self.fail_when_stopped, ""
        if failed:
            self.change_state(State.FAILED, failed)
            log.error("capsule %r: %s", self.name, failed)
        else:
            self.change_state(State.STOPPED, "stopped")
        self._after_stopped()

    def _after_stopped(self) -> None:
        if isinstance(self.pending, Remove):
            self.ctx.remove(self)
            return
        if isinstance(self.pending, Replace):
            self.spec, self.pending = self.pending.spec, None
        self.ctx.schedule()

    def release(self) -> None:
        """The capsule is removed: cancel every timer, close its pipes and its log."""
        for key in list(self.timers):
            self.cancel_timer(key)
        if self.health is not None:
            self.health.cancel()
        for fd in (self.err_fd, self.log_fd, self.notify_fd):
            if fd is not None:
                self.loop.remove_reader(fd)
                self.host.close(fd)
        self.err_fd = self.log_fd = self.notify_fd = None
        self.log.close()

    # --- status -------------------------------------------------------------------------------

    def note_cpu(self, usage: int, now: float) -> None:
        """CPU % from two readings of the cgroup's usage: nothing samples it periodically (with a
        thousand capsules that alone kept PID 1 busy); the first status of a run averages since its
        start, each later one since the previous reading at least CPU_WINDOW ago."""
        if self.cpu_sample is not None and now - self.cpu_sample[0] < CPU_WINDOW:
            return
        if self.cpu_sample is not None:
            self.cpu_percent = max(0.0, (usage - self.cpu_sample[1]) / 1e6 / (now - self.cpu_sample[0]) * 100)
        self.cpu_sample = (now, usage)

    def status(self, stats: bool = True) -> dict[str, object]:
        """The capsule's status; `stats`: with its cgroup figures (a dozen files read)."""
        now = self.loop.now()
        out: dict[str, object] = {
            "name": self.name,
            "state": self.state.value,
            "wanted": self.wanted,
            "pid": self.pid,
            "since": round(now - self.state_since, 3),
            "uptime": round(now - self.started_at, 3)
            if self.started_at is not None and self.state in (State.STARTING, State.READY, State.STOPPING) else None,
            "restarts": self.restarts,
            "last_exit": str(self.last_exit) if self.last_exit is not None else "",
            "reason": self.reason,
            "status_text": self.status_text,
            "error": self.load_error,
            "type": self.spec.type.value if self.spec else None,
            "description": self.spec.description if self.spec else "",
            "runtime": self.spec.runtime.value if self.spec else None,
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
            "cpu_percent": round(self.cpu_percent, 1),
            "log": str(self.log.path),
            "log_paused": self.log_paused,
            "health": self.health.status() if self.health is not None and self.state is State.READY else None,
            "degraded": self.degraded,
        }
        figures = self.host.stats(self.name) if stats else None
        if figures is not None:
            usage = figures.get("cpu_usage_usec")
            if isinstance(usage, int):
                self.note_cpu(usage, now)
                out["cpu_percent"] = round(self.cpu_percent, 1)
            out["cgroup"] = figures
        return out
