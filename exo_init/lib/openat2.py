"""openat2(2) through ctypes (Python's os module lacks it): path resolution the kernel confines.

PID 1's readiness probe resolves a path inside a capsule's root (RESOLVE_IN_ROOT); a runtime
resolves a guest's path beneath a granted directory (RESOLVE_BENEATH: no `..`, absolute symlink or
symlink pointing out of it escapes; exo_init/runtimes/grants.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

# The same number on x86_64 and aarch64 (the generic syscall table).
SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2) with `resolve` flags (RESOLVE_IN_ROOT: `path` as seen from `dirfd` as its root;
    RESOLVE_BENEATH: `path` must stay beneath `dirfd`); `mode` for O_CREAT."""
    how = _OpenHow(flags, mode if flags & (os.O_CREAT | os.O_TMPFILE) else 0, resolve)
    fd = _libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), path.encode(), ctypes.byref(how),
                       ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"openat2({path}): {os.strerror(err)}")
    return int(fd)
