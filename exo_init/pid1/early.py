"""The first stage of PID 1: API filesystems, console, hostname. Nothing here can fail fatally:
every step is tried, and a failure is returned as a warning for the log."""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path

from exo_init.pid1 import syscalls
from exo_init.pid1.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID

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
    ("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"),
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
