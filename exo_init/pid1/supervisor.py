"""The supervisor: one loop, one reaper, one scheduler that starts and stops capsules in
dependency order, and the bookkeeping that turns process events into capsule states."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from exo_init.pid1 import scope
from exo_init.pid1.capsule import (
    RUNNING,
    SETTLED,
    CapsuleRuntime,
    Event,
    Identity,
    State,
    backoff_delay,
    start_limit_hit,
)
from exo_init.pid1.cgroups import CgroupTree, QuotaError
from exo_init.pid1.config import SYSTEM_BUS_DIR, SYSTEM_PATH, WAYLAND_SOCKET, Config
from exo_init.pid1.log import log, status_line
from exo_init.pid1.logsink import LogSink
from exo_init.pid1.loop import Loop
from exo_init.pid1.manifest import (
    Access,
    Capsule,
    Manifest,
    ManifestError,
    NetworkKind,
    ReadinessKind,
    RestartPolicy,
    load_manifest,
)
from exo_init.pid1.readiness import NotifySocket, probe_file, probe_tcp
from exo_init.pid1.spawn import SpawnPlan, read_spawn_error, spawn

SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}
PROBE_INTERVAL = 0.1
EMPTY_POLL = 0.02
SAMPLE_INTERVAL = 2.0


class ShutdownAction:
    POWEROFF = "poweroff"
    REBOOT = "reboot"
    EXIT = "exit"  # not PID 1: stop everything and return


def describe_status(status: int, scoped: bool = False) -> str:
    """How a main process ended. A scoped capsule's init reports a killed main process as
    128+signal (tini's convention): that is translated back."""
    code = os.waitstatus_to_exitcode(status)
    if scoped and code > 128 and code - 128 in SIGNAL_NAMES:
        return f"killed by {SIGNAL_NAMES[code - 128]}"
    if code >= 0:
        return f"exited {code}"
    return f"killed by {SIGNAL_NAMES.get(-code, str(-code))}"


class Supervisor:
    def __init__(self, config: Config, console: TextIO, loop: Loop | None = None) -> None:
        self.config = config
        self.console = console
        self.loop = loop or Loop()
        self.capsules: dict[str, CapsuleRuntime] = {}
        self.by_pid: dict[int, CapsuleRuntime] = {}
        self.cgroups: CgroupTree | None = None
        self.notify: NotifySocket | None = None
        self.listeners: list[Callable[[Event], None]] = []
        self.manifest_source = ""
        self.hostname = "exosphere"
        self.shutdown_action: str | None = None
        self.done = False
        self.boot_started = time.monotonic()
        self.boot_reported = False
        self.orphans_reaped = 0
        self.abandoned: dict[int, str] = {}  # pids whose capsule has moved on: reaped, only logged
        self.applying = False
        self.reload_hook: Callable[[], dict[str, list[str]]] | None = None

    # --- set-up ---------------------------------------------------------------------------------

    def setup(self) -> None:
        self.config.runtime_dir.mkdir(parents=True, exist_ok=True)
        (self.config.runtime_dir / "scope-root").mkdir(exist_ok=True)  # isolated capsules build their root here
        self.config.wayland_dir.mkdir(exist_ok=True)  # the compositor's socket (capabilities.display)
        if self.config.cgroup_root is not None:
            tree = CgroupTree(self.config.cgroup_root)
            try:
                for warning in tree.setup():
                    log.warning("%s", warning)
                self.cgroups = tree
            except OSError as e:
                log.error("cgroups unavailable at %s (%s); capsules run without quotas",
                          self.config.cgroup_root, e.strerror)
        try:
            self.notify = NotifySocket(self.config.notify_socket)
            self.loop.add_reader(self.notify.fileno(), self._on_notify)
        except OSError as e:
            log.error("sd_notify socket %s unavailable: %s", self.config.notify_socket, e.strerror)
        self.loop.call_later(SAMPLE_INTERVAL, self._sample)

    def load(self, path: Path | None = None) -> Manifest:
        """Read a manifest; ManifestError (one line naming the file and problem) if unusable."""
        return load_manifest(path or self.config.manifest)

    # --- events ---------------------------------------------------------------------------------

    def change_state(self, rt: CapsuleRuntime, new: State, reason: str = "") -> None:
        if rt.state is new:
            return
        event = rt.change_state(new, reason)
        log.debug("%s: %s -> %s %s", rt.name, event.old, event.new, reason)
        self._console_line(rt, event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")
        self.check_boot_complete()

    def _console_line(self, rt: CapsuleRuntime, event: Event) -> None:
        if event.new is State.READY:
            status_line(self.console, True, "ready", rt.name)
        elif event.new is State.FAILED:
            status_line(self.console, False, "failed", rt.name, event.reason)
        elif event.new is State.EXITED:
            status_line(self.console, rt.satisfies_dependents(), "exited", rt.name, event.reason)
        elif event.new is State.BACKOFF:
            status_line(self.console, None, "restart", rt.name, event.reason)
        elif event.new is State.STOPPED and event.old is State.STOPPING:
            status_line(self.console, True, "stopped", rt.name)

    def check_boot_complete(self) -> None:
        if self.boot_reported or self.shutdown_action is not None or self.applying:
            return
        wanted = [rt for rt in self.capsules.values() if rt.wanted or rt.state is State.FAILED]
        if not all(rt.state in SETTLED for rt in wanted):
            return
        self.boot_reported = True
        failed = sorted(rt.name for rt in wanted if rt.state is State.FAILED)
        since_init = time.monotonic() - self.boot_started
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
        if manifest.hostname != self.hostname:
            self.hostname = manifest.hostname
        done: dict[str, list[str]] = {"added": [], "removed": [], "changed": [], "unchanged": [], "errors": []}
        for name, error in manifest.errors.items():
            log.error("%s", error)
            done["errors"].append(str(error))
            rt = self.capsules.get(name)
            if rt is not None and rt.spec is not None:
                continue  # keep the running version of a capsule whose new definition is broken
            rt = rt or self._add(name, None)
            rt.load_error = str(error)
            rt.wanted = False
            if rt.state is not State.FAILED:
                self.change_state(rt, State.FAILED, f"{error.field}: {error.message}")
        for name, spec in manifest.capsules.items():
            rt = self.capsules.get(name)
            if rt is None or rt.spec is None:
                if rt is None:
                    rt = self._add(name, spec)
                rt.spec, rt.load_error, rt.wanted = spec, None, spec.autostart
                rt.restart_requested = rt.state is State.FAILED
                done["added"].append(name)
            elif rt.spec != spec:
                done["changed"].append(name)
                if rt.state in RUNNING or rt.state is State.BACKOFF:
                    rt.next_spec, rt.restart_requested = spec, True
                    self._begin_stop(rt, "configuration changed")
                else:
                    rt.spec = spec
                    rt.restart_requested = rt.state is State.FAILED  # a failed one gets another go
                rt.wanted = spec.autostart
            else:
                done["unchanged"].append(name)
        for name, rt in list(self.capsules.items()):
            if name in manifest.capsules or name in manifest.errors:
                continue
            done["removed"].append(name)
            rt.wanted = False
            rt.remove_when_stopped = True
            if rt.state not in RUNNING:
                self._remove(rt)
        self.schedule()
        return done

    def reload(self) -> dict[str, list[str]]:
        if self.reload_hook is not None:  # the generation switcher: the reload becomes a generation
            return self.reload_hook()
        manifest = self.load()
        log.info("reloading %s", manifest.source)
        return self.apply(manifest)

    def _add(self, name: str, spec: Capsule | None) -> CapsuleRuntime:
        rt = CapsuleRuntime(name=name, spec=spec)
        rt.log = LogSink(self.config.log_dir, name)
        self.capsules[name] = rt
        return rt

    def _remove(self, rt: CapsuleRuntime) -> None:
        for key in list(rt.timers):
            rt.cancel_timer(key)
        if rt.log is not None:
            rt.log.close()
        if self.cgroups is not None:
            self.cgroups.remove(rt.name)
        self.capsules.pop(rt.name, None)

    # --- scheduling -----------------------------------------------------------------------------

    def schedule(self) -> None:
        """Start what is wanted and whose dependencies are ready; stop what is unwanted once no
        running capsule depends on it. Called after every change; idempotent."""
        progress = True
        while progress:
            progress = False
            for rt in list(self.capsules.values()):
                if rt.wanted and rt.spec is not None and rt.state in (State.STOPPED, State.EXITED, State.FAILED):
                    if rt.state is not State.STOPPED and not rt.restart_requested:
                        continue
                    verdict = self._deps_verdict(rt)
                    if verdict == "ready":
                        rt.restart_requested = False
                        self._start(rt)
                        progress = True
                    elif verdict == "pulled":
                        progress = True  # a dependency became wanted: another pass starts it
                    elif verdict.startswith("fail:") and rt.state is State.STOPPED:
                        rt.wanted = False
                        self.change_state(rt, State.FAILED, verdict[5:])
                        progress = True
                elif not rt.wanted and rt.state in (State.STARTING, State.READY, State.BACKOFF) and not any(
                    self._depends_on(d, rt.name) and d.state in RUNNING for d in self.capsules.values()
                ):
                    self._begin_stop(rt, "stop requested")
                    progress = True
        if self.shutdown_action is not None and not any(
            rt.state in RUNNING or rt.state is State.BACKOFF for rt in self.capsules.values()
        ):
            self.done = True

    @staticmethod
    def _depends_on(rt: CapsuleRuntime, name: str) -> bool:
        return rt.spec is not None and name in rt.spec.ordering

    def _deps_verdict(self, rt: CapsuleRuntime) -> str:
        """'ready', 'wait', 'pulled' (a required capsule was made wanted), or 'fail:<reason>' for a
        wanted capsule's dependencies."""
        assert rt.spec is not None
        for dep_name in rt.spec.ordering:
            dep = self.capsules.get(dep_name)
            required = dep_name in rt.spec.requires
            if dep is None:
                if required:
                    return f"fail:required capsule {dep_name!r} is not declared"
                continue
            if dep.satisfies_dependents():
                continue
            if dep.state is State.FAILED or (dep.state is State.EXITED and not dep.wanted):
                if required:
                    return f"fail:required capsule {dep_name!r} {dep.state.value}"
                continue
            if not dep.wanted and dep.state is State.STOPPED:
                if required:
                    dep.wanted = True  # requiring a capsule pulls it in
                    return "pulled"
                continue
            return "wait"
        return "ready"

    # --- start ----------------------------------------------------------------------------------

    def start(self, name: str) -> None:
        rt = self.capsules[name]
        if rt.spec is None:
            raise ManifestError(rt.load_error or f"capsule {name!r} has no valid definition")
        rt.wanted = True
        rt.consecutive_failures = 0
        rt.failure_times.clear()
        if rt.state in (State.EXITED, State.FAILED):
            rt.restart_requested = True
        self.schedule()

    def stop(self, name: str) -> None:
        rt = self.capsules[name]
        rt.wanted = False
        # Stopping a capsule stops what requires it (first: the scheduler stops dependents first).
        for other in self.capsules.values():
            if other.wanted and other.spec is not None and name in other.spec.requires:
                self.stop(other.name)
        if rt.state is State.BACKOFF:
            rt.cancel_timer("backoff")
            self.change_state(rt, State.STOPPED, "stop requested")
        self.schedule()

    def restart(self, name: str) -> None:
        rt = self.capsules[name]
        if rt.spec is None:
            raise ManifestError(rt.load_error or f"capsule {name!r} has no valid definition")
        rt.wanted = True
        rt.restart_requested = True
        if rt.state in RUNNING:
            self._begin_stop(rt, "restart requested")
        elif rt.state is State.BACKOFF:
            rt.cancel_timer("backoff")
            self.change_state(rt, State.STOPPED, "restart requested")
        self.schedule()

    def _resolve_identity(self, spec: Capsule) -> Identity:
        if spec.user is None and spec.capabilities.isolated:
            taken = {rt.identity.uid for rt in self.capsules.values()
                     if rt.identity is not None and rt.name != spec.name}
            taken |= {pw.pw_uid for pw in pwd.getpwall()}
            uid = scope.dynamic_uid(spec.name, taken)
            return Identity(spec.name, uid, uid, (uid,), "/tmp")  # dynamic: no passwd entry on the host
        user = spec.user or "root"
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"user: unknown user {user!r}") from None
        gid = pw.pw_gid
        if spec.group is not None:
            try:
                gid = grp.getgrnam(spec.group).gr_gid
            except KeyError:
                raise ValueError(f"group: unknown group {spec.group!r}") from None
        groups = tuple(sorted({gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}))
        return Identity(user, pw.pw_uid, gid, groups, pw.pw_dir if spec.capabilities.host else "/tmp")

    def _scope_plan(self, spec: Capsule, ident: Identity) -> scope.ScopePlan:
        """The isolated world of a capsule; ValueError names a grant that cannot be honoured now."""
        caps = spec.capabilities
        binds = [scope.Bind(p, p, readonly=True) for p in scope.SYSTEM_PATHS if os.path.lexists(p)]
        for path, access in caps.filesystem:
            if not os.path.exists(path):
                raise ValueError(f"capabilities.filesystem: {path} does not exist")
            binds.append(scope.Bind(path, path, readonly=access is Access.RO))
        for dev in caps.devices:
            if not os.path.exists(dev):
                raise ValueError(f"capabilities.devices: {dev} does not exist")
            binds.append(scope.Bind(dev, dev, readonly=False, device=True))
        sockets: list[tuple[bool, Path, str]] = [
            (spec.readiness.kind is ReadinessKind.NOTIFY or spec.watchdog_sec > 0, self.config.notify_socket,
             "the sd_notify socket"),
            (caps.control, self.config.control_socket, "exo_init's control socket"),
            (caps.logs, self.config.log_dir, "the capsule log directory"),
            (caps.bus, SYSTEM_BUS_DIR, "the system bus (is the dbus capsule running?)"),
            (caps.display, self.config.wayland_dir, "the Wayland socket directory (is the compositor running?)"),
        ]
        for wanted, sock, what in sockets:
            if wanted:
                if not sock.exists():
                    raise ValueError(f"capabilities: {what} is not there ({sock})")
                binds.append(scope.Bind(str(sock), str(sock), readonly=sock.is_dir()))
        if caps.network is NetworkKind.HOST and os.path.exists("/etc/resolv.conf"):
            binds.append(scope.Bind("/etc/resolv.conf", "/etc/resolv.conf", readonly=True))
        return scope.ScopePlan(
            root=str(self.config.runtime_dir / "scope-root"),
            hostname=spec.name,
            binds=tuple(binds),
            etc_files=scope.etc_files(spec.name, ident.name, ident.uid, ident.gid),
            network=caps.network.value,
            veth_address=caps.veth.address if caps.veth else "",
            veth_peer=caps.veth.peer if caps.veth else "",
            veth_host_name=scope.veth_name(spec.name),
            caps=tuple(scope.CAP_NUMBERS[c] for c in caps.caps),
            seccomp_deny=caps.seccomp_deny,
        )

    def _environment(self, rt: CapsuleRuntime, ident: Identity) -> dict[str, str]:
        assert rt.spec is not None
        env = {"PATH": SYSTEM_PATH, "HOME": ident.home, "USER": ident.name, "LOGNAME": ident.name,
               "LANG": "C.UTF-8", "EXO_CAPSULE": rt.name, "TERM": "linux" if rt.spec.console else "dumb"}
        if rt.spec.readiness.kind is ReadinessKind.NOTIFY or rt.spec.watchdog_sec > 0:
            env["NOTIFY_SOCKET"] = str(self.config.notify_socket)
        if rt.spec.capabilities.bus:  # (libdbus's default is /var/run/..., not in a scoped world)
            env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={SYSTEM_BUS_DIR}/system_bus_socket"
        if rt.spec.capabilities.display:
            env["XDG_RUNTIME_DIR"] = str(self.config.wayland_dir)
            env["WAYLAND_DISPLAY"] = WAYLAND_SOCKET
        if rt.spec.watchdog_sec > 0:
            env["WATCHDOG_USEC"] = str(int(rt.spec.watchdog_sec * 1_000_000))
        env.update(dict(rt.spec.env))
        return env

    def _start(self, rt: CapsuleRuntime) -> None:
        spec = rt.spec
        assert spec is not None
        if rt.next_spec is not None:
            spec = rt.spec = rt.next_spec
            rt.next_spec = None
        self.change_state(rt, State.STARTING, "starting")
        try:
            ident = rt.identity = self._resolve_identity(spec)
            plan_scope = self._scope_plan(spec, ident) if spec.capabilities.isolated else None
        except (ValueError, LookupError) as e:
            self._fail(rt, str(e))
            return
        cgroup_procs = None
        if self.cgroups is not None:
            try:
                if self.cgroups.populated(rt.name):
                    self.cgroups.kill(rt.name)
                cgroup_procs = self.cgroups.prepare(rt.name, spec.quotas) / "cgroup.procs"
            except QuotaError as e:
                self._fail(rt, str(e))
                return
            except OSError as e:
                self._fail(rt, f"cgroup: {e.strerror}")
                return
        log_r, log_w = os.pipe2(os.O_CLOEXEC)
        extra: dict[int, int] = {}
        notify_w = None
        if spec.readiness.kind is ReadinessKind.FD:
            notify_r, notify_w = os.pipe2(os.O_CLOEXEC)
            extra[spec.readiness.fd] = notify_w
            rt.notify_fd = notify_r
            os.set_blocking(notify_r, False)
            self.loop.add_reader(notify_r, lambda: self._on_notify_fd(rt, notify_r))
        plan = SpawnPlan(
            argv=spec.argv, env=self._environment(rt, ident), uid=ident.uid, gid=ident.gid, groups=ident.groups,
            workdir=spec.workdir, cgroup_procs=cgroup_procs, stdout_fd=log_w, extra_fds=extra,
            console=spec.console, scope=plan_scope,
        )
        try:
            pid, err_fd = spawn(plan)
        except OSError as e:
            for fd in (log_r, log_w, notify_w, rt.notify_fd):
                if fd is not None:
                    self._close_fd(fd)
            rt.notify_fd = None
            self._fail(rt, f"fork: {e.strerror}")
            return
        finally:
            os.close(log_w)
            if notify_w is not None:
                os.close(notify_w)
        rt.pid, rt.pgid, rt.started_at, rt.ready_at, rt.err_fd = pid, pid, time.monotonic(), None, err_fd
        rt.scoped = plan_scope is not None
        rt.status_text = ""
        self.by_pid[pid] = rt
        os.set_blocking(log_r, False)
        rt.log_fd = log_r
        self.loop.add_reader(log_r, lambda: self._on_log(rt, log_r))
        self.loop.add_reader(err_fd, lambda: self._on_exec_result(rt, err_fd))
        if spec.readiness.timeout > 0 and not rt.is_oneshot:
            rt.set_timer("ready", self.loop.call_later(spec.readiness.timeout, lambda: self._ready_timeout(rt)))

    def _close_fd(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        try:
            os.close(fd)
        except OSError:
            pass

    def _on_exec_result(self, rt: CapsuleRuntime, fd: int) -> None:
        self.loop.remove_reader(fd)
        if rt.err_fd != fd:
            return
        rt.err_fd = None
        error = read_spawn_error(fd)
        if error is not None:
            self._spawn_failed(rt, error)
            return
        self._exec_succeeded(rt)

    def _exec_succeeded(self, rt: CapsuleRuntime) -> None:
        assert rt.spec is not None
        kind = rt.spec.readiness.kind
        if rt.is_oneshot:
            return
        if kind is ReadinessKind.STARTED:
            self._ready(rt, "started")
        elif kind in (ReadinessKind.FILE, ReadinessKind.TCP):
            self._probe(rt)
        if rt.spec.watchdog_sec > 0:
            rt.last_watchdog = time.monotonic()
            self._arm_watchdog(rt)

    def _spawn_failed(self, rt: CapsuleRuntime, error: str) -> None:
        # The child exits 127 after reporting; its exit is reaped normally, but the capsule has
        # already failed: a missing program or bad working directory will not fix itself.
        self._abandon(rt, "failed spawn")
        self._cleanup_run(rt)
        self._fail(rt, error)

    def _abandon(self, rt: CapsuleRuntime, why: str) -> None:
        """Detach the current main process from the capsule: its exit is reaped but changes nothing."""
        if rt.pid is not None:
            self.by_pid.pop(rt.pid, None)
            self.abandoned[rt.pid] = f"{rt.name}: {why}"
        rt.pid = None

    def _fail(self, rt: CapsuleRuntime, reason: str) -> None:
        rt.wanted = False
        if rt.state is not State.FAILED:
            self.change_state(rt, State.FAILED, reason)
        log.error("capsule %r: %s", rt.name, reason)
        self.schedule()

    # --- readiness ------------------------------------------------------------------------------

    def _ready(self, rt: CapsuleRuntime, how: str) -> None:
        if rt.state is not State.STARTING:
            return
        rt.cancel_timer("ready")
        rt.cancel_timer("probe")
        rt.ready_at = time.monotonic()
        self.change_state(rt, State.READY, how)
        self.schedule()

    def _probe(self, rt: CapsuleRuntime) -> None:
        if rt.state is not State.STARTING or rt.spec is None:
            return
        r = rt.spec.readiness
        ok = probe_file(r.path) if r.kind is ReadinessKind.FILE else probe_tcp(r.host, r.port)
        if ok:
            self._ready(rt, f"probe {r.kind.value} ok")
        else:
            rt.set_timer("probe", self.loop.call_later(PROBE_INTERVAL, lambda: self._probe(rt)))

    def _ready_timeout(self, rt: CapsuleRuntime) -> None:
        rt.timers.pop("ready", None)
        if rt.state is State.STARTING and rt.spec is not None:
            self._run_failed(rt, f"not ready within {rt.spec.readiness.timeout:g} s")

    def _on_notify(self) -> None:
        assert self.notify is not None
        for pid, fields in self.notify.receive():
            rt = self.by_pid.get(pid)
            if rt is None and self.cgroups is not None:
                owner = self.cgroups.owner_of(pid)
                rt = self.capsules.get(owner) if owner else None
            if rt is None:
                log.debug("sd_notify from unknown pid %d ignored: %s", pid, fields)
                continue
            if "STATUS" in fields:
                rt.status_text = fields["STATUS"]
            if fields.get("WATCHDOG") == "1":
                rt.last_watchdog = time.monotonic()
                self._arm_watchdog(rt)
            if fields.get("READY") == "1" and rt.spec is not None and rt.spec.readiness.kind is ReadinessKind.NOTIFY:
                self._ready(rt, "sd_notify READY=1")

    def _on_notify_fd(self, rt: CapsuleRuntime, fd: int) -> None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if b"\n" in data:
            self._ready(rt, "notification fd")
        if not data or b"\n" in data:
            self._close_fd(fd)
            if rt.notify_fd == fd:
                rt.notify_fd = None

    def _arm_watchdog(self, rt: CapsuleRuntime) -> None:
        if rt.spec is None or rt.spec.watchdog_sec <= 0 or rt.state not in (State.STARTING, State.READY):
            return
        rt.set_timer("watchdog", self.loop.call_later(rt.spec.watchdog_sec, lambda: self._watchdog_missed(rt)))

    def _watchdog_missed(self, rt: CapsuleRuntime) -> None:
        rt.timers.pop("watchdog", None)
        if rt.state in (State.STARTING, State.READY) and rt.pid is not None:
            log.warning("capsule %r missed its watchdog; aborting it", rt.name)
            rt.last_exit = "watchdog timeout"
            self._run_failed(rt, "watchdog timeout")

    # --- logs -----------------------------------------------------------------------------------

    def _on_log(self, rt: CapsuleRuntime, fd: int) -> None:
        for _ in range(64):  # bounded: a chatty capsule must not starve the loop
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._on_log_eof(rt, fd)
                return
            if rt.log is not None:
                rt.log.feed(data)

    def _on_log_eof(self, rt: CapsuleRuntime, fd: int) -> None:
        if rt.log is not None:
            rt.log.flush_partial()
        self._close_fd(fd)
        if rt.log_fd == fd:
            rt.log_fd = None

    def _drain_log(self, rt: CapsuleRuntime) -> None:
        """Read what the capsule wrote before it exited (its pipe may be behind the SIGCHLD)."""
        if rt.log_fd is not None:
            self._on_log(rt, rt.log_fd)

    # --- exits ----------------------------------------------------------------------------------

    def reap(self) -> None:
        """The only place children are waited for: every exit, capsule or orphan, comes here."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rt = self.by_pid.pop(pid, None)
            if rt is not None:
                self._main_exited(rt, status)
            elif pid in self.abandoned:
                log.debug("reaped %d (%s): %s", pid, self.abandoned.pop(pid), describe_status(status))
            else:
                self.orphans_reaped += 1
                log.debug("reaped orphan %d: %s", pid, describe_status(status))

    def _main_exited(self, rt: CapsuleRuntime, status: int) -> None:
        if rt.err_fd is not None:  # the exit beat the error pipe: read it now
            fd, rt.err_fd = rt.err_fd, None
            self.loop.remove_reader(fd)
            error = read_spawn_error(fd)
            if error is not None:
                rt.pid = None
                self._cleanup_run(rt)
                self._fail(rt, error)
                return
            self._exec_succeeded(rt)
        rt.pid = None
        rt.last_exit = describe_status(status, rt.scoped) if rt.last_exit != "watchdog timeout" else rt.last_exit
        last_output = ""
        if rt.log is not None:
            self._drain_log(rt)
            last_output = rt.log.recent[-1].split(" ", 1)[-1] if rt.log.recent else ""
            rt.log.line(f"[exo_init] main process {rt.last_exit}")
        code = os.waitstatus_to_exitcode(status)
        if rt.state is State.STOPPING:
            self._kill_rest_then(rt, lambda: self._stopped(rt))
            return
        if rt.spec is None:
            return
        clean = code == 0 and rt.last_exit != "watchdog timeout"
        if rt.is_oneshot and clean:
            self._cleanup_run(rt)
            self.change_state(rt, State.EXITED, rt.last_exit)
            self._kill_rest_then(rt, self.schedule)
            return
        policy = rt.spec.restart.policy
        if clean and policy is not RestartPolicy.ALWAYS:
            self._cleanup_run(rt)
            self.change_state(rt, State.EXITED, rt.last_exit)
            self._kill_rest_then(rt, self.schedule)
            return
        reason = rt.last_exit + (f" (last output: {last_output[:160]!r})" if last_output else "")
        self._run_failed(rt, reason, already_dead=True)

    def _run_failed(self, rt: CapsuleRuntime, reason: str, already_dead: bool = False) -> None:
        """The current run ended badly (or must be ended): restart with backoff, or give up."""
        assert rt.spec is not None
        if not already_dead and rt.pid is not None:
            try:
                os.kill(rt.pid, signal.SIGABRT if reason == "watchdog timeout" else signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._kill_group(rt)
            # The reaper will see the exit; the capsule's state changes now.
            self._abandon(rt, "abandoned run")
        self._cleanup_run(rt)
        now = time.monotonic()
        ran_for = now - (rt.started_at or now)
        policy = rt.spec.restart
        if ran_for >= policy.reset_after:
            rt.consecutive_failures = 0
        rt.consecutive_failures += 1
        rt.failure_times.append(now)
        if policy.policy is RestartPolicy.NEVER or not rt.wanted:
            rt.wanted = False
            self._kill_rest_then(rt, lambda: None)
            self.change_state(rt, State.FAILED, reason)
            self.schedule()
            return
        if start_limit_hit(policy, rt.failure_times, now):
            rt.wanted = False
            self._kill_rest_then(rt, lambda: None)
            self.change_state(
                rt, State.FAILED,
                f"{reason}; start limit hit ({policy.limit_burst} failures within {policy.limit_interval:g} s)",
            )
            self.schedule()
            return
        delay = backoff_delay(policy, rt.consecutive_failures)
        self.change_state(rt, State.BACKOFF, f"{reason}; restart in {delay:.2f} s")
        self._kill_group(rt)
        rt.set_timer("backoff", self.loop.call_later(delay, lambda: self._backoff_over(rt)))
        self.schedule()

    def _backoff_over(self, rt: CapsuleRuntime) -> None:
        rt.timers.pop("backoff", None)
        if rt.state is not State.BACKOFF:
            return
        if not rt.wanted:
            self.change_state(rt, State.STOPPED, "stop requested")
            self.schedule()
            return
        rt.restarts += 1
        self.change_state(rt, State.STOPPED, "backoff over")
        self.schedule()

    def _cleanup_run(self, rt: CapsuleRuntime) -> None:
        for key in ("ready", "probe", "watchdog", "stop"):
            rt.cancel_timer(key)
        if rt.notify_fd is not None:
            self._close_fd(rt.notify_fd)
            rt.notify_fd = None

    # --- stop -----------------------------------------------------------------------------------

    def _begin_stop(self, rt: CapsuleRuntime, reason: str) -> None:
        if rt.state is State.BACKOFF:
            rt.cancel_timer("backoff")
            self.change_state(rt, State.STOPPED, reason)
            self._after_stopped(rt)
            return
        if rt.state not in (State.STARTING, State.READY):
            return
        assert rt.spec is not None
        self.change_state(rt, State.STOPPING, reason)
        self._cleanup_run(rt)
        if rt.pid is not None:
            try:
                os.kill(rt.pid, rt.spec.stop.signal)
                os.kill(rt.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            rt.set_timer("stop", self.loop.call_later(rt.spec.stop.timeout, lambda: self._stop_timeout(rt)))
        else:
            self._kill_rest_then(rt, lambda: self._stopped(rt))

    def _stop_timeout(self, rt: CapsuleRuntime) -> None:
        rt.timers.pop("stop", None)
        if rt.state is State.STOPPING:
            log.warning("capsule %r did not stop within %g s; killing it", rt.name,
                        rt.spec.stop.timeout if rt.spec else 0)
            self._kill_group(rt)
            if rt.pid is not None:
                try:
                    os.kill(rt.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _kill_group(self, rt: CapsuleRuntime) -> None:
        """SIGKILL everything of the capsule: its cgroup, or (no cgroups) its process group."""
        if self.cgroups is not None:
            self.cgroups.kill(rt.name)
        elif rt.pgid is not None:
            try:
                os.killpg(rt.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _kill_rest_then(self, rt: CapsuleRuntime, then: Callable[[], None], waited: float = 0.0) -> None:
        """Kill whatever is left in the capsule's cgroup, then call `then` once it is empty
        (polled; bounded at 10 s, after which `then` runs anyway and the leftovers are logged)."""
        if self.cgroups is None:
            self._kill_group(rt)  # the process group: the best that can be done without cgroups
            then()
            return
        if not self.cgroups.populated(rt.name):
            then()
            return
        if waited == 0.0:
            self.cgroups.kill(rt.name)
        if waited >= 10.0:
            log.error("capsule %r: processes %s survive cgroup.kill", rt.name, self.cgroups.pids(rt.name))
            then()
            return
        self.loop.call_later(EMPTY_POLL, lambda: self._kill_rest_then(rt, then, waited + EMPTY_POLL))

    def _stopped(self, rt: CapsuleRuntime) -> None:
        if rt.state is not State.STOPPING:
            return
        rt.cancel_timer("stop")
        self.change_state(rt, State.STOPPED, "stopped")
        self._after_stopped(rt)

    def _after_stopped(self, rt: CapsuleRuntime) -> None:
        if rt.remove_when_stopped:
            self._remove(rt)
        elif rt.next_spec is not None:
            rt.spec, rt.next_spec = rt.next_spec, None
        self.schedule()

    # --- status ---------------------------------------------------------------------------------

    def _sample(self) -> None:
        self.loop.call_later(SAMPLE_INTERVAL, self._sample)
        if self.cgroups is None:
            return
        now = time.monotonic()
        for rt in self.capsules.values():
            usage = self.cgroups.stats(rt.name).cpu_usage_usec
            if rt.cpu_sample is not None and now > rt.cpu_sample[0]:
                dt = now - rt.cpu_sample[0]
                rt.cpu_percent = max(0.0, (usage - rt.cpu_sample[1]) / 1e6 / dt * 100)
            rt.cpu_sample = (now, usage)

    def status(self, name: str) -> dict[str, object]:
        rt = self.capsules[name]
        now = time.monotonic()
        out: dict[str, object] = {
            "name": name,
            "state": rt.state.value,
            "wanted": rt.wanted,
            "pid": rt.pid,
            "since": round(now - rt.state_since, 3),
            "uptime": round(now - rt.started_at, 3) if rt.started_at and rt.state in RUNNING else None,
            "restarts": rt.restarts,
            "last_exit": rt.last_exit,
            "reason": rt.reason,
            "status_text": rt.status_text,
            "error": rt.load_error,
            "type": rt.spec.type.value if rt.spec else None,
            "description": rt.spec.description if rt.spec else "",
            "cpu_percent": round(rt.cpu_percent, 1),
            "log": str(rt.log.path) if rt.log else None,
        }
        if self.cgroups is not None and self.cgroups.path(name).is_dir():
            stats = self.cgroups.stats(name)
            out["cgroup"] = {k: getattr(stats, k) for k in stats.__dataclass_fields__}
        return out

    def status_all(self) -> list[dict[str, object]]:
        return [self.status(name) for name in sorted(self.capsules)]

    def freeze(self, name: str, frozen: bool) -> None:
        if name not in self.capsules:
            raise KeyError(name)
        if self.cgroups is None:
            raise OSError(errno.ENOTSUP, "freezing needs cgroup2")
        self.cgroups.freeze(name, frozen)
        rt = self.capsules[name]
        if rt.log is not None:
            rt.log.line(f"[exo_init] {'frozen' if frozen else 'thawed'}")

    # --- shutdown -------------------------------------------------------------------------------

    def request_shutdown(self, action: str) -> None:
        if self.shutdown_action is not None:
            return
        self.shutdown_action = action
        log.info("%s: stopping capsules", action)
        limit = 5.0
        for rt in self.capsules.values():
            rt.wanted = False
            rt.restart_requested = False
            if rt.spec is not None:
                limit = max(limit, rt.spec.stop.timeout + 2.0)
        self.loop.call_later(min(limit, 120.0), self._shutdown_deadline)
        self.schedule()

    def _shutdown_deadline(self) -> None:
        if self.done:
            return
        left = [rt.name for rt in self.capsules.values() if rt.state in RUNNING]
        log.warning("shutdown: capsules still running after the deadline, killing: %s", ", ".join(left))
        for rt in self.capsules.values():
            self._kill_group(rt)
        self.done = True

    def kill_all_capsules(self) -> None:
        for rt in self.capsules.values():
            self._kill_group(rt)

    def teardown_cgroups(self) -> None:
        """Not PID 1: leave the host's cgroup tree as we found it."""
        if self.cgroups is not None:
            for rt in self.capsules.values():
                self._kill_group(rt)
            self.cgroups.teardown()

    def close(self) -> None:
        if self.notify is not None:
            self.notify.close()
