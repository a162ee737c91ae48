"""The first stage of PID 1: API filesystems, console, hostname, PID 1's own file descriptor limit
and the kernel's hardening sysctls. Nothing here can fail fatally: every step is tried, and a
failure is returned as a warning for the log."""

from __future__ import annotations

import errno
import io
import os
import resource
import sys
from pathlib import Path

from exo_init.pid1 import syscalls
from exo_init.pid1.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID

RUN_LIMITS = "size=20%,nr_inodes=800k"

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import TextIO

# (source, target, fstype, flags, data): the order matters (devpts needs /dev).
API_MOUNTS = (
    ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""),
    ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"),
    ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"),
    ("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
    # /run is RAM: bounded as systemd bounds it (exo_init.log, volatile state and logs live here).
    ("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,{RUN_LIMITS}"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate"),
)


def mounted_targets() -> set[str]:
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return set()
    return {line.split()[1] for line in text.splitlines() if len(line.split()) > 1}


def mount_api_filesystems() -> list[str]:
    warnings: list[str] = []
    for source, target, fstype, flags, data in API_MOUNTS:
        if target in mounted_targets():
            continue  # NixOS stage 2 (or an initramfs) mounted it already
        try:
            os.makedirs(target, exist_ok=True)
            syscalls.mount(source, target, fstype, flags, data)
        except OSError as e:
            if e.errno != errno.EBUSY:
                warnings.append(str(e))
    for link, dest in (("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
                       ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2")):
        try:
            os.symlink(dest, link)
        except OSError:
            pass
    return warnings


# The directories every capsule may count on, whatever made the root: on Debian the packages ship
# them, on NixOS systemd-tmpfiles makes them (tmpfiles.d var.conf, tmp.conf, legacy.conf), and
# tmpfiles never runs under exo_init, while NixOS's scripted stage 2 makes only /etc, /etc/nixos
# and /tmp. A fresh root (the ISO's tmpfs, a new disk) lacked /var/log, so the console capsule's
# /var/log grant refused its start. (path, mode): made root-owned when missing, its mode set as
# tmpfiles' `d` lines set it; made in this order (parents first) after the API file systems (/run).
BASE_DIRECTORIES: tuple[tuple[str, int], ...] = (
    ("/tmp", 0o1777),
    ("/var", 0o755),
    ("/var/tmp", 0o1777),
    ("/var/log", 0o755),
    ("/var/lib", 0o755),
    ("/var/cache", 0o755),
    ("/var/spool", 0o755),
    ("/run/lock", 0o755),
)


def make_base_directories(root: Path = Path("/"),
                          table: tuple[tuple[str, int], ...] = BASE_DIRECTORIES) -> list[str]:
    """Each directory of `table` under `root`: made when missing, its mode set when it differs; one
    warning per one that cannot be (a read-only root, a file in the way). A symlink to a directory
    is left as it is (an administrator's choice, e.g. /var/log on another disk)."""
    warnings: list[str] = []
    for name, mode in table:
        path = root / name.lstrip("/")
        try:
            try:
                os.mkdir(path, mode)
            except FileExistsError:
                if path.is_symlink() and path.is_dir():
                    continue
                if not path.is_dir():
                    warnings.append(f"{name}: not a directory; capsules granted it will not start")
                    continue
            if os.stat(path).st_mode & 0o7777 != mode:  # (mkdir's mode went through the umask)
                os.chmod(path, mode)
        except OSError as e:
            warnings.append(f"{name}: {e.strerror or e}")
    return warnings


def setup_console() -> list[str]:
    """stdin from /dev/null, stdout/stderr on /dev/console."""
    warnings: list[str] = []
    try:
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        if null > 2:
            os.close(null)
    except OSError as e:
        warnings.append(f"open /dev/null: {e.strerror}")
    try:
        fd = os.open("/dev/console", os.O_WRONLY | os.O_NOCTTY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        if fd > 2:
            os.close(fd)
    except OSError as e:
        warnings.append(f"open /dev/console: {e.strerror}")
    return warnings


class AllConsoles(io.TextIOBase):
    """exo_init's own console output, written to every active console (e.g. tty0 and ttyS0), so
    a screen and a serial line both show boot status; /dev/console is only the last of them."""

    def __init__(self, names: list[str]) -> None:
        self.fds: dict[str, int] = {}
        for name in names:
            fd = self._open(name)
            if fd is not None:
                self.fds[name] = fd

    @staticmethod
    def _open(name: str) -> int | None:
        try:
            return os.open(f"/dev/{name}", os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return None

    def write(self, text: str) -> int:
        data = text.encode(errors="replace")  # the tty adds the carriage returns (onlcr)
        for name, fd in list(self.fds.items()):
            try:
                os.write(fd, data)
            except OSError:
                # A hangup (the console shell's session ended) invalidates every open file of
                # the tty: open it again and retry once.
                os.close(fd)
                new = self._open(name)
                if new is None:
                    del self.fds[name]
                    continue
                self.fds[name] = new
                try:
                    os.write(new, data)
                except OSError:
                    pass
        return len(text)

    def flush(self) -> None:
        pass


def console_for_status() -> TextIO:
    """All active consoles if the kernel lists more than one, else stdout (/dev/console)."""
    try:
        names = Path("/sys/class/tty/console/active").read_text().split()
    except OSError:
        names = []
    if len(names) > 1:
        tee = AllConsoles(names)
        if tee.fds:
            return tee  # type: ignore[return-value]  # (a write/flush stand-in for the consoles)
    return sys.stdout


def set_hostname(name: str) -> list[str]:
    try:
        syscalls.sethostname(name)
    except OSError as e:
        return [str(e)]
    return []


def disable_ctrl_alt_del() -> list[str]:
    """Ctrl-Alt-Del then sends SIGINT to PID 1 instead of rebooting at once."""
    try:
        syscalls.reboot(syscalls.RB_DISABLE_CAD)
    except OSError as e:
        return [str(e)]
    return []


# PID 1's own bound on open files: RLIMIT_NOFILE is raised at start as far as the kernel allows
# (fs.nr_open), and at least to FD_LIMIT: the kernel's default soft limit, 1024, is what a hostile
# client exhausted, and PID 1 holds a log pipe per running capsule (launches failed with EMFILE at
# about a thousand capsules). The control socket's client table stays far below FD_LIMIT.
# Every capsule gets the conventional soft limit back (scope.CAPSULE_FD_LIMIT, set in spawn's child).
FD_LIMIT = 4096
NR_OPEN = Path("/proc/sys/fs/nr_open")


def raise_fd_limit(limit: int = FD_LIMIT) -> list[str]:
    """Soft and hard limit = fs.nr_open where allowed (root), else as far as they go; a warning
    when the soft limit stays under `limit`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        ceiling = max(int(NR_OPEN.read_text()), limit)
    except (OSError, ValueError):
        ceiling = limit
    error: Exception | None = None
    for target in (ceiling, limit, hard):
        if target == resource.RLIM_INFINITY or target <= soft:
            continue
        try:
            want_hard = hard if hard == resource.RLIM_INFINITY or hard >= target else target
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, want_hard))
            break
        except (OSError, ValueError) as e:  # (not allowed to raise the hard limit: as far as it goes)
            error = error or e
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if now != resource.RLIM_INFINITY and now < limit:
        return [f"RLIMIT_NOFILE not raised to {limit} ({error}); it is {now}"]
    return []


# What a hardened image sets at boot (PID 1 only): (sysctl, value, required). A sysctl the kernel
# does not have is skipped when not required (Yama is a build option; io_uring_disabled is 6.6+).
HARDENING_SYSCTLS: tuple[tuple[str, str, bool], ...] = (
    ("kernel.unprivileged_bpf_disabled", "1", True),  # bpf(2) only with CAP_BPF / CAP_SYS_ADMIN (for good)
    ("net.core.bpf_jit_harden", "2", True),           # constant blinding for every JIT-compiled program
    ("kernel.kptr_restrict", "2", True),              # no kernel addresses in /proc, even for root
    ("kernel.dmesg_restrict", "1", True),             # the kernel log only with CAP_SYSLOG
    ("kernel.perf_event_paranoid", "3", True),        # perf_event_open only with CAP_PERFMON (Debian: 3)
    ("kernel.kexec_load_disabled", "1", True),        # no kexec until reboot (one way)
    ("kernel.yama.ptrace_scope", "1", False),         # ptrace only of one's descendants
    ("kernel.io_uring_disabled", "1", False),         # io_uring only for the io_uring_group
    ("vm.unprivileged_userfaultfd", "0", True),       # userfaultfd only with CAP_SYS_PTRACE
    ("dev.tty.ldisc_autoload", "0", True),            # no line-discipline module loads by anyone
    ("fs.protected_symlinks", "1", True),             # the /tmp symlink and hardlink races
    ("fs.protected_hardlinks", "1", True),
    ("fs.protected_fifos", "2", True),                # O_CREAT on others' FIFOs and files in sticky dirs
    ("fs.protected_regular", "2", True),
    ("fs.suid_dumpable", "0", True),                  # no core dumps of setuid programs
)


def harden_sysctls(proc_sys: Path = Path("/proc/sys"),
                   table: tuple[tuple[str, str, bool], ...] = HARDENING_SYSCTLS) -> list[str]:
    """Write each sysctl of `table` under `proc_sys`; one warning per one that fails."""
    warnings: list[str] = []
    for name, value, required in table:
        path = proc_sys / name.replace(".", "/")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # (no O_CREAT: a sysctl exists or it does not)
            try:
                os.write(fd, (value + "\n").encode())
            finally:
                os.close(fd)
        except FileNotFoundError:
            if required:
                warnings.append(f"sysctl {name} = {value}: this kernel does not have it")
        except OSError as e:
            warnings.append(f"sysctl {name} = {value}: {e.strerror or e}")
    return warnings
