"""The supervisor's one boundary with the operating system.

Every system call the runners and the scheduler make goes through a `Host`: launching a run
(its cgroup and quotas, its pipes, the fork), signalling and killing, cgroup queries, readiness
probes and reading the pipes. `OsHost` is the real thing; the scheduler's unit tests
(tests/test_scheduler.py) give the same supervisor a fake one and a fake clock, and no process
is started. Without cgroup2 (host tests in child-subreaper mode) `OsHost` groups a capsule's
processes by session instead: the runners do not need to know.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from exo_init.pid1.cgroups import CgroupTree, QuotaError
from exo_init.pid1.manifest import Health, HealthKind, Quotas, Readiness, ReadinessKind
from exo_init.pid1.readiness import probe_file, probe_tcp
from exo_init.pid1.spawn import SpawnPlan, Wiring, read_spawn_error, spawn

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object


class LaunchError(Exception):
    """A run that could not be started (cgroup, quota or fork); the message says which."""


@dataclass(frozen=True)
class Launched:
    """A started run: its main pid and the read ends of its pipes (non-blocking, close-on-exec)."""

    pid: int
    err_fd: int                 # EOF without data: the exec succeeded (spawn.py)
    log_fd: int                 # stdout and stderr
    notify_fd: int | None       # readiness.kind = fd


@dataclass(frozen=True)
class CheckCommand:
    """A health check command (health.kind = "exec") for one run of a capsule."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    uid: int
    gid: int
    ns_pid: int | None          # an isolated capsule's namespace init: run in its namespaces and root


class Host(Protocol):
    @property
    def cgroup_root(self) -> Path | None: ...

    def launch(self, name: str, plan: SpawnPlan) -> Launched: ...

    def spawn_error(self, fd: int) -> str | None: ...

    def reap(self) -> Iterator[tuple[int, int]]: ...

    def read(self, fd: int, size: int) -> bytes | None: ...

    def close(self, fd: int) -> None: ...

    def signal(self, pid: int, sig: int) -> None: ...

    def kill_all(self, name: str, pgid: int | None) -> None: ...

    def populated(self, name: str) -> bool: ...

    def program_started(self, init_pid: int) -> bool: ...

    def leftovers(self, name: str) -> list[int]: ...

    def forget(self, name: str) -> None: ...

    def probe(self, readiness: Readiness | Health, ns_pid: int | None) -> bool: ...

    def spawn_check(self, name: str, check: CheckCommand) -> int: ...

    def kill_check(self, pid: int) -> None: ...

    def cpu_usage(self, name: str) -> int | None: ...

    def stats(self, name: str) -> dict[str, object] | None: ...

    def freeze(self, name: str, frozen: bool) -> None: ...

    def owner_of(self, pid: int) -> str | None: ...

    def teardown(self) -> None: ...


