"""Capabilities: the VM's Scoped HAL, the only way a program reaches the outside world.

`ScopedHost` is the host (crush.vm.Host) the CLI and tests give the VM: a registry of granted
capabilities, each backed by something real. `parse_grant` reads the CLI's `--grant` strings:

    fs:ROOT:ro | fs:ROOT:rw   fs.read, fs.list, fs.stat (and fs.write for rw) under ROOT
    log | clock | sleep | yield | random | control.status | stdin.read | proc.list | tty.info | tty.key
                              that capability (the last five only where the host has a source for it)

Before a run starts the VM refuses a program that declares a capability not granted (a
CAPABILITY_DENIED trap, zero instructions executed). At a call, a path outside every granted
root, a path with `..`, a path through or to a symbolic link, or a write under a read-only root is
refused the same way: a trap, which the program cannot catch. A path that is granted but missing
or unreadable raises an ordinary guest exception (FileNotFoundError, PermissionError, ... with
CPython's `[Errno N] ...` message), which it can.

File system paths are absolute guest paths, checked lexically first (normalised: empty and `.`
components dropped; `..` refused outright) and then opened component by component from the
granted root's directory descriptor with O_NOFOLLOW (openat-style), so neither `..` nor a
symlink planted anywhere under the root (even after the check: the open itself refuses to follow
it) can lead outside. Regular files only: FIFOs and devices are opened non-blocking and refused.
Sizes are checked against the arena and paid in gas before data is read.
"""

from __future__ import annotations

import codecs
import errno
import os
import select
import stat as stat_mod
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from crush import arena, gas, procfs
from crush.cast import CAPABILITIES
from crush.errors import GuestError, TrapCode, TrapError
from crush.text import Meter
from crush.values import exc, type_name

MAX_PATH = 4096
MAX_LIST = 1 << 16
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class FsGrant:
    """A granted directory: `root` (absolute, resolved when granted) and whether it is writable."""
    root: str
    writable: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in self.root.split("/") if p)


class GrantError(ValueError):
    pass


STDIN_CHUNK = 1 << 16


