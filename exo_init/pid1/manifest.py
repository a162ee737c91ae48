"""The capsule manifest: a JSON document (rendered from Nix) parsed into frozen dataclasses.

Validation is per capsule: one bad capsule becomes a `CapsuleError` naming the capsule and the
field, and every other capsule still loads. Only a document that is not a manifest at all (not
JSON, wrong top-level shape, unsupported version) raises `ManifestError`.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exo_init.pid1 import scope

MANIFEST_VERSION = 1
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SIZE_RE = re.compile(r"^([0-9]+)([KMGT]?)$")
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ManifestError(Exception):
    """The document as a whole cannot be used."""


class FieldError(Exception):
    """One field of one capsule is wrong; `field` is a dotted path inside the capsule."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message


class CapsuleType(enum.StrEnum):
    SIMPLE = "simple"      # a long-running process
    ONESHOT = "oneshot"    # runs to completion; ready (for dependents) once it exited 0


class ReadinessKind(enum.StrEnum):
    STARTED = "started"    # the exec succeeded
    NOTIFY = "notify"      # sd_notify READY=1 on $NOTIFY_SOCKET
    FD = "fd"              # s6-style: a newline written to the notification fd
    FILE = "file"          # a path exists
    TCP = "tcp"            # a TCP port accepts connections


class RestartPolicy(enum.StrEnum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


@dataclass(frozen=True)
class Readiness:
    kind: ReadinessKind = ReadinessKind.STARTED
    fd: int = 3
    path: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    timeout: float = 30.0


@dataclass(frozen=True)
class Restart:
    policy: RestartPolicy = RestartPolicy.ON_FAILURE
    delay: float = 0.5           # first backoff delay, seconds
    max_delay: float = 30.0      # backoff cap
    reset_after: float = 30.0    # a run this long resets the backoff
    limit_burst: int = 5         # this many failed runs ...
    limit_interval: float = 60.0  # ... within this window -> failed


@dataclass(frozen=True)
class Stop:
    signal: int = int(signal.SIGTERM)
    timeout: float = 10.0


@dataclass(frozen=True)
class Quotas:
    """Values as written to the cgroup v2 interface files (already normalised)."""

    cpu_max: str | None = None          # "20000 100000" or "max 100000"
    cpu_weight: int | None = None
    memory_max: str | None = None       # bytes or "max"
    memory_high: str | None = None
    memory_swap_max: str | None = None
    pids_max: str | None = None
    io_weight: int | None = None
    io_max: tuple[str, ...] = ()        # lines such as "8:0 rbps=1048576"
    memory_oom_group: bool | None = None

    def cgroup_files(self) -> list[tuple[str, str, str]]:
        """(manifest field, cgroup file, value) for each quota that is set."""
        out: list[tuple[str, str, str]] = []
        pairs: list[tuple[str, str, object]] = [
            ("cpu_max", "cpu.max", self.cpu_max),
            ("cpu_weight", "cpu.weight", self.cpu_weight),
            ("memory_max", "memory.max", self.memory_max),
            ("memory_high", "memory.high", self.memory_high),
            ("memory_swap_max", "memory.swap.max", self.memory_swap_max),
            ("pids_max", "pids.max", self.pids_max),
            ("io_weight", "io.weight", self.io_weight),
        ]
        for name, path, value in pairs:
            if value is not None:
                out.append((name, path, str(value)))
        out.extend(("io_max", "io.max", line) for line in self.io_max)
        if self.memory_oom_group is not None:
            out.append(("memory_oom_group", "memory.oom.group", "1" if self.memory_oom_group else "0"))
        return out

    def controllers(self) -> set[str]:
        return {path.split(".", 1)[0] for _, path, _ in self.cgroup_files()}


class NetworkKind(enum.StrEnum):
    NONE = "none"    # an empty network namespace: only lo
    HOST = "host"    # the host's network namespace
    VETH = "veth"    # an own namespace with lo and one end of a veth pair (the other end on the host)


@dataclass(frozen=True)
class Veth:
    address: str     # the capsule's end, CIDR ("10.250.0.2/30")
    peer: str        # the host's end, CIDR, same subnet


class Access(enum.StrEnum):
    RO = "ro"
    RW = "rw"


@dataclass(frozen=True)
class Capabilities:
    """What a capsule may touch. The default is nothing: an isolated capsule (own mount, PID, UTS,
    IPC and network namespaces; a read-only root holding only the system's programs; an
    unprivileged dynamic uid; no Linux capabilities; no_new_privs). `host` opts out entirely."""

    host: bool = False                                # unconfined: the host's namespaces, root, all caps
    filesystem: tuple[tuple[str, Access], ...] = ()   # host paths bound into its root
    network: NetworkKind = NetworkKind.NONE
    veth: Veth | None = None
    devices: tuple[str, ...] = ()                     # device nodes bound into its /dev
    display: bool = False                             # the Wayland socket (WAYLAND_DISPLAY)
    bus: bool = False                                 # the D-Bus system bus socket
    control: bool = False                             # exo_init's control socket (mutations need uid 0)
    logs: bool = False                                # the capsule logs, read-only (exo_init's log directory)
    caps: tuple[str, ...] = ()                        # Linux capabilities kept ("CAP_NET_BIND_SERVICE")
    seccomp_deny: tuple[str, ...] = ()                # syscalls that fail with EPERM

    @property
    def isolated(self) -> bool:
        return not self.host


@dataclass(frozen=True)
class Capsule:
    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None          # None: root if capabilities.host, else a dynamic unprivileged uid
    group: str | None = None
    workdir: str = "/"
    type: CapsuleType = CapsuleType.SIMPLE
    autostart: bool = True
    after: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    readiness: Readiness = field(default_factory=Readiness)
    restart: Restart = field(default_factory=Restart)
    stop: Stop = field(default_factory=Stop)
    quotas: Quotas = field(default_factory=Quotas)
    capabilities: Capabilities = field(default_factory=Capabilities)
    watchdog_sec: float = 0.0
    console: bool = False
    description: str = ""

    @property
    def ordering(self) -> tuple[str, ...]:
        """Every capsule this one must wait for: `requires` implies `after`."""
        return tuple(dict.fromkeys(self.after + self.requires))


@dataclass(frozen=True)
class CapsuleError:
    """A capsule that could not be loaded: it is kept, in state failed, with this reason."""

    name: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"capsule {self.name!r}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Manifest:
    hostname: str
    capsules: Mapping[str, Capsule]
    errors: Mapping[str, CapsuleError]
    source: str = ""

    def names(self) -> list[str]:
        return sorted([*self.capsules, *self.errors])


# --- field parsers -------------------------------------------------------------------------------

def _expect(value: Any, kind: type | tuple[type, ...], path: str, what: str) -> Any:
    # bool is an int in Python; never accept it where a number is meant.
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else ()):
        raise FieldError(path, f"expected {what}, got {json.dumps(value)}")
    if not isinstance(value, kind):
        raise FieldError(path, f"expected {what}, got {json.dumps(value)}")
    return value


