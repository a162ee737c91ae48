"""exo_init entry point. `main()` reads as a checklist; see README "PID 1" for the signal map.

Signals (PID 1):   SIGINT (Ctrl-Alt-Del) = reboot, SIGTERM / SIGPWR / SIGUSR2 = poweroff,
                   SIGHUP = reload the manifest, SIGCHLD = reap.
Signals (not PID 1, a child subreaper for tests): SIGINT / SIGTERM = stop capsules and exit.
Signal handlers do nothing: the C-level handler writes the signal number to a wakeup fd that
the main loop reads.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path

from exo_init.pid1 import early, syscalls
from exo_init.pid1.config import SYSTEM_PATH, Config, parse_args
from exo_init.pid1.control import ControlServer, make_handler
from exo_init.pid1.generations import GenerationStore
from exo_init.pid1.log import add_logfile, log, setup_logging
from exo_init.pid1.manifest import (
    Capabilities,
    Capsule,
    Manifest,
    ManifestError,
    Restart,
    RestartPolicy,
    empty_manifest,
)
from exo_init.pid1.spawn import SpawnPlan, Wiring, spawn
from exo_init.pid1.statedisk import prepare_state_dir
from exo_init.pid1.supervisor import ShutdownAction, Supervisor
from exo_init.pid1.switch import Switcher, boot_manifest

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn, TextIO, TypeVar

    T = TypeVar("T")

HANDLED_SIGNALS = (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPWR, signal.SIGUSR2)
EMERGENCY_SHELLS = ("/bin/sh", "/run/current-system/sw/bin/sh")
LOOP_FAILURES_BEFORE_EMERGENCY = 10


def install_signal_wakeup(sup: Supervisor) -> tuple[socket.socket, socket.socket]:
    """Route signals to the loop: handlers are no-ops, the wakeup fd carries the numbers."""
    rsock, wsock = socket.socketpair()
    for s in (rsock, wsock):
        s.setblocking(False)
        os.set_inheritable(s.fileno(), False)
    signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    no_op_signal_handlers()

    def on_signals() -> None:
        try:
            data = rsock.recv(4096)
        except BlockingIOError:
            data = b""
        for signum in data:
            dispatch_signal(sup, signum)
        sup.reap()  # also covers SIGCHLDs whose bytes were dropped by a full buffer

    sup.loop.add_reader(rsock.fileno(), on_signals)
    return rsock, wsock  # the caller keeps both alive for the life of the loop


def dispatch_signal(sup: Supervisor, signum: int) -> None:
    if signum == signal.SIGCHLD:
        return  # reaped after the batch
    if signum == signal.SIGHUP:
        try:
            sup.reload()
        except ManifestError as e:
            log.error("reload refused: %s", e)
        return
    if sup.config.pid1:
        action = ShutdownAction.REBOOT if signum == signal.SIGINT else ShutdownAction.POWEROFF
    else:
        action = ShutdownAction.EXIT
    log.info("signal %s: %s", signal.Signals(signum).name, action)
    sup.request_shutdown(action)


def emergency_capsule() -> Capsule:
    """The recovery shell: root on the console, unconfined (`host`): a scoped shell with no grants
    could repair nothing."""
    shell = next((s for s in EMERGENCY_SHELLS if os.access(s, os.X_OK)), EMERGENCY_SHELLS[0])
    return Capsule(name="emergency", argv=(shell,), user="root", console=True, description="emergency shell",
                   restart=Restart(policy=RestartPolicy.ALWAYS, limit_burst=1000),
                   capabilities=Capabilities(host=True))


def open_generations(sup: Supervisor) -> Switcher | None:
    """The generation store (on the state disk when there is one) and the switcher; None if even
    the volatile fallback cannot be written (then the image's manifest boots, without generations)."""
    state_dir, warnings = prepare_state_dir(sup.config)
    for warning in warnings:
        log.warning("%s", warning)
    for candidate in dict.fromkeys((state_dir, sup.config.runtime_dir / "state")):
        try:
            store = GenerationStore(candidate / "generations")
        except OSError as e:
            log.error("generation store in %s unusable: %s", candidate, e)
            continue
        log.info("state directory %s", candidate)
        sup.state_dir = candidate
        return Switcher(sup, store, None, candidate / "events.jsonl")
    return None


def load_boot_manifest(sup: Supervisor, switcher: Switcher | None = None) -> Manifest:
    try:
        if switcher is not None:
            try:
                manifest, booted = boot_manifest(switcher.store, sup.config.manifest, sup.config.generation)
            except OSError as e:
                log.error("generation store: %s; booting the image manifest", e)
                return sup.load()
            switcher.booted = switcher.running = booted
            return manifest
        return sup.load()
    except ManifestError as e:
        log.error("%s", e)
        return emergency_manifest()


def emergency_manifest() -> Manifest:
    """No usable manifest: the recovery shell as the only capsule."""
    log.error("no usable manifest: starting the emergency shell (root) on the console")
    cap = emergency_capsule()
    return Manifest(hostname="exosphere", capsules={cap.name: cap}, errors={}, source="(emergency)")


def run_guarded(sup: Supervisor) -> None:
    """Run the loop until shutdown is complete. An exception is logged (one line on the console,
    the traceback in the log file) and the loop re-entered; PID 1 never unwinds out of here."""
    failures: deque[float] = deque()
    emergency_started = False
    while not sup.done:
        try:
            while not sup.done:
                sup.loop.run_once(5.0)
                sup.reap()
        except BaseException as e:
            log.error("supervisor error (continuing)", exc_info=e)
            now = time.monotonic()
            failures.append(now)
            while failures and now - failures[0] > 60:
                failures.popleft()
            if len(failures) >= LOOP_FAILURES_BEFORE_EMERGENCY and not emergency_started:
                emergency_started = True
                if not sup.config.pid1:
                    log.error("too many supervisor errors; exiting")
                    sup.kill_all_capsules()
                    sys.exit(1)
                start_emergency_shell()
                last_resort_reaper()


def start_emergency_shell() -> None:
    cap = emergency_capsule()
    log.error("too many supervisor errors: emergency shell %s on the console", cap.argv[0])
    try:
        _null_r, null_w = os.pipe()
        spawn(SpawnPlan(argv=cap.argv, env={"PATH": SYSTEM_PATH, "TERM": "linux"}, uid=0, gid=0, groups=(),
                        workdir="/", console=True), Wiring(stdout_fd=null_w))
    except OSError as e:
        log.error("emergency shell failed: %s", e)


def last_resort_reaper() -> NoReturn:
    """Nothing left to supervise with: just reap forever, so the kernel never panics."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(1)
        except BaseException:  # noqa: S110
            pass


def final_shutdown_pid1(action: str) -> None:
    """Everything left gets SIGTERM, a grace period, SIGKILL; then sync, unmount, reboot(2)."""
    log.info("sending SIGTERM to remaining processes")
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(-1, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
    os.sync()
    unmount_all()
    os.sync()
    log.info("%s", "powering off" if action == ShutdownAction.POWEROFF else "rebooting")
    try:
        syscalls.reboot(syscalls.RB_POWER_OFF if action == ShutdownAction.POWEROFF else syscalls.RB_AUTOBOOT)
    except OSError as e:
        log.error("%s", e)
    last_resort_reaper()


def unmount_all() -> None:
    keep = {"/", "/proc", "/sys", "/dev"}
    try:
        targets = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    for target in reversed(targets):
        if target in keep:
            continue
        try:
            syscalls.umount(target)
        except OSError:
            try:
                syscalls.mount("none", target, "", syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
            except OSError:
                pass
    try:
        syscalls.mount("none", "/", "", syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
    except OSError:
        pass


def console_stream(pid1: bool) -> TextIO:
    return early.console_for_status() if pid1 else sys.stderr


def step(what: str, fn: Callable[[], T], fallback: T) -> T:
    """One step of the boot checklist: its result, or (it failed) one line on the console, the
    traceback in the log file, and `fallback`: the boot goes on, degraded. Nothing a step raises
    (a value in a manifest, a failing syscall, out of file descriptors) can end PID 1."""
    try:
        return fn()
    except (Exception, SystemExit) as e:  # (SystemExit: the option parser refusing a command line)
        log.error("boot step failed (continuing without it): %s", what, exc_info=e)  # (+ ": Type: message")
        return fallback


def warn_all(warnings: list[str]) -> None:
    for warning in warnings:
        log.warning("%s", warning)


def no_op_signal_handlers() -> None:
    """First thing: no signal may kill PID 1 or raise in it before the loop routes them (Python's
    own SIGINT handler raises KeyboardInterrupt). The loop's wakeup fd is installed later."""
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, lambda _signum, _frame: None)