class OsHost:
    """The real system; `cgroups` None means no cgroup2 (processes grouped by session)."""

    def __init__(self, cgroups: CgroupTree | None) -> None:
        self.cgroups = cgroups

    @property
    def cgroup_root(self) -> Path | None:
        return self.cgroups.root if self.cgroups is not None else None

    def launch(self, name: str, plan: SpawnPlan) -> Launched:
        if plan.state_dir is not None:
            capsule_dir(Path(plan.state_dir), plan.uid, plan.gid)
        procs = self._prepare_cgroup(name, plan.quotas, plan.default_quotas)
        opened: list[int] = []
        try:
            log_r, log_w = _pipe(opened)
            notify_r, notify_w = _pipe(opened) if plan.notify_fd is not None else (None, None)
            pid, err_fd = spawn(plan, Wiring(stdout_fd=log_w, notify_w=notify_w, cgroup_procs=procs))
        except OSError as e:  # pipe2 or fork (EMFILE, EAGAIN, ENOMEM), or the PID namespace for it
            for fd in opened:
                os.close(fd)
            raise LaunchError(f"spawn: {e.strerror or e}") from None
        os.close(log_w)  # the child holds the write ends now
        if notify_w is not None:
            os.close(notify_w)
        for fd in (log_r, err_fd, *([notify_r] if notify_r is not None else [])):
            os.set_blocking(fd, False)
        return Launched(pid, err_fd, log_r, notify_r)

    def _prepare_cgroup(self, name: str, quotas: Quotas, defaults: Quotas) -> Path | None:
        if self.cgroups is None:
            return None
        try:
            if self.cgroups.populated(name):
                self.cgroups.kill(name)  # leftovers of an earlier run do not join the new one
            return self.cgroups.prepare(name, quotas, defaults) / "cgroup.procs"
        except QuotaError as e:
            raise LaunchError(str(e)) from None
        except OSError as e:
            raise LaunchError(f"cgroup: {e.strerror or e}") from None

    def spawn_error(self, fd: int) -> str | None:
        return read_spawn_error(fd)

    def reap(self) -> Iterator[tuple[int, int]]:
        """(pid, wait status) of every child that has ended, without blocking."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            yield pid, status

    def read(self, fd: int, size: int) -> bytes | None:
        """Up to `size` bytes; None if nothing is there now; b"" at EOF (or on an error)."""
        try:
            return os.read(fd, size)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def close(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    def signal(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def kill_all(self, name: str, pgid: int | None) -> None:
        """SIGKILL everything of the capsule: its cgroup, or (no cgroups) its process group."""
        if self.cgroups is not None:
            self.cgroups.kill(name)
        elif pgid is not None:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def program_started(self, init_pid: int) -> bool:
        """Whether a namespace's small init has started its program: a child of it runs another
        executable (its fork, until the exec, runs the init's own). True when it cannot be known."""
        try:
            own = os.readlink(f"/proc/{init_pid}/exe")
            with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
                children = f.read().split()
        except OSError:
            return True
        for child in children:
            try:
                if os.readlink(f"/proc/{child}/exe") != own:
                    return True
            except OSError:
                continue
        return False

    def populated(self, name: str) -> bool:
        """Whether the capsule's cgroup still holds processes (always False without cgroups)."""
        return self.cgroups is not None and self.cgroups.populated(name)

    def leftovers(self, name: str) -> list[int]:
        return self.cgroups.pids(name) if self.cgroups is not None else []

    def forget(self, name: str) -> None:
        if self.cgroups is not None:
            self.cgroups.remove(name)

    def probe(self, readiness: Readiness | Health, ns_pid: int | None) -> bool:
        """A file or TCP probe (readiness or health); `ns_pid` (a scoped capsule's namespace init):
        as seen from inside its root and its network namespace."""
        if readiness.kind in (ReadinessKind.FILE, HealthKind.FILE):
            return probe_file(readiness.path, None if ns_pid is None else f"/proc/{ns_pid}/root")
        return probe_tcp(readiness.host, readiness.port, None if ns_pid is None else f"/proc/{ns_pid}/ns/net")

    def spawn_check(self, name: str, check: CheckCommand) -> int:
        """Fork a health check command into the capsule's cgroup; through nsenter into the
        namespaces and root of `check.ns_pid` (an isolated capsule's namespace init), as the
        capsule's uid and gid. Its output is discarded; OSError if it cannot be forked."""
        nsenter = shutil.which("nsenter")
        if nsenter is None:
            raise OSError(errno.ENOENT, "nsenter (util-linux) not found")
        argv = [nsenter, f"--setuid={check.uid}", f"--setgid={check.gid}"]
        if check.ns_pid is not None:
            argv += [f"--target={check.ns_pid}", "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd"]
        procs = self.cgroups.path(name) / "cgroup.procs" if self.cgroups is not None else None
        plan = SpawnPlan(argv=(*argv, "--", *check.argv), env=check.env, uid=0, gid=0, groups=(), workdir="/")
        devnull = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
        try:
            pid, err_fd = spawn(plan, Wiring(stdout_fd=devnull, cgroup_procs=procs))
        finally:
            os.close(devnull)
        os.close(err_fd)  # a failure before exec shows as exit 127
        return pid

    def kill_check(self, pid: int) -> None:
        """SIGKILL a check's process group (nsenter and the command it forked)."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass  # already gone

    def cpu_usage(self, name: str) -> int | None:
        return self.cgroups.cpu_usage(name) if self.cgroups is not None else None

    def stats(self, name: str) -> dict[str, object] | None:
        if self.cgroups is None or not self.cgroups.path(name).is_dir():
            return None
        stats = self.cgroups.stats(name)
        return {k: getattr(stats, k) for k in stats.__dataclass_fields__}

    def freeze(self, name: str, frozen: bool) -> None:
        if self.cgroups is None:
            raise OSError(errno.ENOTSUP, "freezing needs cgroup2")
        self.cgroups.freeze(name, frozen)

    def owner_of(self, pid: int) -> str | None:
        return self.cgroups.owner_of(pid) if self.cgroups is not None else None

    def teardown(self) -> None:
        """Not PID 1: leave the host's cgroup tree as it was found (its capsules killed first)."""
        if self.cgroups is not None:
            self.cgroups.teardown()


def capsule_dir(path: Path, uid: int, gid: int) -> None:
    """A capsule's own directory (a runtime capsule's state): its parents root's, itself owned by
    the capsule's uid, mode 0700. The parents are root's, so the capsule cannot have replaced it
    with a symlink; anything but a directory there is refused. LaunchError names what failed."""
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise LaunchError(f"state directory {path}: not a directory")
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid, follow_symlinks=False)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path, 0o700)
    except OSError as e:
        raise LaunchError(f"state directory {path}: {e.strerror or e}") from None


def _pipe(opened: list[int]) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    opened += (r, w)
    return r, w
