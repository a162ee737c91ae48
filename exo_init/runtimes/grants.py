"""A capsule's filesystem grants, as a runtime enforces them for the code it runs.

The Scoped HAL already shows a scoped capsule only its granted paths; a runtime confines the guest
code once more, to exactly `capabilities.filesystem` (not the interpreter, the runtime's package or
its own state directory, which the capsule's world also holds):

* a path must be absolute and normalised (no `.`, `..`, `//`, NUL), at most PATH_MAX long;
* it must be a granted path or lie beneath one (the longest grant decides); writing needs `rw`;
* it is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) relative to the granted
  directory, so neither `..` nor a symlink (absolute, or relative pointing out) leaves the grant;
* the runtime's own state directory is refused even where a grant covers it.

Every refusal is a `GrantError` with an errno (returned to the guest as a negative number) and a
message naming the path and the rule.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Mapping

from exo_init.lib.openat2 import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, openat2

PATH_MAX = 4096


class GrantError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code
        self.message = message


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class FileGrants:
    def __init__(self, grants: Mapping[str, str], deny: tuple[str, ...] = ()) -> None:
        """`grants`: path -> "ro" | "rw" (the manifest's capabilities.filesystem); `deny`: paths
        refused even beneath a grant (the runtime's state directory)."""
        self.grants = dict(sorted(grants.items(), key=lambda item: -len(item[0])))  # longest first
        self.deny = deny
        self._dirfds: dict[str, int] = {}

    @property
    def readable(self) -> bool:
        return bool(self.grants)

    @property
    def writable(self) -> bool:
        return "rw" in self.grants.values()

    def resolve(self, path: str, write: bool) -> tuple[str, str]:
        """(the grant, the path relative to it: "" for the grant itself); GrantError if refused."""
        if (not path.startswith("/") or "\0" in path or len(path) > PATH_MAX or path.startswith("//")
                or posixpath.normpath(path) != path):
            raise GrantError(errno.EINVAL, f"{path[:200]!r} is not a normalised absolute path (no . .. // or NUL)")
        for denied in self.deny:
            if _under(path, denied):
                raise GrantError(errno.EACCES, f"{path} is the runtime's own state, not granted")
        for grant, mode in self.grants.items():
            if _under(path, grant):
                if write and mode != "rw":
                    raise GrantError(errno.EACCES, f"{path} is granted read-only ({grant} = \"ro\")")
                return grant, path[len(grant):].lstrip("/")
        what = "write" if write else "read"
        raise GrantError(errno.EACCES, f"{path} is not granted ({what}: no capabilities.filesystem entry covers it)")

    def _open(self, path: str, write: bool) -> int:
        grant, rel = self.resolve(path, write)
        flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC if write else os.O_RDONLY) | os.O_CLOEXEC
        try:
            if not rel:  # the grant itself (a granted file)
                return os.open(grant, flags | os.O_NOFOLLOW, 0o644)
            dirfd = self._dirfds.get(grant)
            if dirfd is None:
                dirfd = self._dirfds[grant] = os.open(grant, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            return openat2(dirfd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, 0o644)
        except OSError as e:
            code = e.errno or errno.EIO
            if code == errno.EXDEV:
                raise GrantError(code, f"{path} escapes its grant {grant} (a symlink or .. out of it)") from None
            raise GrantError(code, f"{path}: {os.strerror(code)}") from None

    def read(self, path: str, limit: int) -> bytes:
        """At most `limit` bytes from the start of the file at `path`."""
        fd = self._open(path, write=False)
        try:
            chunks: list[bytes] = []
            left = limit
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        except OSError as e:
            raise GrantError(e.errno or errno.EIO, f"{path}: {os.strerror(e.errno or errno.EIO)}") from None
        finally:
            os.close(fd)

    def write(self, path: str, data: bytes) -> int:
        """Replace the file at `path` with `data` (created 0644 if new); the bytes written."""
        fd = self._open(path, write=True)
        try:
            view, done = memoryview(data), 0
            while done < len(data):
                done += os.write(fd, view[done:])
            return done
        except OSError as e:
            raise GrantError(e.errno or errno.EIO, f"{path}: {os.strerror(e.errno or errno.EIO)}") from None
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in self._dirfds.values():
            os.close(fd)
        self._dirfds.clear()
