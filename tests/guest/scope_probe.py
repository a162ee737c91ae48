"""Runs inside a capsule and reports what its world lets it do, as one JSON line "SCOPE {...}".

What to try comes from $PROBE (JSON): {"exists": [paths], "write": [paths], "connect": ["host:port"],
"mkdir": path, "escape": [names of ESCAPES]}. Used by the host scope tests (passed with -c) and by
the booted-image tests. Every attempt is reported with its outcome ("ok" or the errno name), never
raised. Each escape attempt runs in a forked child, so one that succeeds (a new namespace, a
personality) changes nothing for the next.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from functools import partial

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# System call numbers of the machine the probe runs on (x86_64; aarch64: the arm64 image, whose
# numbers are the generic table's), and flags.
SYSCALLS = {
    "x86_64": {"clone": 56, "ptrace": 101, "personality": 135, "mount": 165, "keyctl": 250, "unshare": 272,
               "perf_event_open": 298, "setns": 308, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
               "clone3": 435},
    "aarch64": {"clone": 220, "ptrace": 117, "personality": 92, "mount": 40, "keyctl": 219, "unshare": 97,
                "perf_event_open": 241, "setns": 268, "bpf": 280, "userfaultfd": 282, "io_uring_setup": 425,
                "clone3": 435},
}
SYS = SYSCALLS[os.uname().machine]
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
SIGCHLD = 17
AF_PACKET, AF_NETLINK, NETLINK_NETFILTER = 17, 16, 12
KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 0, -3
BPF_MAP_CREATE, BPF_MAP_TYPE_ARRAY = 0, 2
UFFD_USER_MODE_ONLY = 1
ADDR_NO_RANDOMIZE = 0x0040000
PTRACE_TRACEME = 0


def checked(ret: int) -> int:
    """A libc return value, or OSError with errno."""
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def syscall(name: str, *args: int) -> int:
    return checked(int(libc.syscall(SYS[name], *(ctypes.c_long(a) for a in args))))


def attempt(fn: Callable[[], object]) -> str:
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))


def in_child(fn: Callable[[], object]) -> str:
    """`attempt(fn)` in a forked child; its outcome comes back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, attempt(fn).encode())
        os._exit(0)
    os.close(w)
    out = os.read(r, 100).decode() or "child died"
    os.close(r)
    os.waitpid(pid, 0)
    return out


def userns_then_mount() -> None:
    """The attack of issue 13: a user namespace (every capability inside it), then a mount."""
    syscall("unshare", CLONE_NEWUSER | CLONE_NEWNS)
    checked(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))


def userns_then_packet() -> None:
    syscall("unshare", CLONE_NEWUSER | CLONE_NEWNET)
    socket.socket(AF_PACKET, socket.SOCK_RAW, 0).close()


def clone_newuser() -> None:
    pid = syscall("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def clone3() -> None:
    # struct clone_args with only exit_signal set (a plain fork); the filter refuses every clone3.
    args = ctypes.create_string_buffer(struct.pack("11Q", 0, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0))
    pid = checked(int(libc.syscall(SYS["clone3"], args, ctypes.c_long(88))))
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def setns() -> None:
    fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        syscall("setns", fd, 0)
    finally:
        os.close(fd)


def bpf() -> None:
    attr = ctypes.create_string_buffer(struct.pack("IIII", BPF_MAP_TYPE_ARRAY, 4, 4, 1), 64)
    os.close(checked(int(libc.syscall(SYS["bpf"], BPF_MAP_CREATE, attr, 64))))


def io_uring() -> None:
    params = ctypes.create_string_buffer(120)
    os.close(syscall("io_uring_setup", 1, ctypes.addressof(params)))


def perf() -> None:
    attr = ctypes.create_string_buffer(struct.pack("II", 1, 128), 128)  # PERF_TYPE_SOFTWARE, size 128
    os.close(syscall("perf_event_open", ctypes.addressof(attr), 0, -1, -1, 0))


def plain_work() -> None:
    """What every program does must keep working under the filter."""
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    subprocess.run(["/bin/true"], check=True)


ESCAPES: dict[str, Callable[[], object]] = {
    "unshare user": lambda: syscall("unshare", CLONE_NEWUSER),
    "unshare net": lambda: syscall("unshare", CLONE_NEWNET),
    "unshare user+mount, mount tmpfs": userns_then_mount,
    "unshare user+net, AF_PACKET": userns_then_packet,
    "clone NEWUSER": clone_newuser,
    "clone3": clone3,
    "setns": setns,
    "mount tmpfs": lambda: checked(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
    "socket AF_PACKET": lambda: socket.socket(AF_PACKET, socket.SOCK_RAW, 0).close(),
    "socket NETLINK_NETFILTER": lambda: socket.socket(AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER).close(),
    "socket NETLINK_ROUTE": lambda: socket.socket(AF_NETLINK, socket.SOCK_RAW, 0).close(),
    "bpf map": bpf,
    "io_uring_setup": io_uring,
    "keyctl": lambda: syscall("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1),
    "userfaultfd": lambda: os.close(syscall("userfaultfd", UFFD_USER_MODE_ONLY)),
    "perf_event_open": perf,
    "ptrace TRACEME": lambda: syscall("ptrace", PTRACE_TRACEME, 0, 0, 0),
    "personality ADDR_NO_RANDOMIZE": lambda: syscall("personality", ADDR_NO_RANDOMIZE),
    "fork, thread, exec": plain_work,
}


def status_field(name: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def write(path: str) -> None:
    with open(path, "w") as f:
        f.write("probe\n")


def connect(target: str) -> None:
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3):
        pass


def main() -> None:
    todo = json.loads(os.environ.get("PROBE", "{}"))
    report = {
        "uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(),
        "no_new_privs": status_field("NoNewPrivs"), "cap_eff": status_field("CapEff"),
        "cap_bnd": status_field("CapBnd"), "seccomp": status_field("Seccomp"),
        "hostname": socket.gethostname(), "links": sorted(name for _, name in socket.if_nameindex()),
        "root": sorted(os.listdir("/")), "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "exists": {p: os.path.exists(p) for p in todo.get("exists", [])},
        "write": {p: attempt(partial(write, p)) for p in todo.get("write", [])},
        "connect": {t: attempt(partial(connect, t)) for t in todo.get("connect", [])},
        "escape": {name: in_child(ESCAPES[name]) for name in todo.get("escape", [])},
    }
    if "mkdir" in todo:
        report["mkdir"] = attempt(lambda: os.mkdir(todo["mkdir"]))
    print("SCOPE " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
