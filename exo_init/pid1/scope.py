"""The Scoped HAL: a capsule's private world, built in its first process before exec.

An isolated capsule (the default; see manifest.Capabilities) is started like this:

    exo_init ──fork (CLONE_NEWPID pending)──> nsinit (PID 1 of the capsule's PID namespace)
        nsinit: unshare mount/UTS/IPC/network namespaces; veth; build the root; hostname
        nsinit ──fork──> main: no_new_privs, capabilities, uid/gid, seccomp, exec the program
        nsinit: forwards signals to main, reaps, exits with main's status (128+signal if killed)

The root is a read-only tmpfs holding only: the system's programs (read-only), the granted paths
(ro/rw), a private /tmp, /proc of the capsule's own PID namespace (/proc/sys read-only), a minimal
/dev (null, zero, full, random, urandom, tty, its own devpts, shm) plus the granted device nodes,
and /run with only the granted sockets. Anything not granted does not exist in it.

The root is entered with MS_MOVE + chroot (as switch_root does): pivot_root(2) refuses the
initramfs root the dev image runs from. A chroot is only escapable with CAP_SYS_CHROOT, which an
isolated capsule cannot be granted (manifest.ESCAPE_CAPS).

`new_pid_namespace_for_next_child` and `restore_pid_namespace` run in PID 1, around the fork;
everything after them in this module runs in the forked child: it raises OSError (with a `stage`
attribute) for the spawn error pipe, and never returns into the supervisor's code.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
import zlib
from collections.abc import Container
from dataclasses import dataclass

from exo_init.pid1.syscalls import (
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    capset,
    mount,
    prctl,
    setns,
    unshare,
)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# include/uapi/linux/capability.h
CAP_NUMBERS: dict[str, int] = {name: i for i, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
))}

# The system's programs and what the dynamic loader needs: bound read-only when they exist (a
# symlink, as /bin is on a merged-/usr system, is recreated as the same symlink).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/nix/store",
                "/run/current-system", "/etc/ld.so.cache", "/etc/localtime")
DEVICE_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")
CAPSULE_FD_LIMIT = 1024  # RLIMIT_NOFILE's soft limit in every capsule, set in spawn's child (PID 1 raises its own)
DYNAMIC_UIDS = range(61184, 65520)  # systemd's DynamicUser= range: no package owns these
FORWARDED_SIGNALS = frozenset({
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGPWR, signal.SIGCONT, signal.SIGWINCH, signal.SIGALRM, signal.SIGABRT,
})

class Stage(OSError):
    """A failed libseccomp step in the child; str() names the step."""


# --- libseccomp, through ctypes (works in any Python; the library is part of every Debian/NixOS) ---

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_EPERM = 0x00050000 | errno.EPERM
SCMP_ACT_ERRNO_ENOSYS = 0x00050000 | errno.ENOSYS
SCMP_CMP_NE = 1
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_MASKED_EQ = 7


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp (seccomp.h)."""

    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64))


_LIBSECCOMP: list[ctypes.CDLL] = []  # loaded once per process (a capsule's child, or a test)


def _libseccomp() -> ctypes.CDLL:
    """libseccomp by its soname (the dynamic loader's own search, no process started: ctypes.util's
    find_library runs `ldconfig -p` in a subprocess, which in a capsule's namespace init became a
    process of the capsule's PID namespace and cost every scoped start a fork and exec); find_library
    only where the soname is not found."""
    if _LIBSECCOMP:
        return _LIBSECCOMP[0]
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        from ctypes.util import find_library  # noqa: PLC0415 (only where the loader does not find the soname)

        try:
            lib = ctypes.CDLL(find_library("seccomp") or "libseccomp.so", use_errno=True)
        except OSError as e:
            raise OSError(errno.ENOENT, f"libseccomp is not installed ({e})") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    _LIBSECCOMP.append(lib)
    return lib


NR_SCMP_ERROR = -1  # libseccomp's answer for a name no ABI has; its other negative numbers are pseudo-syscalls


def syscall_number(name: str) -> int | None:
    """The native syscall number of `name`; None for a system call of other ABIs that this one does
    not have (aarch64 has mkdirat but no mkdir: nothing to filter, as load_seccomp leaves it out);
    LookupError if no ABI has such a system call."""
    nr = int(_libseccomp().seccomp_syscall_resolve_name(name.encode()))
    if nr == NR_SCMP_ERROR:
        raise LookupError(f"unknown system call {name!r}")
    return nr if nr >= 0 else None


@dataclass(frozen=True)
class Rule:
    """`syscall` fails with `action` when every condition holds (none: always). A condition is
    (argument index, comparison, datum a, datum b) as libseccomp takes it; MASKED_EQ is
    `arg & a == b`."""

    syscall: str
    action: int = SCMP_ACT_ERRNO_EPERM
    conditions: tuple[tuple[int, int, int, int], ...] = ()


