"""fork + exec of one capsule process, entering its cgroup before exec.

The child reports any failure before exec through a close-on-exec pipe: EOF with no data means
the exec succeeded. The parent never blocks on it; the supervisor reads it from its loop.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import termios
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from exo_init.pid1 import scope, zygote
from exo_init.pid1.manifest import Quotas


@dataclass(frozen=True)
class SpawnPlan:
    """One run of a capsule, decided before the fork (plan.py builds it from the manifest)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    uid: int
    gid: int
    groups: tuple[int, ...]
    workdir: str
    user: str = "root"             # the name the uid goes by (dynamic uids: the capsule's name)
    console: bool = False          # stdin/stdout/stderr on /dev/console as controlling tty
    notify_fd: int | None = None   # readiness.kind = fd: the fd number the notification pipe gets
    scope: scope.ScopePlan | None = None  # isolated: own namespaces and root (see scope.py)
    ns_init: str | None = None     # isolated: the small init the namespace's PID 1 becomes (None: nsinit in Python)
    python: zygote.PythonRun | None = None  # run this Python program in the fork instead of exec'ing (zygote.py)
    quotas: Quotas = field(default_factory=Quotas)  # the cgroup limits declared (written before the fork)
    default_quotas: Quotas = field(default_factory=Quotas)  # where none is declared, if the controller is there
    state_dir: str | None = None   # a runtime capsule's writable directory: made (owned by uid) before the fork


@dataclass(frozen=True)
class Wiring:
    """The run-time resources a plan is spawned with (opened by the runner)."""

    stdout_fd: int                 # the log pipe's write end (stdout and stderr)
    notify_w: int | None = None    # the notification pipe's write end, for plan.notify_fd
    cgroup_procs: Path | None = None  # write our PID here before exec


