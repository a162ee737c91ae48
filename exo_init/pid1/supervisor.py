"""The supervisor: the scheduler, the reaper and the event bus, over one runner per capsule.

- **Scheduler** (`schedule`): starts every wanted capsule whose dependencies are ready, fails
  those whose required dependency failed (a running one is stopped first: a requirement may fail
  at run time), pulls in stopped requirements, stops unwanted capsules
  once nothing running depends on them. Called after every change; idempotent. `verdict` is a
  pure query of one capsule's dependencies.
- **Reaper** (`reap`): the only place children are waited for; a capsule's main pid goes to its
  runner, an abandoned one is only logged, anything else is an orphan. sd_notify messages still
  queued are handled first: what a process said before it exited (a runtime's failure line) is
  known when its exit is.
- **Event bus** (`publish`): every state change of every runner goes to the console line, the
  listeners (control subscribers, the generation switcher) and the boot-complete check.
- `apply` makes the set of runners match a manifest; `start/stop/restart/freeze` are the
  operations of the control API; `request_shutdown` stops everything in reverse dependency order.

What happens to one run is in runner.py; what is decided before its fork, in plan.py; every
system call goes through `host` (host.py), so the whole of this is unit-tested with a fake host
and a fake clock (tests/test_scheduler.py).
"""

from __future__ import annotations

import enum
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exo_init.pid1.capsule import RUNNING, SETTLED, STARTABLE, Event, Goal, Remove, Replace, RunEnd, State
from exo_init.pid1.cgroups import CgroupTree
from exo_init.pid1.config import Config
from exo_init.pid1.health import HealthEvent
from exo_init.pid1.host import Host, OsHost
from exo_init.pid1.log import log, status_line
from exo_init.pid1.logsink import LogSink
from exo_init.pid1.loop import Loop
from exo_init.pid1.manifest import Manifest, ManifestError, Runtime, load_manifest
from exo_init.pid1.plan import Facts, Users, cached_users, mem_total
from exo_init.pid1.readiness import NotifySocket
from exo_init.pid1.runner import CapsuleRunner

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import TextIO

INTERPRETER = os.path.realpath(sys.executable)  # PID 1's Python: programs on it may run in its fork (zygote.py)
NOTIFY_SENDERS_MAX = 4096  # sd_notify senders remembered (see Supervisor.notify_senders)
SHUTDOWN_GRACE = 2.0       # beyond the longest stop timeout
# Launches in one loop turn; the rest go on in the next. A thousand capsules added at once held
# PID 1 in one pass for all their launches (15 s on the host, minutes under TCG): the control
# socket, reaping and readiness waited, and the `switch` that added them timed out.
# At most STARTS_PER_TURN, and no more once they took STARTS_TIME (a launch costs ~15 ms on the
# host, ~10x that under TCG: a request needs three turns, so this bounds its wait).
STARTS_PER_TURN = 16
STARTS_TIME = 0.05
STOPPABLE = frozenset({State.STARTING, State.READY, State.BACKOFF})  # stopped by the scheduler once unwanted
SHUTDOWN_MIN, SHUTDOWN_MAX = 5.0, 120.0


class NotApplicable(Exception):
    """An operation that does not apply to this capsule now (the control API's NotApplicable)."""


class ShutdownAction(enum.StrEnum):
    POWEROFF = "poweroff"
    REBOOT = "reboot"
    EXIT = "exit"  # not PID 1: stop everything and return


# --- the verdict on one capsule's dependencies (a pure query) -------------------------------------

@dataclass(frozen=True)
class Ready:
    """Every dependency is ready (or need not be waited for)."""


@dataclass(frozen=True)
class Wait:
    """A dependency is not ready yet."""


@dataclass(frozen=True)
class Pull:
    """A required capsule is stopped and not wanted: requiring it pulls it in."""

    name: str


@dataclass(frozen=True)
class DependencyFailed:
    reason: str


