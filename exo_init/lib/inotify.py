"""inotify(7) through ctypes (the standard library has no binding): watch files for changes instead
of reading them over and over. cgroup v2 notifies a change of memory.events, pids.events and
cgroup.events this way (the Sentry watches every capsule's with it)."""

from __future__ import annotations

import ctypes
import os
import struct

IN_MODIFY = 0x00000002
IN_IGNORED = 0x00008000   # the watch is gone (its file was removed)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class Inotify:
    """One inotify instance: `add` a file, `fileno` to select on, `read` the (wd, mask) that happened."""

    def __init__(self) -> None:
        self.fd = _check(_libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")

    def fileno(self) -> int:
        return self.fd

    def add(self, path: str, mask: int = IN_MODIFY) -> int:
        """A watch descriptor for `path` (OSError if it does not exist); the same file twice: the same wd."""
        return _check(_libc.inotify_add_watch(self.fd, os.fsencode(path), ctypes.c_uint32(mask)),
                      f"inotify_add_watch {path}")

    def remove(self, wd: int) -> None:
        _libc.inotify_rm_watch(self.fd, wd)  # (fails harmlessly if the kernel dropped it already)

    def read(self) -> list[tuple[int, int]]:
        """Every event queued now: (watch descriptor, mask); [] if none."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        out = []
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            out.append((wd, mask))
            offset += _EVENT.size + length
        return out

    def close(self) -> None:
        os.close(self.fd)