def _keys(obj: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        where = f"{path}." if path else ""
        raise FieldError(f"{where}{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _number(value: Any, path: str, minimum: float = 0.0) -> float:
    _expect(value, (int, float), path, "a number")
    if value < minimum:
        raise FieldError(path, f"must be >= {minimum}, got {value}")
    return float(value)


def _int(value: Any, path: str, minimum: int, maximum: int) -> int:
    _expect(value, int, path, "an integer")
    if not minimum <= value <= maximum:
        raise FieldError(path, f"must be between {minimum} and {maximum}, got {value}")
    return int(value)


def _names(value: Any, path: str) -> tuple[str, ...]:
    _expect(value, list, path, "a list of capsule names")
    for i, item in enumerate(value):
        _expect(item, str, f"{path}[{i}]", "a capsule name")
        if not NAME_RE.match(item):
            raise FieldError(f"{path}[{i}]", f"{item!r} is not a valid capsule name")
    return tuple(value)


def parse_size(value: Any, path: str) -> str:
    """'64M' / 1048576 / 'max' -> the byte count string cgroup files take."""
    if value == "max":
        return "max"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str):
        m = SIZE_RE.match(value.strip().upper().removesuffix("B") if value.upper() != "B" else value)
        if m:
            return str(int(m.group(1)) * SIZE_UNITS[m.group(2)])
    raise FieldError(path, f"expected a size such as 64M, 1G, 1048576 or \"max\", got {json.dumps(value)}")


def parse_cpu_max(value: Any, path: str) -> str:
    """'20%' -> '20000 100000'; 'max' or a raw 'QUOTA PERIOD' pass through after checking."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                pct = float(text[:-1])
            except ValueError:
                pct = -1.0
            if not 0 < pct <= 100 * 1024:
                raise FieldError(path, f"percentage must be > 0, got {value!r}")
            return f"{round(pct * 1000)} 100000"
        parts = text.split()
        if len(parts) in (1, 2) and (parts[0] == "max" or parts[0].isdigit()) and all(
            p.isdigit() for p in parts[1:]
        ):
            return text if len(parts) == 2 else f"{parts[0]} 100000"
    raise FieldError(path, f"expected \"20%\", \"max\" or \"QUOTA PERIOD\" in microseconds, got {json.dumps(value)}")


def parse_signal(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int(signal.Signals(value))
        except ValueError:
            pass
    elif isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name in signal.Signals.__members__:
            return int(signal.Signals[name])
    raise FieldError(path, f"unknown signal {json.dumps(value)}")


def _readiness(obj: Any, kind: CapsuleType) -> Readiness:
    _expect(obj, dict, "readiness", "an object")
    _keys(obj, ("kind", "fd", "path", "host", "port", "timeout"), "readiness")
    try:
        rkind = ReadinessKind(_expect(obj.get("kind", "started"), str, "readiness.kind", "a string"))
    except ValueError:
        raise FieldError(
            "readiness.kind", f"unknown kind {obj.get('kind')!r} (one of: {', '.join(k.value for k in ReadinessKind)})"
        ) from None
    if kind is CapsuleType.ONESHOT and rkind is not ReadinessKind.STARTED:
        raise FieldError("readiness.kind", "a oneshot capsule is ready when it exits 0; it takes no readiness")
    r = Readiness(
        kind=rkind,
        fd=_int(obj.get("fd", 3), "readiness.fd", 3, 1023),
        path=_expect(obj.get("path", ""), str, "readiness.path", "a path"),
        host=_expect(obj.get("host", "127.0.0.1"), str, "readiness.host", "a host address"),
        port=_int(obj.get("port", 0), "readiness.port", 0, 65535),
        timeout=_number(obj.get("timeout", 30.0), "readiness.timeout"),
    )
    if rkind is ReadinessKind.FILE and not r.path.startswith("/"):
        raise FieldError("readiness.path", "kind file needs an absolute path")
    if rkind is ReadinessKind.TCP and r.port == 0:
        raise FieldError("readiness.port", "kind tcp needs a port")
    return r


def _restart(obj: Any) -> Restart:
    _expect(obj, dict, "restart", "an object")
    _keys(obj, ("policy", "delay", "max_delay", "reset_after", "limit_burst", "limit_interval"), "restart")
    try:
        policy = RestartPolicy(_expect(obj.get("policy", "on-failure"), str, "restart.policy", "a string"))
    except ValueError:
        raise FieldError(
            "restart.policy", f"unknown policy {obj.get('policy')!r} (one of: always, on-failure, never)"
        ) from None
    r = Restart(
        policy=policy,
        delay=_number(obj.get("delay", 0.5), "restart.delay"),
        max_delay=_number(obj.get("max_delay", 30.0), "restart.max_delay"),
        reset_after=_number(obj.get("reset_after", 30.0), "restart.reset_after"),
        limit_burst=_int(obj.get("limit_burst", 5), "restart.limit_burst", 1, 1000),
        limit_interval=_number(obj.get("limit_interval", 60.0), "restart.limit_interval"),
    )
    if r.max_delay < r.delay:
        raise FieldError("restart.max_delay", f"must be >= restart.delay ({r.delay})")
    return r


def _stop(obj: Any) -> Stop:
    _expect(obj, dict, "stop", "an object")
    _keys(obj, ("signal", "timeout"), "stop")
    return Stop(
        signal=parse_signal(obj.get("signal", "SIGTERM"), "stop.signal"),
        timeout=_number(obj.get("timeout", 10.0), "stop.timeout"),
    )


QUOTA_KEYS = (
    "cpu_max", "cpu_weight", "memory_max", "memory_high", "memory_swap_max",
    "pids_max", "io_weight", "io_max", "memory_oom_group",
)


def _quotas(obj: Any) -> Quotas:
    _expect(obj, dict, "quotas", "an object")
    _keys(obj, QUOTA_KEYS, "quotas")

    def opt(key: str, parse: Any) -> Any:
        return parse(obj[key], f"quotas.{key}") if key in obj and obj[key] is not None else None

    io_max = obj.get("io_max", [])
    _expect(io_max, list, "quotas.io_max", "a list of \"MAJ:MIN key=value ...\" lines")
    for i, line in enumerate(io_max):
        _expect(line, str, f"quotas.io_max[{i}]", "a \"MAJ:MIN key=value ...\" line")
        if not re.match(r"^\d+:\d+( (rbps|wbps|riops|wiops)=(\d+|max))+$", line):
            raise FieldError(f"quotas.io_max[{i}]", f"expected \"MAJ:MIN rbps=N ...\", got {line!r}")
    pids = opt("pids_max", lambda v, p: "max" if v == "max" else str(_int(v, p, 1, 4194304)))
    return Quotas(
        cpu_max=opt("cpu_max", parse_cpu_max),
        cpu_weight=opt("cpu_weight", lambda v, p: _int(v, p, 1, 10000)),
        memory_max=opt("memory_max", parse_size),
        memory_high=opt("memory_high", parse_size),
        memory_swap_max=opt("memory_swap_max", parse_size),
        pids_max=pids,
        io_weight=opt("io_weight", lambda v, p: _int(v, p, 1, 10000)),
        io_max=tuple(io_max),
        memory_oom_group=opt("memory_oom_group", lambda v, p: _expect(v, bool, p, "true or false")),
    )


CAPABILITY_KEYS = ("host", "filesystem", "network", "devices", "display", "bus", "control", "logs", "caps",
                   "seccomp_deny")
# Capabilities that would let a capsule leave or rewrite its namespaces: granting one to an
# isolated capsule would make the isolation a suggestion, so it is refused (use host = true).
ESCAPE_CAPS = frozenset({
    "CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_MKNOD",
    "CAP_SYS_BOOT", "CAP_BPF", "CAP_PERFMON", "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_LINUX_IMMUTABLE",
    "CAP_DAC_READ_SEARCH",  # open_by_handle_at(2) reaches files outside the mount namespace
})


def _bool(obj: Mapping[str, Any], key: str, path: str) -> bool:
    return bool(_expect(obj.get(key, False), bool, f"{path}.{key}", "true or false"))


def _host_path(value: Any, path: str, prefix: str = "/") -> str:
    _expect(value, str, path, "an absolute path")
    parts = value.split("/")
    if not value.startswith(prefix) or value == prefix.rstrip("/") or ".." in parts or "." in parts[1:]:
        raise FieldError(path, f"expected a normalised absolute path under {prefix}, got {value!r}")
    if value == "/":
        raise FieldError(path, "granting / would give the whole host file system; grant the paths needed")
    return str(value).rstrip("/")


def _veth(obj: Any, path: str) -> Veth:
    _expect(obj, dict, path, "an object {address, peer}")
    _keys(obj, ("address", "peer"), path)
    try:
        address = ipaddress.ip_interface(_expect(obj.get("address"), str, f"{path}.address", "a CIDR address"))
        peer = ipaddress.ip_interface(_expect(obj.get("peer"), str, f"{path}.peer", "a CIDR address"))
    except ValueError as e:
        raise FieldError(path, str(e)) from None
    if address.network != peer.network or address.ip == peer.ip:
        raise FieldError(path, f"address {address} and peer {peer} must be different addresses of one subnet")
    return Veth(address=str(address), peer=str(peer))


def parse_capabilities(obj: Any) -> Capabilities:
    _expect(obj, dict, "capabilities", "an object")
    _keys(obj, CAPABILITY_KEYS, "capabilities")
    host = _bool(obj, "host", "capabilities")
    if host:
        others = sorted(k for k in obj if k != "host")
        if others:
            raise FieldError(f"capabilities.{others[0]}", "meaningless with host = true (it grants everything)")
        return Capabilities(host=True)
    fs = _expect(obj.get("filesystem", {}), dict, "capabilities.filesystem", "an object of path = \"ro\" | \"rw\"")
    grants: list[tuple[str, Access]] = []
    for key, mode in sorted(fs.items()):
        where = f"capabilities.filesystem.{key}"
        target = _host_path(key, where)
        try:
            grants.append((target, Access(_expect(mode, str, where, "\"ro\" or \"rw\""))))
        except ValueError:
            raise FieldError(where, f"expected \"ro\" or \"rw\", got {mode!r}") from None
    network = obj.get("network", "none")
    veth = None
    if isinstance(network, dict):
        _keys(network, ("veth",), "capabilities.network")
        veth = _veth(network.get("veth"), "capabilities.network.veth")
        kind = NetworkKind.VETH
    elif network in ("none", "host"):
        kind = NetworkKind(network)
    else:
        raise FieldError("capabilities.network", f"expected \"none\", \"host\" or {{veth = {{...}}}}, got {network!r}")
    devices = _expect(obj.get("devices", []), list, "capabilities.devices", "a list of device paths")
    devs = tuple(_host_path(d, f"capabilities.devices[{i}]", "/dev/") for i, d in enumerate(devices))
    caps = _expect(obj.get("caps", []), list, "capabilities.caps", "a list of capability names")
    for i, cap in enumerate(caps):
        where = f"capabilities.caps[{i}]"
        _expect(cap, str, where, "a capability name such as \"CAP_NET_BIND_SERVICE\"")
        if cap not in scope.CAP_NUMBERS:
            raise FieldError(where, f"unknown Linux capability {cap!r}")
        if cap in ESCAPE_CAPS:
            raise FieldError(where, f"{cap} would let the capsule leave its namespaces; refused (use host = true)")
    deny = _expect(obj.get("seccomp_deny", []), list, "capabilities.seccomp_deny", "a list of syscall names")
    for i, name in enumerate(deny):
        where = f"capabilities.seccomp_deny[{i}]"
        _expect(name, str, where, "a syscall name")
        try:
            scope.syscall_number(name)
        except (LookupError, OSError) as e:
            raise FieldError(where, str(e)) from None
    return Capabilities(
        filesystem=tuple(grants), network=kind, veth=veth, devices=devs,
        display=_bool(obj, "display", "capabilities"), bus=_bool(obj, "bus", "capabilities"),
        control=_bool(obj, "control", "capabilities"), logs=_bool(obj, "logs", "capabilities"),
        caps=tuple(dict.fromkeys(caps)),
        seccomp_deny=tuple(dict.fromkeys(deny)),
    )


CAPSULE_KEYS = (
    "argv", "env", "user", "group", "workdir", "type", "autostart", "after", "requires", "readiness",
    "restart", "stop", "quotas", "capabilities", "watchdog_sec", "console", "description",
)


def parse_capsule(name: str, obj: Any) -> Capsule:
    """One capsule's JSON object -> Capsule, or FieldError naming the field."""
    _expect(obj, dict, "(capsule)", "an object")
    _keys(obj, CAPSULE_KEYS, "")
    if "argv" not in obj:
        raise FieldError("argv", "missing (the command to run, as a list)")
    argv = _expect(obj["argv"], list, "argv", "a non-empty list of strings")
    if not argv:
        raise FieldError("argv", "must not be empty")
    for i, arg in enumerate(argv):
        _expect(arg, str, f"argv[{i}]", "a string")
    if not argv[0].startswith("/"):
        raise FieldError("argv[0]", f"must be an absolute path, got {argv[0]!r}")
    env = _expect(obj.get("env", {}), dict, "env", "an object of strings")
    for key, value in env.items():
        if not key or "=" in key:
            raise FieldError(f"env.{key}", "not a valid variable name")
        _expect(value, str, f"env.{key}", "a string")
    try:
        ctype = CapsuleType(_expect(obj.get("type", "simple"), str, "type", "a string"))
    except ValueError:
        raise FieldError("type", f"unknown type {obj.get('type')!r} (one of: simple, oneshot)") from None
    user = obj.get("user")
    if user is not None:
        _expect(user, str, "user", "a user name")
        if not user:
            raise FieldError("user", "must not be empty (leave it out for a dynamic unprivileged uid)")
    group = obj.get("group")
    if group is not None:
        _expect(group, str, "group", "a group name")
    after = _names(obj.get("after", []), "after")
    requires = _names(obj.get("requires", []), "requires")
    if name in after + requires:
        raise FieldError("requires" if name in requires else "after", "a capsule cannot depend on itself")
    workdir = _expect(obj.get("workdir", "/"), str, "workdir", "an absolute path")
    if not workdir.startswith("/"):
        raise FieldError("workdir", f"must be an absolute path, got {workdir!r}")
    return Capsule(
        name=name,
        argv=tuple(argv),
        env=tuple(sorted(env.items())),
        user=user,
        group=group,
        workdir=workdir,
        type=ctype,
        autostart=_expect(obj.get("autostart", True), bool, "autostart", "true or false"),
        after=after,
        requires=requires,
        readiness=_readiness(obj.get("readiness", {}), ctype),
        restart=_restart(obj.get("restart", {})),
        stop=_stop(obj.get("stop", {})),
        quotas=_quotas(obj.get("quotas", {})),
        capabilities=parse_capabilities(obj.get("capabilities", {})),
        watchdog_sec=_number(obj.get("watchdog_sec", 0), "watchdog_sec"),
        console=_expect(obj.get("console", False), bool, "console", "true or false"),
        description=_expect(obj.get("description", ""), str, "description", "a string"),
    )


def find_cycles(deps: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every dependency cycle (as a closed path a -> b -> a), found by depth-first search."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(deps, WHITE)
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(deps.get(node, ())):
            if nxt not in colour:
                continue
            if colour[nxt] == GREY:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif colour[nxt] == WHITE:
                visit(nxt)
        stack.pop()
        colour[node] = BLACK

    for node in sorted(deps):
        if colour[node] == WHITE:
            visit(node)
    return cycles


def topological_order(deps: Mapping[str, Iterable[str]], roots: Iterable[str] | None = None) -> list[str]:
    """Names ordered so that each comes after everything it depends on (acyclic input): every name
    in `deps`, or only `roots` and what they depend on."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for nxt in sorted(deps.get(node, ())):
            if nxt in deps:
                visit(nxt)
        order.append(node)

    for node in sorted(deps) if roots is None else roots:
        visit(node)
    return order


def parse_manifest(doc: Any, source: str = "") -> Manifest:
    if not isinstance(doc, dict):
        raise ManifestError(f"{source or 'manifest'}: top level must be an object")
    unknown = sorted(set(doc) - {"version", "hostname", "capsules"})
    if unknown:
        raise ManifestError(f"{source or 'manifest'}: unknown top-level key {unknown[0]!r}")
    if doc.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{source or 'manifest'}: version must be {MANIFEST_VERSION}, got {doc.get('version')!r}")
    hostname = doc.get("hostname", "exosphere")
    if not isinstance(hostname, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$", hostname):
        raise ManifestError(f"{source or 'manifest'}: hostname {hostname!r} is not a valid host name")
    raw = doc.get("capsules", {})
    if not isinstance(raw, dict):
        raise ManifestError(f"{source or 'manifest'}: capsules must be an object of name -> capsule")

    capsules: dict[str, Capsule] = {}
    errors: dict[str, CapsuleError] = {}
    for name, obj in raw.items():
        if not NAME_RE.match(name):
            errors[name] = CapsuleError(name, "(name)", "names are 1-64 of a-z 0-9 _ . - starting alphanumeric")
            continue
        try:
            capsules[name] = parse_capsule(name, obj)
        except FieldError as e:
            errors[name] = CapsuleError(name, e.field, e.message)

    # A dependency that is missing or broken breaks its dependents, transitively.
    changed = True
    while changed:
        changed = False
        for name, cap in list(capsules.items()):
            for dep in cap.requires:
                if dep not in capsules:
                    why = "is not declared" if dep not in errors else "failed to load"
                    errors[name] = CapsuleError(name, "requires", f"required capsule {dep!r} {why}")
                    del capsules[name]
                    changed = True
                    break
    for cycle in find_cycles({n: c.ordering for n, c in capsules.items()}):
        text = " -> ".join(cycle)
        for name in cycle[:-1]:
            if name in capsules:
                errors[name] = CapsuleError(name, "after/requires", f"dependency cycle {text}")
                del capsules[name]
    return Manifest(hostname=hostname, capsules=capsules, errors=errors, source=source)


def load_manifest(path: Path) -> Manifest:
    """Read and parse a manifest file; ManifestError names the file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ManifestError(f"{path}: cannot read: {e.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return parse_manifest(doc, str(path))


def empty_manifest(source: str = "") -> Manifest:
    return Manifest(hostname="exosphere", capsules={}, errors={}, source=source)