Verdict = Ready | Wait | Pull | DependencyFailed


class OtherUids:
    """The uids held by every run but one runner's own, as a container (nothing copied per launch)."""

    def __init__(self, holders: Counter[int], own: int | None) -> None:
        self.holders, self.own = holders, own

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        return self.holders.get(uid, 0) - (1 if uid == self.own else 0) > 0


class Supervisor:
    def __init__(self, config: Config, console: TextIO, loop: Loop | None = None, host: Host | None = None,
                 users: Callable[[], Users] | None = None) -> None:
        self.config = config
        self.console = console
        self.loop = loop or Loop()
        self.host: Host = host or OsHost(None)
        self.users = users or cached_users()
        self.uid_holders: Counter[int] = Counter()  # uid -> how many runners hold it (dynamic uids are unique)
        # What the scheduler looks at, kept as goals, definitions and states change (touched): the
        # runners its pass can act on, in the order they were added, and the wanted ones not yet
        # settled (boot complete once there is none). A pass over every runner after every event
        # made a thousand capsules' start quadratic.
        self.order: dict[str, int] = {}
        self.capsule_set = 0  # counts additions and removals: a client re-reads the names when it changes
        self.changes = 0      # counts the events published (state, health): a client re-reads statuses when it changes
        self.scheduling = False     # a scheduling pass is running (schedule is not re-entered) ...
        self.schedule_again = False  # ... and was asked for again meanwhile
        self.starts_left = 0         # launches this loop turn may still make (STARTS_PER_TURN) ...
        self.starts_turn = -1        # ... the turn it is, and when its first launch began
        self.starts_since = 0.0
        self.deferred = False        # a pass that ran out of them goes on in the next loop turn
        self.candidates: set[str] = set()
        self.unsettled: set[str] = set()
        self.newly_failed: set[str] = set()  # failed since the last pass: what requires them fails too
        self.mem_total = mem_total()
        self.capsules: dict[str, CapsuleRunner] = {}
        self.by_pid: dict[int, CapsuleRunner] = {}
        self.abandoned: dict[int, str] = {}  # pids whose capsule has moved on: reaped, only logged
        self.notify: NotifySocket | None = None
        # sd_notify senders seen alive (pid -> capsule, uid): a message a process sent just before
        # it exited may be read after its /proc entry (and so its cgroup) is gone, e.g. a scoped
        # runtime's last line, read between its exit and its namespace init's. Consulted only when
        # the cgroup says nothing, and only for the same uid (a dynamic uid is the capsule's own;
        # a root sender could do anything anyway); forgotten when the capsule's run ends; bounded.
        self.notify_senders: dict[int, tuple[CapsuleRunner, int]] = {}
        self.state_dir: Path | None = None  # where generations live (main.py); runtime capsules' state too
        self.listeners: list[Callable[[Event], None]] = []
        self.health_listeners: list[Callable[[HealthEvent], None]] = []  # liveness verdicts (health.py)
        self.helpers: dict[int, Callable[[int], None]] = {}  # pids of health checks -> their exit handler
        self.reload_hook: Callable[[], dict[str, list[str]]] | None = None
        self.manifest_source = ""
        self.hostname = "exosphere"
        self.shutdown_action: ShutdownAction | None = None
        self.done = False
        self.boot_started = self.loop.now()
        self.boot_reported = False
        self.orphans_reaped = 0
        self.applying = False
        self.display_clients_written: dict[str, str] | None = None

    # --- set-up ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """The real system: runtime directories, the cgroup tree, the sd_notify socket (main.py
        raised the limit on open files first: early.raise_fd_limit)."""
        self.config.runtime_dir.mkdir(parents=True, exist_ok=True)
        (self.config.runtime_dir / "scope-root").mkdir(exist_ok=True)  # isolated capsules build their root here
        self.config.wayland_dir.mkdir(exist_ok=True)  # the compositor's socket (capabilities.display)
        self.config.display_clients.parent.mkdir(exist_ok=True)
        self.listeners.append(self._write_display_clients)
        cgroups = None
        if self.config.cgroup_root is not None:
            tree = CgroupTree(self.config.cgroup_root)
            try:
                for warning in tree.setup():
                    log.warning("%s", warning)
                cgroups = tree
            except OSError as e:
                log.error("cgroups unavailable at %s (%s); capsules run without quotas",
                          self.config.cgroup_root, e.strerror)
        self.host = OsHost(cgroups)
        try:
            self.notify = NotifySocket(self.config.notify_socket)
            self.loop.add_reader(self.notify.fileno(), self._on_notify)
        except OSError as e:
            log.error("sd_notify socket %s unavailable: %s", self.config.notify_socket, e.strerror)

    def load(self, path: Path | None = None) -> Manifest:
        """Read a manifest; ManifestError (one line naming the file and problem) if unusable."""
        return load_manifest(path or self.config.manifest)

    # --- the runners' context (runner.Context) ----------------------------------------------------

    def publish(self, runner: CapsuleRunner, event: Event) -> None:
        """The event bus: every state change of every capsule."""
        log.debug("%s: %s -> %s %s", event.capsule, event.old, event.new, event.reason)
        self.changes += 1
        if event.new is State.FAILED:
            self.newly_failed.add(runner.name)
        self._console_line(runner, event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")
        self.check_boot_complete()

    def facts(self, runner: CapsuleRunner) -> Facts:
        return Facts(config=self.config, users=self.users(), taken_uids=OtherUids(self.uid_holders, runner.uid),
                     mem_total=self.mem_total, interpreter=INTERPRETER if self.config.zygote else "",
                     state_dir=self.state_dir)

    def claim_uid(self, runner: CapsuleRunner, uid: int | None) -> None:
        """`runner`'s run holds `uid` now (the uids other runs hold are taken: facts)."""
        if runner.uid is not None:
            self.uid_holders[runner.uid] -= 1
            if self.uid_holders[runner.uid] <= 0:
                del self.uid_holders[runner.uid]
        runner.uid = uid
        if uid is not None:
            self.uid_holders[uid] += 1

    def watch_pid(self, pid: int, runner: CapsuleRunner) -> None:
        self.by_pid[pid] = runner

    def abandon_pid(self, pid: int, why: str) -> None:
        self.by_pid.pop(pid, None)
        self.abandoned[pid] = why

    def watch_helper(self, pid: int, on_exit: Callable[[int], None]) -> None:
        self.helpers[pid] = on_exit

    def publish_health(self, runner: CapsuleRunner, event: HealthEvent) -> None:
        log.info("%s: health %s: %s", runner.name, event.health, event.detail)
        self.changes += 1
        for listener in list(self.health_listeners):
            try:
                listener(event)
            except Exception:
                log.exception("health listener failed")

    def remove(self, runner: CapsuleRunner) -> None:
        self.claim_uid(runner, None)
        runner.release()
        self.host.forget(runner.name)
        self.capsules.pop(runner.name, None)
        self.capsule_set += 1
        self.candidates.discard(runner.name)
        self.unsettled.discard(runner.name)

    def touched(self, runner: CapsuleRunner) -> None:
        """A runner's goal, definition or state changed: whether a scheduling pass can act on it
        (start it, fail it, pull in its requirement, stop it), and whether the boot waits for it."""
        name, wanted, state = runner.name, runner.wanted, runner.state
        if (wanted and runner.spec is not None and state in STARTABLE) or (not wanted and state in STOPPABLE):
            self.candidates.add(name)
        else:
            self.candidates.discard(name)
        if wanted and state not in SETTLED:
            self.unsettled.add(name)
        else:
            self.unsettled.discard(name)

    # --- events -----------------------------------------------------------------------------------

    def _console_line(self, runner: CapsuleRunner, event: Event) -> None:
        if event.new is State.READY:
            status_line(self.console, True, "ready", runner.name)
        elif event.new is State.FAILED:
            status_line(self.console, False, "failed", runner.name, event.reason)
        elif event.new is State.EXITED:
            status_line(self.console, runner.satisfies_dependents(), "exited", runner.name, event.reason)
        elif event.new is State.BACKOFF:
            status_line(self.console, None, "restart", runner.name, event.reason)
        elif event.new is State.STOPPED and event.old is State.STOPPING:
            status_line(self.console, True, "stopped", runner.name)

    def check_boot_complete(self) -> None:
        if self.boot_reported or self.shutdown_action is not None or self.applying or self.unsettled:
            return
        wanted = [r for r in self.capsules.values() if r.wanted or r.state is State.FAILED]
        self.boot_reported = True
        failed = sorted(r.name for r in wanted if r.state is State.FAILED)
        since_init = self.loop.now() - self.boot_started
        try:
            uptime = float(Path("/proc/uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            uptime = -1.0
        summary = "all capsules ready" if not failed else f"{len(failed)} failed ({', '.join(failed)})"
        log.info("boot complete: %s; %d capsules; %.2f s since exo_init start, %.2f s since kernel start",
                 summary, len(wanted), since_init, uptime)

    # --- manifest application -------------------------------------------------------------------

    def apply(self, manifest: Manifest) -> dict[str, list[str]]:
        """Make the running set match `manifest`: start added capsules, stop removed ones, restart
        changed ones, leave unchanged ones alone. Returns what was done, by kind."""
        self.applying = True
        try:
            return self._apply(manifest)
        finally:
            self.applying = False
            self.check_boot_complete()

    def _apply(self, manifest: Manifest) -> dict[str, list[str]]:
        self.manifest_source = manifest.source
        self.hostname = manifest.hostname
        done: dict[str, list[str]] = {"added": [], "removed": [], "changed": [], "unchanged": [], "errors": []}
        for name, error in manifest.errors.items():
            log.error("%s", error)
            done["errors"].append(str(error))
            runner = self.capsules.get(name)
            if runner is not None and runner.spec is not None:
                continue  # keep the running version of a capsule whose new definition is broken
            runner = runner or self._add(name)
            runner.load_error, runner.goal = str(error), Goal.DOWN
            runner.change_state(State.FAILED, f"{error.field}: {error.message}")
        for name, spec in manifest.capsules.items():
            runner = self.capsules.get(name)
            if runner is not None and runner.spec == spec:
                done["unchanged"].append(name)
                continue
            running = runner is not None and runner.spec is not None and (
                runner.state in RUNNING or runner.state is State.BACKOFF)
            if runner is None or runner.spec is None:
                done["added"].append(name)
                runner = runner or self._add(name)
                runner.load_error = None
            else:
                done["changed"].append(name)
            runner.goal = Goal.DOWN
            if spec.autostart:  # a changed running capsule restarts; a failed one gets another go
                runner.want(again=running or runner.state is State.FAILED)
            if running:
                runner.pending = Replace(spec)
                runner.begin_stop("configuration changed")
            else:
                runner.spec = spec
        for name, runner in list(self.capsules.items()):
            if name in manifest.capsules or name in manifest.errors:
                continue
            done["removed"].append(name)
            runner.goal, runner.pending = Goal.DOWN, Remove()
            if runner.state not in RUNNING:
                self.remove(runner)
        self.schedule()
        return done

    def reload(self) -> dict[str, list[str]]:
        if self.reload_hook is not None:  # the generation switcher: the reload becomes a generation
            return self.reload_hook()
        manifest = self.load()
        log.info("reloading %s", manifest.source)
        return self.apply(manifest)

    def _add(self, name: str) -> CapsuleRunner:
        self.order.setdefault(name, len(self.order))
        runner = CapsuleRunner(self, name, None, LogSink(self.config.log_dir, name))
        self.capsules[name] = runner
        self.capsule_set += 1
        return runner

    # --- scheduling -----------------------------------------------------------------------------

    def schedule(self) -> None:
        """Start what is wanted and whose dependencies are ready; stop what is unwanted once no
        running capsule depends on it. Called after every change; idempotent. A call from inside
        a pass (a launch that fails at once reports it) asks for one more pass instead of
        recursing: a thousand such failures in one pass exceeded Python's recursion limit."""
        if self.scheduling:
            self.schedule_again = True
            return
        self.scheduling = True
        if self.starts_turn != self.loop.turns:
            self.starts_turn, self.starts_left, self.starts_since = self.loop.turns, STARTS_PER_TURN, self.loop.now()
        try:
            self.schedule_again = True
            while self.schedule_again:
                self.schedule_again = False
                self._pass()
        finally:
            self.scheduling = False
        if self.shutdown_action is not None and not any(
                r.state in RUNNING or r.state is State.BACKOFF for r in self.capsules.values()):
            self.done = True

    def _pass(self) -> None:
        progress = True
        while progress:
            progress = self._fail_dependents()
            for name in sorted(self.candidates, key=self.order.__getitem__):
                runner = self.capsules[name]
                if runner.wanted and runner.spec is not None and runner.state in STARTABLE:
                    if runner.state is not State.STOPPED and runner.goal is not Goal.AGAIN:
                        continue  # settled (exited or failed): only an explicit start runs it again
                    match self.verdict(runner):
                        case Ready() if self.starts_left <= 0:
                            self._go_on_next_turn()
                        case Ready():
                            runner.start()
                            spent = self.loop.now() - self.starts_since >= STARTS_TIME
                            self.starts_left = 0 if spent else self.starts_left - 1
                            progress = True
                        case Pull(name):
                            self.capsules[name].goal = Goal.UP
                            progress = True
                        case DependencyFailed(reason) if runner.state is State.STOPPED:
                            runner.goal = Goal.DOWN
                            runner.change_state(State.FAILED, reason)
                            progress = True
                elif not runner.wanted and runner.state in STOPPABLE and not self._running_dependents(runner.name):
                    runner.begin_stop("stop requested")
                    progress = True

    def _go_on_next_turn(self) -> None:
        if not self.deferred:
            self.deferred = True
            self.loop.call_later(0.0, self._resume)

    def _resume(self) -> None:
        self.deferred = False
        self.schedule()

    def _fail_dependents(self) -> bool:
        """A capsule that failed fails the running capsules that require it (`requires`: "fails if
        they fail", at start or at run time): each is stopped, then `failed`; one in backoff fails at
        once. (A stopped one is failed by the pass's verdict.) One look at every runner per batch."""
        failed = {n for n in self.newly_failed if n in self.capsules and self.capsules[n].state is State.FAILED}
        self.newly_failed.clear()
        if not failed:
            return False
        acted = False
        for runner in list(self.capsules.values()):
            if not runner.wanted or runner.spec is None or runner.state not in STOPPABLE:
                continue
            name = next((n for n in runner.spec.requires if n in failed), None)
            if name is not None:
                runner.requirement_failed(f"required capsule {name!r} failed")
                acted = True
        return acted

    def _running_dependents(self, name: str) -> bool:
        return any(r.spec is not None and name in r.spec.ordering and r.state in RUNNING
                   for r in self.capsules.values())

    def verdict(self, runner: CapsuleRunner) -> Verdict:
        """Whether `runner` may start now, as far as its dependencies go. Changes nothing."""
        assert runner.spec is not None
        for dep_name in runner.spec.ordering:
            dep = self.capsules.get(dep_name)
            required = dep_name in runner.spec.requires
            if dep is None:
                if required:
                    return DependencyFailed(f"required capsule {dep_name!r} is not declared")
                continue
            if dep.satisfies_dependents():
                continue
            if dep.state is State.FAILED or (dep.state is State.EXITED and not dep.wanted):
                if required:
                    return DependencyFailed(f"required capsule {dep_name!r} {dep.state.value}")
                continue
            if not dep.wanted and dep.state is State.STOPPED:
                if required:
                    return Pull(dep_name)
                continue
            return Wait()
        return Ready()

    # --- operations -------------------------------------------------------------------------------

    def _defined(self, name: str) -> CapsuleRunner:
        runner = self.capsules[name]
        if runner.spec is None:
            raise ManifestError(runner.load_error or f"capsule {name!r} has no valid definition")
        return runner

    def start(self, name: str) -> None:
        runner = self._defined(name)
        runner.want(again=runner.state in (State.EXITED, State.FAILED))
        runner.consecutive_failures = 0
        runner.failure_times.clear()
        self.schedule()

    def stop(self, name: str) -> None:
        runner = self.capsules[name]
        runner.goal = Goal.DOWN
        # Stopping a capsule stops what requires it (first: the scheduler stops dependents first).
        for other in self.capsules.values():
            if other.wanted and other.spec is not None and name in other.spec.requires:
                self.stop(other.name)
        runner.cancel_backoff("stop requested")
        self.schedule()

    def restart(self, name: str) -> None:
        runner = self._defined(name)
        runner.want(again=True)
        if runner.state in RUNNING:
            runner.begin_stop("restart requested")
        runner.cancel_backoff("restart requested")
        self.schedule()

    def freeze(self, name: str, frozen: bool) -> None:
        runner = self.capsules[name]
        self.host.freeze(name, frozen)
        runner.log.line(f"[exo_init] {'frozen' if frozen else 'thawed'}")

    def checkpoint(self, name: str) -> None:
        """Ask a running CRUSH capsule's runtime for a checkpoint now (SIGUSR1, which its
        scope's init forwards); NotApplicable for any other capsule or one that is not running."""
        runner = self.capsules[name]
        if runner.spec is None or runner.spec.runtime is not Runtime.CRUSH:
            runtime = runner.spec.runtime.value if runner.spec is not None else "undefined"
            raise NotApplicable(f"{name} is not a CRUSH capsule (runtime {runtime}): it has no checkpoints")
        if runner.state not in RUNNING or runner.pid is None:
            raise NotApplicable(f"{name} is not running ({runner.state.value}): nothing to checkpoint")
        self.host.signal(runner.pid, signal.SIGUSR1)
        runner.log.line("[exo_init] checkpoint requested")

    def degrade(self, name: str, reason: str) -> None:
        """The Sentry marks a capsule degraded (`reason`) or, with "", not any more (shown by status)."""
        runner = self.capsules[name]
        if runner.degraded != reason:
            runner.degraded = reason
            runner.log.line(f"[exo_init] degraded: {reason}" if reason else "[exo_init] no longer degraded")

    def status(self, name: str, stats: bool = True) -> dict[str, object]:
        return self.capsules[name].status(stats)

    # --- process events ---------------------------------------------------------------------------

    def reap(self) -> None:
        """The only place children are waited for: every exit, capsule or orphan, comes here."""
        drained = False
        for pid, status in self.host.reap():
            if not drained and self.notify is not None:
                drained = True
                self._on_notify()  # what the capsules said before they exited, first
            runner = self.by_pid.pop(pid, None)
            if runner is not None:
                runner.exited(status)
                for sender in [p for p, (r, _uid) in self.notify_senders.items() if r is runner]:
                    del self.notify_senders[sender]
            elif pid in self.helpers:
                self.helpers.pop(pid)(status)
            elif pid in self.abandoned:
                log.debug("reaped %d (%s): %s", pid, self.abandoned.pop(pid), RunEnd.from_status(status))
            else:
                self.orphans_reaped += 1
                log.debug("reaped orphan %d: %s", pid, RunEnd.from_status(status))

    def display_clients(self) -> dict[int, str]:
        """uid -> name of the running capsules granted `display` that have their own uid."""
        return {r.uid: r.name for r in self.capsules.values()
                if r.pid is not None and r.uid is not None and r.own_uid and r.spec is not None
                and r.spec.capabilities.display}

    def _write_display_clients(self, event: Event) -> None:
        """Keep Config.display_clients true (on every state change of a capsule that is or was a
        display client; written when it changed). Other capsules' changes cannot change it, and
        looking at every capsule on each of them made a thousand capsules' start quadratic."""
        runner = self.capsules.get(event.capsule)
        written = self.display_clients_written
        if written is not None and event.capsule not in written.values() and not (
                runner is not None and runner.spec is not None and runner.spec.capabilities.display):
            return
        clients = {str(uid): name for uid, name in sorted(self.display_clients().items())}
        if clients == self.display_clients_written:
            return
        path = self.config.display_clients
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(clients))
            tmp.replace(path)
            self.display_clients_written = clients
        except OSError as e:
            log.warning("%s: %s", path, e.strerror or e)

    def manager(self, uid: int, op: str) -> str | None:
        """The running capsule whose own dynamic uid is `uid` and whose `capabilities.manage`
        grants `op` (a mutating control operation), or None."""
        for runner in self.capsules.values():
            if runner.pid is not None and runner.uid == uid and runner.own_uid and runner.spec is not None \
                    and op in runner.spec.capabilities.manage:
                return runner.name
        return None

    def _on_notify(self) -> None:
        """Route each sd_notify message to its capsule: by main pid, else by the sender's cgroup,
        else (the sender has exited since it sent it) by the same pid and uid seen alive, else by
        its uid when that is a capsule's dynamic uid (no other process has it)."""
        assert self.notify is not None
        for pid, uid, fields in self.notify.receive():
            runner = self.by_pid.get(pid)
            if runner is None:
                owner = self.host.owner_of(pid)
                runner = self.capsules.get(owner) if owner else None
                if runner is not None:
                    self.notify_senders[pid] = (runner, uid)
                    while len(self.notify_senders) > NOTIFY_SENDERS_MAX:
                        del self.notify_senders[next(iter(self.notify_senders))]
                elif pid in self.notify_senders and self.notify_senders[pid][1] == uid:
                    runner = self.notify_senders[pid][0]
                else:  # gone before PID 1 read any of its messages: a dynamic uid is one capsule's
                    runner = next((r for r in self.capsules.values() if r.uid == uid and r.own_uid), None)
            if runner is None:
                log.debug("sd_notify from unknown pid %d ignored: %s", pid, fields)
                continue
            runner.on_notify(fields)

    # --- shutdown -------------------------------------------------------------------------------

    def request_shutdown(self, action: ShutdownAction) -> None:
        if self.shutdown_action is not None:
            return
        self.shutdown_action = action
        log.info("%s: stopping capsules", action)
        limit = SHUTDOWN_MIN
        for runner in self.capsules.values():
            runner.goal = Goal.DOWN
            if runner.spec is not None:
                limit = max(limit, runner.spec.stop.timeout + SHUTDOWN_GRACE)
        self.loop.call_later(min(limit, SHUTDOWN_MAX), self._shutdown_deadline)
        self.schedule()

    def _shutdown_deadline(self) -> None:
        if self.done:
            return
        left = [r.name for r in self.capsules.values() if r.state in RUNNING]
        log.warning("shutdown: capsules still running after the deadline, killing: %s", ", ".join(left))
        self.kill_all_capsules()
        self.done = True

    def kill_all_capsules(self) -> None:
        for runner in self.capsules.values():
            runner.kill_group()

    def teardown_cgroups(self) -> None:
        """Not PID 1: leave the host's cgroup tree as we found it."""
        self.kill_all_capsules()
        self.host.teardown()

    def close(self) -> None:
        if self.notify is not None:
            self.notify.close()
