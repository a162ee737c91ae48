"""exo_init's boundary with the system (exo_init/pid1/host.py), against the real system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from exo_init.pid1.host import OsHost
from exo_init.pid1.spawn import SpawnPlan, read_spawn_error
from tests.conftest import REPO

# In a child process (its fd table is its own): lower RLIMIT_NOFILE until the launch's pipes do
# not fit, launch, and report the error and whether any fd was left open.
NO_FDS = r"""
import os, resource, sys
from exo_init.pid1.host import LaunchError, OsHost
from exo_init.pid1.spawn import SpawnPlan
plan = SpawnPlan(argv=("/bin/true",), env={}, uid=os.getuid(), gid=os.getgid(), groups=(), workdir="/",
                 notify_fd=int(sys.argv[1]) if sys.argv[1] != "-" else None)
before = sorted(os.listdir("/proc/self/fd"))
highest = max(int(fd) for fd in before)
for free in range(0, 8):
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1 + free, 4096))
    try:
        launched = OsHost(None).launch("svc", plan)
    except LaunchError as e:
        after = sorted(os.listdir("/proc/self/fd"))
        print(f"{free} {e} leaked={sorted(set(after) - set(before))}")
        continue
    print(f"{free} launched")
    break
"""


def test_a_launch_without_free_fds_is_one_error_and_leaks_nothing() -> None:
    for notify in ("-", "5"):
        out = subprocess.run([sys.executable, "-c", NO_FDS, notify], cwd=REPO, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=60).stdout
        results = out.splitlines()
        assert results[-1].endswith("launched"), out
        failures = results[:-1]
        # every shortage (log pipe, notification pipe, the error pipe inside spawn) is a LaunchError
        assert len(failures) >= (2 if notify == "-" else 3), out
        for line in failures:
            assert "spawn: Too many open files leaked=[]" in line, out


def test_launch_runs_the_plan_and_reports_an_exec_failure(tmp_path: Path) -> None:
    host = OsHost(None)
    ok = host.launch("svc", SpawnPlan(argv=("/bin/sh", "-c", "echo hi; echo ready >&5"), env={},
                                      uid=os.getuid(), gid=os.getgid(), groups=(), workdir=str(tmp_path),
                                      notify_fd=5))
    os.set_blocking(ok.err_fd, True)
    assert host.spawn_error(ok.err_fd) is None
    assert ok.notify_fd is not None
    os.set_blocking(ok.log_fd, True)
    os.set_blocking(ok.notify_fd, True)
    assert os.read(ok.log_fd, 100) == b"hi\n" and os.read(ok.notify_fd, 100) == b"ready\n"
    bad = host.launch("svc", SpawnPlan(argv=("/nonexistent/prog",), env={}, uid=os.getuid(), gid=os.getgid(),
                                       groups=(), workdir="/"))
    os.set_blocking(bad.err_fd, True)
    assert host.spawn_error(bad.err_fd) == "exec /nonexistent/prog: No such file or directory"
    reaped: dict[int, int] = {}
    while len(reaped) < 2:
        pid, status = os.waitpid(-1, 0)
        reaped[pid] = os.waitstatus_to_exitcode(status)
    assert reaped == {ok.pid: 0, bad.pid: 127}
    for fd in (ok.log_fd, ok.notify_fd, bad.log_fd):
        os.close(fd)


# PID 1 holds two or three fds per running capsule, far above the capsules' conventional soft
# limit of 1024 once ~500 run (it raises its own: early.raise_fd_limit). The child inherits all of
# them until exec, so it may lower its limit only when they are closed: before, its first open()
# failed with EMFILE, and at ~500 capsules every launch did.
MANY_FDS = r"""
import os, resource
from exo_init.pid1.host import OsHost
from exo_init.pid1.scope import CAPSULE_FD_LIMIT
from exo_init.pid1.spawn import SpawnPlan
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, max(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
held = [os.dup(null) for _ in range(CAPSULE_FD_LIMIT + 100)]
for fd in held:
    os.set_inheritable(fd, False)
plan = SpawnPlan(argv=("/bin/sh", "-c", "ulimit -n; ls /proc/self/fd | wc -l"), env={"PATH": "/usr/bin:/bin"},
                 uid=os.getuid(), gid=os.getgid(), groups=(), workdir="/")
host = OsHost(None)
launched = host.launch("svc", plan)
os.set_blocking(launched.err_fd, True)
print(host.spawn_error(launched.err_fd))
os.waitpid(launched.pid, 0)
os.set_blocking(launched.log_fd, True)
print(" ".join(os.read(launched.log_fd, 200).decode().split()))
"""


def test_a_launch_from_a_pid1_holding_more_fds_than_a_capsule_may_succeeds() -> None:
    out = subprocess.run([sys.executable, "-c", MANY_FDS], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=60).stdout
    error, seen = out.splitlines()
    assert error == "None", out
    limit, open_fds = seen.split()
    assert limit == "1024", out        # the capsule's soft limit is the conventional one ...
    assert int(open_fds) <= 5, out     # ... and none of PID 1's fds reached it (0-2, ls's own)


# The child's error pipe gets the 6th free fd number (log pipe, notification pipe, error pipe):
# a readiness fd of that number must not overwrite it (the exec error would read as success).
ERR_FD_CLASH = r"""
import os
from exo_init.pid1.host import OsHost
from exo_init.pid1.spawn import SpawnPlan
probe = [fd for _ in range(3) for fd in os.pipe()]
for fd in probe:
    os.close(fd)
plan = SpawnPlan(argv=("/nonexistent/prog",), env={}, uid=os.getuid(), gid=os.getgid(), groups=(), workdir="/",
                 notify_fd=probe[5])
launched = OsHost(None).launch("svc", plan)
os.set_blocking(launched.err_fd, True)
print(OsHost(None).spawn_error(launched.err_fd))
"""


def test_a_readiness_fd_equal_to_the_error_pipe_does_not_hide_an_exec_error() -> None:
    out = subprocess.run([sys.executable, "-c", ERR_FD_CLASH], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=60).stdout
    assert out.strip() == "exec /nonexistent/prog: No such file or directory"


def test_a_spawn_error_is_read_whole_while_its_writer_has_not_exited_yet() -> None:
    """A scoped capsule's child reports an error, then takes a while to exit (it is a PID
    namespace's init): the message is read without waiting for EOF (it raised EAGAIN before)."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.write(w, b"exec /nonexistent: No such file or directory")
    try:
        assert read_spawn_error(r) == "exec /nonexistent: No such file or directory"
    finally:
        os.close(w)
