"""ctypes wrappers for the few syscalls Python's os module lacks.

Each wrapper raises OSError naming the syscall and the path or argument it was given.
"""

from __future__ import annotations

import ctypes
import os

# The C library PID 1 already runs on (dlopen(NULL)): ctypes.util.find_library would run
# `ldconfig -p` in a subprocess at every boot.
_libc = ctypes.CDLL(None, use_errno=True)

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC
RB_HALT_SYSTEM = 0xCDEF0123
RB_DISABLE_CAD = 0

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.reboot.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]


def _check(ret: int, syscall: str, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{syscall}({what}): {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    """mount(2); None passes NULL (bind, move and remount calls take no source or type)."""
    ret = _libc.mount(None if source is None else source.encode(), target.encode(),
                      None if fstype is None else fstype.encode(), flags, data.encode() or None)
    _check(ret, "mount", f"{fstype or source} on {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), "umount2", target)


def reboot(cmd: int) -> None:
    _check(_libc.reboot(cmd), "reboot", hex(cmd))


def prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _check(_libc.prctl(option, arg, arg3, 0, 0), "prctl", f"{option}, {arg}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare", f"{flags:#x}")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns", f"{nstype:#x}")


def capset(header: bytes, data: bytes) -> None:
    hbuf, dbuf = ctypes.create_string_buffer(header), ctypes.create_string_buffer(data)
    _check(_libc.capset(hbuf, dbuf), "capset", "")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname", name)