def stdin_reader(fd: int = 0) -> Callable[[], str]:
    """stdin.read's source: the next chunk of `fd` as text (UTF-8, split sequences kept for the
    next chunk, invalid bytes replaced), "" at its end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read() -> str:
        while True:
            data = os.read(fd, STDIN_CHUNK)
            text = decoder.decode(data, final=not data)
            if text or not data:
                return text

    return read


MAX_KEY_WAIT = 86400.0


@dataclass(frozen=True)
class Terminal:
    """tty.info's and tty.key's terminal: the host's `stdin` and `stdout` descriptors. `flush` runs
    before tty.key waits, so what the program printed is on the screen while it waits."""
    stdin: int = 0
    stdout: int = 1
    flush: Callable[[], None] = lambda: None

    def info(self) -> dict[str, Any]:
        try:
            size: os.terminal_size | None = os.get_terminal_size(self.stdout)
        except OSError:
            size = None
        return {"stdin": os.isatty(self.stdin), "stdout": os.isatty(self.stdout),
                "rows": size.lines if size else None, "columns": size.columns if size else None}

    def key(self, seconds: float) -> str:
        """What is typed within `seconds` (at most 16 bytes, as text), "" if nothing; when stdin is not
        a terminal, nothing can be typed: the wait is the whole `seconds` (top's delay)."""
        self.flush()
        if not os.isatty(self.stdin):
            time.sleep(seconds)
            return ""
        ready, _, _ = select.select([self.stdin], [], [], seconds)
        return os.read(self.stdin, 16).decode("utf-8", "replace") if ready else ""


def parse_grant(text: str) -> tuple[str, FsGrant | None]:
    """A CLI grant: ("fs", FsGrant) or (capability name, None)."""
    if text.startswith("fs:"):
        root, sep, mode = text[3:].rpartition(":")
        if not sep or mode not in ("ro", "rw") or not root:
            raise GrantError(f"--grant {text!r}: the form is fs:ROOT:ro or fs:ROOT:rw")
        if not os.path.isabs(root):
            raise GrantError(f"--grant {text!r}: ROOT must be an absolute path")
        resolved = os.path.realpath(root)
        if not os.path.isdir(resolved):
            raise GrantError(f"--grant {text!r}: {root} is not a directory")
        return "fs", FsGrant(resolved, mode == "rw")
    if text not in CAPABILITIES or text.startswith("fs."):
        known = ", ".join(sorted(c for c in CAPABILITIES if not c.startswith("fs.")))
        raise GrantError(f"--grant {text!r}: unknown capability (fs:ROOT:ro|rw or one of {known})")
    return text, None


@dataclass
class ScopedHost:
    """A host with explicit grants. `clock` gives the time (wall-clock by default), `log` receives
    log lines, `status` answers control.status (absent: the capability cannot be granted)."""
    caps: set[str] = field(default_factory=set)
    fs: list[FsGrant] = field(default_factory=list)
    log: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.time
    status: Callable[[str | None], Any] | None = None
    stdin: Callable[[], str] | None = None   # stdin.read's source (absent: the capability cannot be granted)
    proc: str | None = None                  # proc.list's /proc directory (absent: cannot be granted)
    tty: Terminal | None = None              # tty.info's and tty.key's terminal (absent: cannot be granted)
    # control.status with a socket argument: the status from the control API at that socket, a path the
    # fs grants must cover (absent: a socket argument is refused)
    status_at: Callable[[str | None, str], Any] | None = None

    @classmethod
    def from_grants(cls, grants: Iterable[str], **kwargs: Any) -> ScopedHost:
        host = cls(**kwargs)
        for g in grants:
            name, fs = parse_grant(g)
            if fs is not None:
                host.fs.append(fs)
                host.caps.update({"fs.read", "fs.list", "fs.stat"} | ({"fs.write"} if fs.writable else set()))
            else:
                host.caps.add(name)
        return host

    def granted(self, cap: str) -> bool:
        sources = {"control.status": self.status, "stdin.read": self.stdin, "proc.list": self.proc,
                   "tty.info": self.tty, "tty.key": self.tty}
        if cap in sources and sources[cap] is None:
            return False
        if cap == "proc.list":  # a process listing is a reading of /proc: the fs grants must cover it
            try:
                self._check("fs.list", self.proc)
            except (TrapError, GuestError):
                return False
        return cap in self.caps

    def now(self) -> float:
        return float(self.clock())

    def call(self, cap: str, args: tuple[Any, ...], vm: Meter) -> Any:
        if cap not in self.caps:  # pragma: no cover - the VM checked the grants before running
            raise TrapError(TrapCode.CAPABILITY_DENIED, f"{cap} is not granted")
        if cap == "log":
            text = args[0]
            if type(text) is not str:
                raise exc("TypeError", f"log() argument must be str, not {type_name(text)}")
            vm.charge(gas.words(len(text)) * gas.CAP_BYTE)
            if self.log is not None:
                self.log(text)
            return None
        if cap == "clock":
            return self.now()
        if cap == "stdin.read":
            assert self.stdin is not None
            chunk = self.stdin()
            vm.charge(gas.words(len(chunk)) * gas.CAP_BYTE)
            vm.alloc(arena.str_size(chunk))
            return chunk
        if cap == "control.status":
            return self._control_status(args, vm)
        if cap == "proc.list":
            assert self.proc is not None
            try:
                return _import_data(vm, procfs.processes(self.proc))
            except OSError as e:
                raise os_error(e, self.proc) from None
        if cap == "tty.info":
            assert self.tty is not None
            return _import_data(vm, self.tty.info())
        if cap == "tty.key":
            assert self.tty is not None
            seconds = args[0]
            if type(seconds) not in (int, float):
                raise exc("TypeError", f"tty.key() needs a number of seconds, not {type_name(seconds)}")
            if not 0 <= seconds <= MAX_KEY_WAIT:  # (NaN too)
                raise exc("ValueError", f"tty.key() waits 0 to {MAX_KEY_WAIT:.0f} seconds, not {seconds}")
            key = self.tty.key(float(seconds))
            vm.alloc(arena.str_size(key))
            return key
        return self._fs(cap, args, vm)

    def _control_status(self, args: tuple[Any, ...], vm: Meter) -> Any:
        assert self.status is not None
        name = args[0] if args else None
        socket = args[1] if len(args) > 1 else None
        if name is not None and type(name) is not str:
            raise exc("TypeError", f"control.status() argument must be str or None, not {type_name(name)}")
        try:
            if socket is None:
                return _import_data(vm, self.status(name))
            self._check("control.status", socket)
            if self.status_at is None:
                raise _denied("control.status", socket, "no other control socket is granted")
            return _import_data(vm, self.status_at(name, socket))
        except OSError as e:
            raise os_error(e, socket or "control") from None

    # -- the file system ------------------------------------------------------------------------

    def _fs(self, cap: str, args: tuple[Any, ...], vm: Meter) -> Any:
        path = args[0]
        grant, parts = self._check(cap, path)
        try:
            root = os.open(grant.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise os_error(e, path) from None
        try:
            dirfd = root
            try:
                for name in parts[:-1]:
                    nxt = _open_below(dirfd, name, os.O_RDONLY | os.O_DIRECTORY, path)
                    if dirfd != root:
                        os.close(dirfd)
                    dirfd = nxt
                last = parts[-1] if parts else "."
                if cap == "fs.read":
                    return _read(vm, dirfd, last, path)
                if cap == "fs.list":
                    return _list(vm, dirfd, last, path)
                if cap == "fs.stat":
                    return _stat(vm, dirfd, last, path)
                return _write(vm, dirfd, last, path, args[1])
            finally:
                if dirfd != root:
                    os.close(dirfd)
        except OSError as e:
            raise os_error(e, path) from None
        finally:
            os.close(root)

    def _check(self, cap: str, path: Any) -> tuple[FsGrant, list[str]]:
        """The grant covering `path` and the path's components below its root (or a trap)."""
        if type(path) is not str:
            raise exc("TypeError", f"{cap}() argument must be str, not {type_name(path)}")
        if "\0" in path:
            raise exc("ValueError", "embedded null byte")
        if len(path) > MAX_PATH:
            raise exc("OSError", f"[Errno {errno.ENAMETOOLONG}] File name too long: {path[:64]!r}...")
        if not path.startswith("/"):
            raise _denied(cap, path, "not an absolute path")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _denied(cap, path, "'..' is not allowed")
        best: FsGrant | None = None
        for g in self.fs:
            n = len(g.parts)
            if tuple(parts[:n]) == g.parts and (best is None or n > len(best.parts)):
                best = g
        if best is None:
            raise _denied(cap, path, "outside every granted root")
        if cap == "fs.write" and not best.writable:
            raise _denied(cap, path, f"{best.root} is granted read-only")
        below = parts[len(best.parts):]
        if cap == "fs.write" and not below:
            raise _denied(cap, path, "cannot write the granted directory itself")
        return best, below


def _denied(cap: str, path: str, why: str) -> TrapError:
    return TrapError(TrapCode.CAPABILITY_DENIED, f"{cap}({path!r}): {why}")


def _is_link(dirfd: int, name: str) -> bool:
    try:
        return stat_mod.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_below(dirfd: int, name: str, flags: int, path: str, mode: int = 0o644) -> int:
    """openat(dirfd, name, flags | O_NOFOLLOW): a symbolic link is a refusal, not an error."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dirfd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK) and _is_link(dirfd, name):
            raise TrapError(TrapCode.CAPABILITY_DENIED, f"{path!r}: {name!r} is a symbolic link") from None
        raise


_ERRORS = {errno.ENOENT: "FileNotFoundError", errno.EEXIST: "FileExistsError", errno.EISDIR: "IsADirectoryError",
           errno.ENOTDIR: "NotADirectoryError", errno.EACCES: "PermissionError", errno.EPERM: "PermissionError"}


def os_error(e: OSError, path: str) -> Exception:
    """The guest's exception for a failed file access (FileNotFoundError, PermissionError, ...)."""
    if e.errno is None:  # (a timeout, say: no errno)
        return exc("OSError", str(e))
    name = _ERRORS.get(e.errno, "OSError")
    return exc(name, f"[Errno {e.errno}] {os.strerror(e.errno or 0)}: {path!r}")


def _read(vm: Meter, dirfd: int, name: str, path: str) -> str:
    fd = _open_below(dirfd, name, os.O_RDONLY | os.O_NONBLOCK, path)
    try:
        st = os.fstat(fd)
        if stat_mod.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat_mod.S_ISREG(st.st_mode):
            raise exc("OSError", f"fs.read: {path!r} is not a regular file")
        size = st.st_size
        vm.charge(gas.words(size) * gas.CAP_BYTE)
        vm.alloc(24 + size)
        chunks: list[bytes] = []
        left = size
        while left > 0:
            chunk = os.read(fd, min(left, _READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise exc("ValueError", f"fs.read: {path!r} is not valid UTF-8") from None
    extra = arena.str_size(text) - (24 + size)
    if extra > 0:
        vm.alloc(extra)
    return text


def _list(vm: Meter, dirfd: int, name: str, path: str) -> list[str]:
    fd = _open_below(dirfd, name, os.O_RDONLY | os.O_DIRECTORY, path)
    names: list[str] = []
    try:
        vm.alloc(arena.LIST)
        with os.scandir(fd) as entries:
            for entry in entries:
                if len(names) >= MAX_LIST:
                    raise exc("OSError", f"fs.list: {path!r} has more than {MAX_LIST} entries")
                vm.charge(gas.ELEMENT + gas.words(len(entry.name)))
                vm.alloc(arena.SLOT + arena.str_size(entry.name), names)
                names.append(entry.name)
    finally:
        os.close(fd)
    vm.charge(gas.sort(len(names)))
    return sorted(names)


def _stat(vm: Meter, dirfd: int, name: str, path: str) -> dict[str, Any]:
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    mode = st.st_mode
    kind = "file" if stat_mod.S_ISREG(mode) else "dir" if stat_mod.S_ISDIR(mode) else \
        "symlink" if stat_mod.S_ISLNK(mode) else "other"
    target = os.readlink(name, dir_fd=dirfd) if kind == "symlink" else None
    vm.alloc(arena.DICT + 9 * arena.DICT_ENTRY + (arena.str_size(target) if target is not None else 0))
    return {"size": st.st_size, "mode": stat_mod.S_IMODE(mode), "mtime": st.st_mtime, "kind": kind,
            "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink, "target": target,
            "type": stat_mod.filemode(mode)[0]}


def _write(vm: Meter, dirfd: int, name: str, path: str, text: Any) -> int:
    if type(text) is not str:
        raise exc("TypeError", f"fs.write() text must be str, not {type_name(text)}")
    data = text.encode("utf-8", "surrogatepass")
    vm.charge(gas.words(len(data)) * gas.CAP_BYTE)
    fd = _open_below(dirfd, name, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, path)
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            raise exc("OSError", f"fs.write: {path!r} is not a regular file")
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)
    return len(data)


def _import_data(vm: Meter, data: Any) -> Any:
    """A copy of host data (dicts with str keys, lists, str, int, float, bool, None) as guest
    values, its size reserved in the arena first."""
    size = 0
    work = [data]
    while work:
        v = work.pop()
        t = type(v)
        if t is dict:
            if not all(type(k) is str for k in v):
                raise TypeError("control.status: the host returned a dict with non-string keys")
            size += arena.DICT + arena.DICT_ENTRY * len(v) + sum(arena.str_size(k) for k in v)
            work.extend(v.values())
        elif t is list or t is tuple:
            size += arena.LIST + arena.SLOT * len(v)
            work.extend(v)
        elif t in (str, int, float, bool) or v is None:
            size += arena.scalar_size(v)
        else:
            raise TypeError(f"control.status: the host returned a {t.__name__}")
    vm.charge(gas.words(size))
    vm.alloc(size)
    return _copy(data)


def _copy(data: Any) -> Any:
    root: list[Any] = [None]
    work: list[tuple[Any, Any, Any]] = [(data, root, 0)]
    while work:
        v, parent, key = work.pop()
        t = type(v)
        if t is dict:
            new_d: dict[str, Any] = dict.fromkeys(v)
            parent[key] = new_d
            work.extend((x, new_d, k) for k, x in v.items())
        elif t is list or t is tuple:
            new_l: list[Any] = [None] * len(v)
            parent[key] = new_l
            work.extend((x, new_l, i) for i, x in enumerate(v))
        else:
            parent[key] = v
    return root[0]