def main(argv: list[str] | None = None) -> None:
    pid1 = os.getpid() == 1
    no_op_signal_handlers()
    warnings: list[str] = []
    setup_logging(sys.stderr, None)  # (until the console is set up: what the kernel gave us)
    if pid1:
        warnings += step("API file systems", early.mount_api_filesystems, [])
        warnings += step("base directories", early.make_base_directories, [])
        warnings += step("console", early.setup_console, [])
        warnings += step("Ctrl-Alt-Del", early.disable_ctrl_alt_del, [])
    os.environ["PATH"] = SYSTEM_PATH
    os.environ.setdefault("LANG", "C.UTF-8")
    args = sys.argv[1:] if argv is None else argv
    config: Config = step("command line", lambda: parse_args(args, pid1), None) or parse_args([], pid1)
    console = step("console output", lambda: console_stream(pid1), sys.stderr)
    setup_logging(console, None, config.debug)
    log.info("exo_init starting as %s (pid %d)", "PID 1" if pid1 else "child subreaper", os.getpid())
    step("runtime directory", lambda: config.runtime_dir.mkdir(parents=True, exist_ok=True), None)
    add_logfile(config.runtime_dir / "exo_init.log")
    warn_all(warnings)
    warn_all(step("file descriptor limit", early.raise_fd_limit, []))
    if pid1:
        warn_all(step("kernel hardening sysctls", early.harden_sysctls, []))
    else:
        step("child subreaper", lambda: syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1), None)
    sup = step("supervisor", lambda: Supervisor(config, console), None)
    if sup is None:  # (no event loop: nothing to supervise with)
        if not pid1:
            sys.exit(1)
        start_emergency_shell()
        last_resort_reaper()
    step("supervisor set-up (cgroups, sd_notify socket)", sup.setup, None)
    wakeup = step("signals", lambda: install_signal_wakeup(sup), None)
    switcher = step("generation store", lambda: open_generations(sup), None)
    control = step("control socket", lambda: ControlServer(
        sup.loop, config.control_socket, make_handler(sup, switcher), config.root_control_socket,
        may_mutate=lambda uid, op: sup.manager(uid, op) is not None), None)
    if control is not None:
        sup.listeners.append(control.publish)
        sup.health_listeners.append(control.publish)
    manifest = step("boot manifest", lambda: load_boot_manifest(sup, switcher), None) or emergency_manifest()
    if pid1:
        warn_all(step("hostname", lambda: early.set_hostname(manifest.hostname), []))
    log.info("manifest %s: %d capsules, %d with errors", manifest.source, len(manifest.capsules),
             len(manifest.errors))
    step("apply the manifest",
         lambda: sup.apply(manifest if manifest.capsules or manifest.errors else empty_manifest(manifest.source)),
         None)
    step("boot complete check", sup.check_boot_complete, None)
    run_guarded(sup)
    action = sup.shutdown_action or ShutdownAction.EXIT
    if control is not None:
        step("close the control socket", control.close, None)
    step("close the supervisor", sup.close, None)
    signal.set_wakeup_fd(-1)
    for sock in wakeup or ():
        sock.close()
    if pid1:
        final_shutdown_pid1(action)
    step("remove the cgroups", sup.teardown_cgroups, None)
    sup.reap()
    log.info("exo_init exiting")
    sys.exit(0)


if __name__ == "__main__":
    main()