def _deny(*names: str) -> tuple[Rule, ...]:
    return tuple(Rule(name) for name in names)


def _flag_rules(syscall: str, arg: int, flags: tuple[int, ...]) -> tuple[Rule, ...]:
    """`syscall` fails when argument `arg` has any of `flags` set (one rule per flag: rules for one
    syscall are alternatives)."""
    return tuple(Rule(syscall, conditions=((arg, SCMP_CMP_MASKED_EQ, flag, flag),)) for flag in flags)


CLONE_NEWTIME = 0x00000080  # (unshare only: in clone()'s flags that bit is part of the exit signal)
CLONE_NEWUSER = 0x10000000
NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                   CLONE_NEWNET)
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
# personality(2) flags that weaken the address space: no ASLR, executable data, page zero mapped.
PERSONALITY_FLAGS = (0x0040000, 0x0100000, 0x0200000, 0x0400000, 0x0800000, 0x8000000)

# The classes of system calls a scoped capsule is denied unless its manifest grants the class by
# name (`capabilities.seccomp_allow`; the schema lists the same names). Modelled on what Docker's
# default profile and systemd's RestrictNamespaces= + SystemCallFilter=@system-service block.
SYSCALL_CLASSES: dict[str, tuple[Rule, ...]] = {
    # New namespaces: with a user namespace an unprivileged process holds every capability inside
    # it, the way to the kernel's namespaced attack surface (nf_tables, mounts, raw sockets).
    # clone3 passes its flags in memory, where seccomp cannot look: it fails with ENOSYS, so libc
    # falls back to clone, whose flags are filtered (as Docker and systemd do).
    "namespaces": (*_flag_rules("unshare", 0, (*NAMESPACE_FLAGS, CLONE_NEWTIME)),
                   *_flag_rules("clone", 0, NAMESPACE_FLAGS),
                   Rule("clone3", SCMP_ACT_ERRNO_ENOSYS), Rule("setns")),
    "mount": _deny("mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
                   "fspick", "mount_setattr"),
    "ptrace": _deny("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    "bpf": _deny("bpf"),
    "perf": _deny("perf_event_open"),
    "keyring": _deny("keyctl", "add_key", "request_key"),
    "io_uring": _deny("io_uring_setup", "io_uring_enter", "io_uring_register"),
    "userfaultfd": _deny("userfaultfd"),
    "time": _deny("settimeofday", "clock_settime", "clock_adjtime", "adjtimex"),
    # Address families: only AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE (addresses, links,
    # routes). AF_PACKET, the other netlink protocols (NETLINK_NETFILTER: nf_tables), AF_KEY,
    # AF_ALG, AF_VSOCK, Bluetooth, ... fail with EPERM.
    "sockets": (*(Rule("socket", conditions=((0, SCMP_CMP_EQ, family, 0),))
                  for family in range(AF_NETLINK) if family not in (AF_UNIX, AF_INET, AF_INET6)),
                Rule("socket", conditions=((0, SCMP_CMP_GE, AF_NETLINK + 1, 0),)),
                Rule("socket", conditions=((0, SCMP_CMP_EQ, AF_NETLINK, 0), (2, SCMP_CMP_NE, NETLINK_ROUTE, 0)))),
    "personality": _flag_rules("personality", 0, PERSONALITY_FLAGS),
}
# Never granted to a scoped capsule (they manage the machine: `host = true`).
ALWAYS_DENIED: tuple[Rule, ...] = _deny(
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "quotactl_fd", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at",
    "syslog", "iopl", "ioperm", "uselib", "nfsservctl", "vhangup", "_sysctl", "create_module",
    "get_kernel_syms", "query_module", "sysfs", "ustat", "fanotify_init",
)


def baseline_rules(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> list[Rule]:
    """The rules of a scoped capsule's filter: every class not in `allow`, what is always denied,
    and the syscalls in `deny` (which replace any rule of the baseline for the same syscall)."""
    unknown = sorted(set(allow) - set(SYSCALL_CLASSES))
    if unknown:
        raise ValueError(f"unknown system call class {unknown[0]!r} (one of {', '.join(SYSCALL_CLASSES)})")
    rules = [r for name, cls in SYSCALL_CLASSES.items() if name not in allow for r in cls]
    rules += ALWAYS_DENIED
    return [r for r in rules if r.syscall not in deny] + [Rule(name) for name in dict.fromkeys(deny)]


def load_seccomp(rules: list[Rule]) -> None:
    """Install a filter that allows everything but `rules` (needs no_new_privs or CAP_SYS_ADMIN).
    A syscall this ABI does not have is left out; anything else that fails is a Stage error.
    System calls of another ABI (i386's int 0x80 from x86_64) kill the thread: libseccomp's
    bad-architecture default, so the filter cannot be sidestepped that way."""
    lib = _libseccomp()
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise Stage(errno.ENOMEM, "seccomp_init failed")
    try:
        for rule in rules:
            nr = int(lib.seccomp_syscall_resolve_name(rule.syscall.encode()))
            if nr < 0:
                continue
            conds = (_ArgCmp * max(1, len(rule.conditions)))(*(_ArgCmp(*c) for c in rule.conditions))
            ret = lib.seccomp_rule_add_array(ctx, rule.action, nr, len(rule.conditions), conds)
            if ret < 0:
                raise Stage(-ret, f"seccomp_rule_add({rule.syscall}): {os.strerror(-ret)}")
        ret = lib.seccomp_load(ctx)
        if ret < 0:
            raise Stage(-ret, f"seccomp_load: {os.strerror(-ret)}")
    finally:
        lib.seccomp_release(ctx)


# --- the plan --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bind:
    source: str
    target: str
    readonly: bool
    device: bool = False


@dataclass(frozen=True)
class ScopePlan:
    """Everything the child needs to build the capsule's world (computed in the supervisor)."""

    root: str                          # an empty directory on the host to build the root on
    hostname: str
    binds: tuple[Bind, ...]            # system paths, grants, sockets, devices
    etc_files: tuple[tuple[str, str], ...]  # (path under /etc, content): passwd, group, hosts
    network: str                       # "none" | "host" | "veth"
    veth_address: str = ""             # the capsule's end (CIDR)
    veth_peer: str = ""                # the host's end (CIDR)
    veth_host_name: str = ""           # the host end's link name
    caps: tuple[int, ...] = ()
    seccomp_deny: tuple[str, ...] = ()    # syscalls denied on top of the baseline (manifest: seccomp_deny)
    seccomp_allow: tuple[str, ...] = ()   # classes of the baseline granted (manifest: seccomp_allow)


def dynamic_uid(name: str, taken: Container[int]) -> int:
    """A stable unprivileged uid for a capsule: hashed from its name, the next free one on collision."""
    span = len(DYNAMIC_UIDS)
    start = zlib.crc32(name.encode()) % span
    for i in range(span):
        uid = DYNAMIC_UIDS[(start + i) % span]
        if uid not in taken:
            return uid
    raise LookupError("no free dynamic uid")


def veth_name(capsule: str) -> str:
    return f"vx{zlib.crc32(capsule.encode()):08x}"[:15]


# --- in the parent: the PID namespace ---------------------------------------------------------------

_own_pidns: int | None = None


def new_pid_namespace_for_next_child() -> None:
    """The next fork() creates PID 1 of a new PID namespace. Call `restore_pid_namespace` right
    after the fork in the parent: setns back to one's own active namespace is always allowed."""
    global _own_pidns
    if _own_pidns is None:
        _own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    unshare(CLONE_NEWPID)


def restore_pid_namespace() -> None:
    if _own_pidns is not None:
        setns(_own_pidns, CLONE_NEWPID)


# --- in the child: the world -------------------------------------------------------------------------

def _mkdirs(path: str, mode: int = 0o755) -> None:
    os.makedirs(path, mode=mode, exist_ok=True)


def _bind(bind: Bind, root: str) -> None:
    target = root + bind.target
    if os.path.islink(bind.source) and not bind.device:
        _mkdirs(os.path.dirname(target))
        os.symlink(os.readlink(bind.source), target)
        return
    if os.path.isdir(bind.source):
        _mkdirs(target)
    elif not os.path.lexists(target):  # (under an earlier read-only bind it must already exist)
        _mkdirs(os.path.dirname(target))
        with open(target, "a"):
            pass
    mount(bind.source, target, None, MS_BIND | MS_REC)
    # (a source on a noexec mount stays noexec: in the capsule's user namespace the kernel refuses
    # a remount that would clear that locked flag, e.g. for a grant under the cgroup tree)
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (0 if bind.device else MS_NODEV) | (MS_RDONLY if bind.readonly else 0)
    if os.statvfs(bind.source).f_flag & os.ST_NOEXEC:
        flags |= MS_NOEXEC
    mount(None, target, None, flags)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _build_root(plan: ScopePlan) -> None:
    root = plan.root
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates back to the host
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for sub in ("proc", "dev", "tmp", "run", "etc"):
        _mkdirs(f"{root}/{sub}")
    mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    mount("tmpfs", f"{root}/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m")
    # /dev: a few harmless nodes, a private devpts, shm, and the granted devices.
    mount("tmpfs", f"{root}/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for node in DEVICE_NODES:
        if os.path.exists(node):
            _bind(Bind(node, node, readonly=False, device=True), root)
    _mkdirs(f"{root}/dev/pts")
    mount("devpts", f"{root}/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{root}/dev/ptmx")
    _mkdirs(f"{root}/dev/shm")
    mount("tmpfs", f"{root}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    for name, content in plan.etc_files:  # first: a granted /etc is bound over them
        _write(f"{root}/etc/{name}", content)
    for bind in plan.binds:
        _bind(bind, root)
    # /proc of the capsule's own PID namespace (this process is its PID 1), /proc/sys read-only.
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for ro in ("sys", "sysrq-trigger"):
        path = f"{root}/proc/{ro}"
        if os.path.exists(path):
            mount(path, path, None, MS_BIND | MS_REC)
            mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount(None, root, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(root)
    mount(root, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _link_up(name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        ifreq = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | _IFF_UP))


def _veth(plan: ScopePlan) -> None:
    """Create the pair in the host's namespace, then move our end into this process's new one."""
    from pyroute2 import IPRoute  # noqa: PLC0415 -- only veth capsules pay for the import, and only in their child

    with IPRoute() as host:
        for idx in host.link_lookup(ifname=plan.veth_host_name):  # a leftover of an earlier run
            host.link("del", index=idx)
        tmp = f"vp{os.getpid() & 0xFFFFFF:x}"[:15]
        host.link("add", ifname=plan.veth_host_name, kind="veth", peer=tmp)
        (hidx,) = host.link_lookup(ifname=plan.veth_host_name)
        addr, plen = plan.veth_peer.split("/")
        host.addr("add", index=hidx, address=addr, prefixlen=int(plen))
        host.link("set", index=hidx, state="up")
        (pidx,) = host.link_lookup(ifname=tmp)
        unshare(CLONE_NEWNET)
        host.link("set", index=pidx, net_ns_pid=os.getpid())
    with IPRoute() as mine:  # opened after unshare: talks to the capsule's namespace
        (idx,) = mine.link_lookup(ifname=tmp)
        mine.link("set", index=idx, ifname="eth0")
        addr, plen = plan.veth_address.split("/")
        mine.addr("add", index=idx, address=addr, prefixlen=int(plen))
        mine.link("set", index=idx, state="up")


def enter(plan: ScopePlan) -> None:
    """In the namespace's PID 1 (the forked child): build the capsule's world."""
    if plan.network == "veth":
        _veth(plan)
        unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP)
    else:
        net = CLONE_NEWNET if plan.network == "none" else 0
        unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | net)
    if plan.network != "host":
        _link_up("lo")
    socket.sethostname(plan.hostname)
    _build_root(plan)


def _capset(caps: tuple[int, ...]) -> None:
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    # effective, permitted, inheritable; two 32-bit words
    capset(struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0), struct.pack("IIIIII", lo, lo, lo, hi, hi, hi))


def drop_privileges(plan: ScopePlan, uid: int, gid: int, groups: tuple[int, ...]) -> None:
    """In the main process, last thing before exec: bounding set, ids, ambient caps, no_new_privs,
    the open-file limit a program expects, the seccomp filter (the baseline, less the granted
    classes, plus the declared denials). Afterwards CapEff == CapPrm == the declared set (also for
    a non-root uid)."""
    keep = set(plan.caps)
    last = _last_cap()
    for cap in range(last + 1):
        if cap not in keep:
            prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups(list(groups))
    os.setgid(gid)
    os.setuid(uid)
    _capset(plan.caps)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in plan.caps:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    load_seccomp(baseline_rules(plan.seccomp_allow, plan.seccomp_deny))


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAP_NUMBERS.values())


def nsinit(main_pid: int) -> None:
    """PID 1 of the capsule: forward signals to the main process, reap everything, and exit with
    the main process's status (128+signal when it was killed, as tini does) as soon as it is gone;
    the kernel then kills what is left of the namespace. Never returns. The caller has blocked
    FORWARDED_SIGNALS and SIGCHLD (before forking the main process, so none is missed)."""
    watched = set(FORWARDED_SIGNALS) | {signal.SIGCHLD}
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo != signal.SIGCHLD:
            with contextlib.suppress(ProcessLookupError):
                os.kill(main_pid, info.si_signo)
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == main_pid:
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)


def etc_files(hostname: str, user: str, uid: int, gid: int) -> tuple[tuple[str, str], ...]:
    users = "root:x:0:0:root:/root:/nonexistent\n"
    group = "root:x:0:\n"
    if uid != 0:
        users += f"{user}:x:{uid}:{gid}:capsule {user}:/tmp:/nonexistent\n"
        group += f"{user}:x:{gid}:\n"
    users += "nobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n"
    group += "nogroup:x:65534:\n"
    hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{hostname}\n"
    return (("passwd", users), ("group", group), ("hosts", hosts), ("hostname", hostname + "\n"))