def spawn(plan: SpawnPlan, wiring: Wiring) -> tuple[int, int]:
    """Fork a child that execs `plan`; returns (pid, read end of the error pipe). OSError if the
    fork (or the PID namespace for it) fails; every fd it opened is closed again then."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = -1
    # Every signal blocked across the fork: the child resets PID 1's handlers before it lets one
    # in (none of them may run in the child), and a scoped child keeps the forwarded ones blocked
    # until its namespace's init waits for them (see _child). PID 1 gets its own at the unblock.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        if plan.scope is not None:
            scope.new_pid_namespace_for_next_child()
        pid = os.fork()
    except OSError:
        os.close(err_r)
        os.close(err_w)
        raise
    finally:
        if pid != 0:
            if plan.scope is not None:
                scope.restore_pid_namespace()
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if pid == 0:  # child: nothing here may return or raise
        try:
            # The error pipe must survive the fd shuffle: above every fd number the plan targets.
            err_w = _dup_above(err_w, max(3, plan.notify_fd or 0) + 1)
            _child(plan, wiring, err_w)
        except BaseException as e:
            stage = getattr(e, "stage", "setup")
            msg = f"{stage}: {e.strerror if isinstance(e, OSError) and e.strerror else e}"
            try:
                os.write(err_w, msg.encode(errors="replace")[:4000])
            finally:
                os._exit(127)
        os._exit(127)
    os.close(err_w)
    return pid, err_r


def _step(stage: str, fn: object, *args: object) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except OSError as e:
        e.stage = stage  # type: ignore[attr-defined]
        raise


def _child(plan: SpawnPlan, wiring: Wiring, err_w: int) -> None:
    # Signals: undo what Python set up (SIGPIPE/SIGXFSZ ignored, handlers installed).
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPWR, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    # A scoped child is its PID namespace's init: the kernel drops a signal such an init has no
    # handler for unless it is blocked, so a stop signal sent before the small init (or our nsinit)
    # waits for signals would be lost and the stop would take its timeout's SIGKILL. Blocked, it
    # stays pending across exec until dumb-init's sigwait (or nsinit's sigwaitinfo) takes it.
    signal.pthread_sigmask(signal.SIG_SETMASK, set() if plan.scope is None else scope.FORWARDED_SIGNALS)
    if wiring.cgroup_procs is not None:
        _step(f"cgroup {wiring.cgroup_procs.parent}", wiring.cgroup_procs.write_text, "0\n")
    os.setsid()
    if plan.console:
        fd = _step("open /dev/console", os.open, "/dev/console", os.O_RDWR)
        assert isinstance(fd, int)
        try:
            fcntl.ioctl(fd, termios.TIOCSCTTY, 1)
        except OSError:
            pass  # no controlling tty is acceptable (no job control)
        for target in (0, 1, 2):
            os.dup2(fd, target)
    else:
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(wiring.stdout_fd, 1)
        os.dup2(wiring.stdout_fd, 2)
    extra = {plan.notify_fd: wiring.notify_w} if plan.notify_fd is not None and wiring.notify_w is not None else {}
    # Put extra fds in place: first move sources out of the way of the targets.
    moved = {target: os.dup(src) for target, src in extra.items()}
    for target, src in moved.items():
        os.dup2(src, target)
    keep = {0, 1, 2, err_w, *extra}
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    for target in extra:
        os.set_inheritable(target, True)
    # The conventional soft limit back, now that PID 1's fds are closed: lowered while they were
    # open (two or three per running capsule), every open() above failed with EMFILE once ~500
    # capsules ran (PID 1 raised its own: early.raise_fd_limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft > scope.CAPSULE_FD_LIMIT:
        resource.setrlimit(resource.RLIMIT_NOFILE, (scope.CAPSULE_FD_LIMIT, hard))
    if plan.scope is not None:
        _scoped(plan, plan.scope, tuple(extra), err_w)
    elif os.getuid() == 0:
        _step("setgroups", os.setgroups, list(plan.groups))
        _step(f"setgid {plan.gid}", os.setgid, plan.gid)
        _step(f"setuid {plan.uid}", os.setuid, plan.uid)
    _step(f"chdir {plan.workdir}", os.chdir, plan.workdir)
    if plan.python is not None:
        zygote.run(plan.python, plan.argv, dict(plan.env), err_w)
    _step(f"exec {plan.argv[0]}", os.execve, plan.argv[0], list(plan.argv), dict(plan.env))


def _dup_above(fd: int, lowest: int) -> int:
    """`fd` if it is already >= lowest, else a close-on-exec duplicate at or above `lowest`."""
    if fd >= lowest:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return new


def _scoped(plan: SpawnPlan, sp: scope.ScopePlan, extra_fds: tuple[int, ...], err_w: int) -> None:
    """We are PID 1 of the capsule's new PID namespace: build its world, then either become the
    small init of `plan.ns_init` (dumb-init), which forks and execs the program, or fork the main
    process and stay behind as its init in Python (scope.nsinit). Returns only in that main
    process, privileges dropped."""
    _step("scope", scope.enter, sp)
    if plan.ns_init is not None:
        _exec_ns_init(plan, plan.ns_init, sp)
    watched = set(scope.FORWARDED_SIGNALS) | {signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    main = os.fork()
    if main != 0:
        os.close(err_w)  # the main process holds the error pipe now: EOF = its exec succeeded
        for target in extra_fds:
            os.close(target)
        scope.nsinit(main)
    if plan.console:  # the main process gets the terminal: ^C reaches it, not its init
        os.setpgid(0, 0)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # else a background group taking the tty stops
        try:
            os.tcsetpgrp(0, os.getpid())
        except OSError:
            pass  # no controlling terminal: no job control, as in the unscoped case
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _step("privileges", scope.drop_privileges, sp, plan.uid, plan.gid, plan.groups)


def _exec_ns_init(plan: SpawnPlan, init: str, sp: scope.ScopePlan) -> None:
    """Drop privileges here, in the namespace's PID 1, and exec the small init with the program:
    it forwards signals to it, reaps, and exits with its status (128+signal if it was killed, the
    convention exo_init reads). A copy of PID 1's Python stays behind in no capsule: with it, each
    scoped capsule held ~3 MB of private memory; the small init holds ~0.1 MB, and runs as the
    capsule's uid without capabilities beyond the declared ones. The program is checked first, so
    a missing one is still the capsule's spawn error (the small init's exec succeeding says
    nothing about the program's)."""
    _step("privileges", scope.drop_privileges, sp, plan.uid, plan.gid, plan.groups)
    _step(f"chdir {plan.workdir}", os.chdir, plan.workdir)
    if not os.access(plan.argv[0], os.X_OK):
        code = errno.EACCES if os.path.exists(plan.argv[0]) else errno.ENOENT
        error = OSError(code, os.strerror(code))
        error.stage = f"exec {plan.argv[0]}"  # type: ignore[attr-defined]
        raise error
    # (The forwarded signals are still blocked, as _child left them: pending across the exec.)
    _step(f"exec {init}", os.execve, init, [init, "--single-child", "--", *plan.argv], dict(plan.env))


def read_spawn_error(fd: int) -> str | None:
    """Read the error pipe once it is readable: None = exec succeeded (EOF), else the message."""
    chunks = []
    try:
        while data := os.read(fd, 4096):  # the child writes once (atomically: < PIPE_BUF), then exits
            chunks.append(data)
    except BlockingIOError:
        # The message is there but the writer has not exited yet (a PID namespace's init takes a
        # while to go): the message is whole, EOF would add nothing.
        pass
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace") or None
