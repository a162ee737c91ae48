"""The capsule manifest: a JSON document (rendered from Nix) parsed into frozen dataclasses.

The fields, their types, defaults, bounds and docs are the schema's (manifest_schema.json, read
by manifest_schema.py); this module turns a document into the dataclasses below by that table, and
adds the rules that relate fields (a oneshot takes no readiness, `max_delay >= delay`, `host`
stands alone, `argv` only for `runtime = "exec"` and a runtime's section only with that runtime,
dependency graphs). nixos-modules/manifest.nix checks the same table and rules at
build time; tests/test_nix.py proves that the two accept and reject the same capsules.

Validation is per capsule: one bad capsule becomes a `CapsuleError` naming the capsule and the
field, and every other capsule still loads. Only a document that is not a manifest at all (not
JSON, wrong top-level shape, unsupported version) raises `ManifestError`. Every number is bounded
at load (no value reaches the supervisor that its arithmetic or the kernel cannot take).
"""

from __future__ import annotations

import enum
import json
import re
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from exo_init.lib.runtime import RuntimeConfig
from exo_init.pid1 import scope
from exo_init.pid1.graph import find_cycles
from exo_init.pid1.manifest_schema import SCHEMA, FieldSpec, FieldType, Section, number_text

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

MANIFEST_VERSION = SCHEMA.version
NAME_RE = re.compile(SCHEMA.patterns["name"])
HOSTNAME_RE = re.compile(SCHEMA.patterns["hostname"])
SIZE_RE = re.compile(SCHEMA.patterns["size"])
IO_MAX_RE = re.compile(SCHEMA.patterns["io_max"])
SIZE_UNITS = dict(SCHEMA.size_units)
CAPSULE = SCHEMA.section("capsule")
READINESS = SCHEMA.section("readiness")
RESTART = SCHEMA.section("restart")
STOP = SCHEMA.section("stop")
QUOTAS = SCHEMA.section("quotas")
WASM = SCHEMA.section("wasm")
CRUSH = SCHEMA.section("crush")
HEALTH = SCHEMA.section("health")
CAPABILITIES = SCHEMA.section("capabilities")



def _default(section: Section, name: str, kind: type[T]) -> T:
    """A field's default from the schema, as the dataclass field's type (int widens to float, a
    string becomes the enum member)."""
    value = section.field(name).default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif issubclass(kind, enum.Enum):
        value = kind(value)
    if not isinstance(value, kind):
        raise TypeError(f"schema: {section.name}.{name} default {value!r} is not a {kind.__name__}")
    return value


class ManifestError(Exception):
    """The document as a whole cannot be used."""


def one_line(text: str) -> str:
    """`text` with control characters escaped (a key in a path may hold any): messages are one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class FieldError(Exception):
    """One field of one capsule is wrong; `field` is a dotted path inside the capsule."""

    def __init__(self, field_path: str, message: str) -> None:
        field_path, message = one_line(field_path), one_line(message)
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


class Runtime(enum.StrEnum):
    """What runs for the capsule (the schema's `runtimes` table has the others' programs)."""

    EXEC = "exec"    # argv, executed
    WASM = "wasm"    # a WebAssembly module (the `wasm` section), run by exo_init.runtimes.wasm
    CRUSH = "crush"  # a CRUSH program (the `crush` section), run by exo_init.runtimes.crush


class RestartPolicy(enum.StrEnum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


@dataclass(frozen=True)
class Readiness:
    kind: ReadinessKind = _default(READINESS, "kind", ReadinessKind)  # noqa: RUF009 (an enum member: immutable)
    fd: int = _default(READINESS, "fd", int)
    path: str = _default(READINESS, "path", str)
    host: str = _default(READINESS, "host", str)
    port: int = _default(READINESS, "port", int)
    timeout: float = _default(READINESS, "timeout", float)


@dataclass(frozen=True)
class Restart:
    policy: RestartPolicy = _default(RESTART, "policy", RestartPolicy)  # noqa: RUF009 (an enum member: immutable)
    delay: float = _default(RESTART, "delay", float)                    # first backoff delay, seconds
    max_delay: float = _default(RESTART, "max_delay", float)            # backoff cap
    reset_after: float = _default(RESTART, "reset_after", float)        # a run this long resets the backoff
    limit_burst: int = _default(RESTART, "limit_burst", int)            # this many failed runs ...
    limit_interval: float = _default(RESTART, "limit_interval", float)  # ... within this window -> failed


@dataclass(frozen=True)
class Stop:
    signal: int = int(signal.Signals[_default(STOP, "signal", str)])
    timeout: float = _default(STOP, "timeout", float)


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


WASM_MEMORY_LIMIT = 1 << 32  # a wasm32 memory's whole address space: what `memory_max = "max"` means


def _default_bytes(section: Section, name: str) -> int:
    """A size field's default ("16M") in bytes."""
    m = SIZE_RE.fullmatch(str(section.field(name).default))
    if m is None:
        raise TypeError(f"schema: {section.name}.{name} default is not a size")
    return int(m.group(1)) * SIZE_UNITS[m.group(2).upper()]


@dataclass(frozen=True)
class Wasm:
    """A WebAssembly capsule's module and budgets (`runtime = "wasm"`)."""

    module: str                                     # .wasm or .wat, absolute
    entry: str = _default(WASM, "entry", str)       # the exported function called after instantiation
    fuel: int = _default(WASM, "fuel", int)         # the run's fuel budget
    memory_max: int = _default_bytes(WASM, "memory_max")  # bytes of linear memory at most
    deadline: float = _default(WASM, "deadline", float)  # seconds the entry may run; 0: none


class BadCheckpoint(enum.StrEnum):
    """What a CRUSH capsule does with a checkpoint it cannot resume (after moving it aside)."""

    FAIL = "fail"          # the capsule fails, naming what is wrong
    RESTART = "restart"    # the run starts over


@dataclass(frozen=True)
class Crush:
    """A CRUSH capsule's program, budgets and checkpoint policy (`runtime = "crush"`)."""

    program: str                                                  # .casm or .py, absolute
    gas: int = _default(CRUSH, "gas", int)                        # the computation's gas budget
    arena: int = _default_bytes(CRUSH, "arena")                   # bytes of live guest data at most
    checkpoint_every: int = _default(CRUSH, "checkpoint_every", int)  # gas between checkpoints; 0: none
    on_bad_checkpoint: BadCheckpoint = _default(CRUSH, "on_bad_checkpoint", BadCheckpoint)  # noqa: RUF009
    fast: bool = _default(CRUSH, "fast", bool)                    # the VM's fast mode
    gas_per_period: int = _default(CRUSH, "gas_per_period", int)  # gas per `period` s at most; 0: no rate
    period: float = _default(CRUSH, "period", float)              # seconds


class HealthKind(enum.StrEnum):
    TCP = "tcp"                          # a TCP port accepts connections
    FILE = "file"                        # a path exists
    NOTIFY_WATCHDOG = "notify-watchdog"  # WATCHDOG=1 (sd_notify) within the last interval
    EXEC = "exec"                        # a command exits 0, inside the capsule's world


class HealthAction(enum.StrEnum):
    """What the Sentry does with a failing capsule (its policy's actions)."""

    LOG = "log"
    RESTART = "restart"
    FREEZE = "freeze"
    KILL = "kill"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Health:
    """A liveness check (exo_init/pid1/health.py runs it; the Sentry acts on its failures)."""

    kind: HealthKind
    path: str = _default(HEALTH, "path", str)
    host: str = _default(HEALTH, "host", str)
    port: int = _default(HEALTH, "port", int)
    argv: tuple[str, ...] = ()
    interval: float = _default(HEALTH, "interval", float)
    timeout: float = _default(HEALTH, "timeout", float)
    threshold: int = _default(HEALTH, "threshold", int)
    action: HealthAction = _default(HEALTH, "action", HealthAction)  # noqa: RUF009 (an enum member: immutable)
    network: bool = _default(HEALTH, "network", bool)


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

    host: bool = _default(CAPABILITIES, "host", bool)  # unconfined: the host's namespaces, root, all caps
    filesystem: tuple[tuple[str, Access], ...] = ()   # host paths bound into its root
    network: NetworkKind = _default(CAPABILITIES, "network", NetworkKind)  # noqa: RUF009 (an enum member: immutable)
    veth: Veth | None = None
    devices: tuple[str, ...] = ()                     # device nodes bound into its /dev
    block_devices: bool = _default(CAPABILITIES, "block_devices", bool)  # block devices allowed among them
    display: bool = _default(CAPABILITIES, "display", bool)  # the Wayland socket (WAYLAND_DISPLAY)
    bus: bool = _default(CAPABILITIES, "bus", bool)  # the D-Bus system bus socket
    control: bool = _default(CAPABILITIES, "control", bool)  # exo_init's control socket (mutations need uid 0)
    manage: tuple[str, ...] = ()                      # mutating control operations granted (start, stop, ...)
    logs: bool = _default(CAPABILITIES, "logs", bool)  # the capsule logs, read-only (exo_init's log directory)
    caps: tuple[str, ...] = ()                        # Linux capabilities kept ("CAP_NET_BIND_SERVICE")
    seccomp_deny: tuple[str, ...] = ()                # syscalls that fail with EPERM (beyond the baseline)
    seccomp_allow: tuple[str, ...] = ()               # classes of the baseline filter granted back

    @property
    def isolated(self) -> bool:
        return not self.host


@dataclass(frozen=True)
class Capsule:
    name: str
    argv: tuple[str, ...]            # () for a runtime capsule: the launch plan derives its command
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None          # None: root if capabilities.host, else a dynamic unprivileged uid
    group: str | None = None
    workdir: str = _default(CAPSULE, "workdir", str)
    type: CapsuleType = _default(CAPSULE, "type", CapsuleType)  # noqa: RUF009 (an enum member: immutable)
    autostart: bool = _default(CAPSULE, "autostart", bool)
    after: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    readiness: Readiness = field(default_factory=Readiness)
    restart: Restart = field(default_factory=Restart)
    stop: Stop = field(default_factory=Stop)
    quotas: Quotas = field(default_factory=Quotas)
    capabilities: Capabilities = field(default_factory=Capabilities)
    watchdog_sec: float = _default(CAPSULE, "watchdog_sec", float)
    console: bool = _default(CAPSULE, "console", bool)
    description: str = _default(CAPSULE, "description", str)
    runtime: Runtime = _default(CAPSULE, "runtime", Runtime)  # noqa: RUF009 (an enum member: immutable)
    wasm: Wasm | None = None         # runtime = "wasm"
    crush: Crush | None = None       # runtime = "crush"
    health: Health | None = None     # a liveness check

    def runtime_options(self) -> dict[str, Any] | None:
        """The configuration of the capsule's runtime (its section, as JSON values); None for exec."""
        if self.runtime is Runtime.WASM and self.wasm is not None:
            return {"module": self.wasm.module, "entry": self.wasm.entry, "fuel": self.wasm.fuel,
                    "memory_max": self.wasm.memory_max, "deadline": self.wasm.deadline}
        if self.runtime is Runtime.CRUSH and self.crush is not None:
            return {"program": self.crush.program, "gas": self.crush.gas, "arena": self.crush.arena,
                    "checkpoint_every": self.crush.checkpoint_every,
                    "on_bad_checkpoint": self.crush.on_bad_checkpoint.value, "fast": self.crush.fast,
                    "gas_per_period": self.crush.gas_per_period, "period": self.crush.period}
        return None

    def runtime_program(self) -> str | None:
        """The module a runtime capsule's interpreter runs (`PYTHON -m PROGRAM`); None for exec."""
        return None if self.runtime is Runtime.EXEC else SCHEMA.runtimes[self.runtime.value].program

    def runtime_config(self, state_dir: str) -> RuntimeConfig:
        """What a runtime capsule's runtime is given (lib/runtime.py's ENV_CONFIG), whoever runs it:
        exo_init's launch plan, or a unit `exoctl export-systemd` wrote."""
        options = self.runtime_options()
        if options is None:
            raise ValueError(f"capsule {self.name!r} has no runtime")
        caps = self.capabilities
        network: object = {"veth": {"address": caps.veth.address, "peer": caps.veth.peer}} if caps.veth else \
            caps.network.value
        grants = {"host": caps.host, "filesystem": {path: access.value for path, access in caps.filesystem},
                  "network": network, "devices": list(caps.devices), "block_devices": caps.block_devices,
                  "display": caps.display, "bus": caps.bus, "control": caps.control, "logs": caps.logs,
                  "caps": list(caps.caps), "seccomp_deny": list(caps.seccomp_deny)}
        return RuntimeConfig(runtime=self.runtime.value, capsule=self.name, options=options, grants=grants,
                             state_dir=state_dir)

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
#
# Each parser takes (value, dotted path, its FieldSpec) and returns the value as the dataclass
# holds it, or raises FieldError. The messages say what was expected and what was given; the ones
# for bounds are worded as manifest.nix words them ("must be between 0 and 86400, got -1").

if TYPE_CHECKING:  # (an alias for annotations only: `Any` is not there at run time)
    Parser = Callable[[Any, str, FieldSpec], Any]


SHOW_LIMIT = 200


def show(value: Any) -> str:
    """A value as messages quote it: JSON (at most SHOW_LIMIT characters), with numbers as
    `number_text` prints them."""
    if isinstance(value, int | float):
        return number_text(value)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):  # not JSON, an int too long for str(), nested too deeply
        return f"a {type(value).__name__}"
    return text if len(text) <= SHOW_LIMIT else text[:SHOW_LIMIT] + "..."


def name_problem(name: str) -> str | None:
    """What is wrong with a capsule name, or None: the pattern, and no name of a cgroup interface
    file (the capsule's cgroup is a directory beside cpu.max, cgroup.procs, ...)."""
    if not NAME_RE.fullmatch(name):
        return "names are 1-64 of a-z 0-9 _ . - starting alphanumeric"
    prefix, dot, _ = name.partition(".")
    if dot and prefix in SCHEMA.cgroup_prefixes:
        return f"{name!r} is named like a cgroup interface file ({prefix}.*); choose another name"
    return None


def _no_nul(value: str, path: str) -> str:
    if "\0" in value:
        raise FieldError(path, f"contains a NUL byte: {show(value)}")
    return value


def _expect(value: Any, kind: type | tuple[type, ...], path: str, what: str) -> Any:
    # bool is an int in Python; never accept it where a number is meant.
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else ()):
        raise FieldError(path, f"expected {what}, got {show(value)}")
    if not isinstance(value, kind):
        raise FieldError(path, f"expected {what}, got {show(value)}")
    return value


def _keys(obj: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        where = f"{path}." if path else ""
        raise FieldError(f"{where}{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _in_bounds(value: int | float, path: str, spec: FieldSpec) -> None:
    assert spec.bounds is not None, spec.name  # (the schema gives every numeric field bounds)
    if value not in spec.bounds:
        raise FieldError(path, f"must be {spec.bounds.text()}, got {show(value)}")


def _bool(value: Any, path: str, spec: FieldSpec) -> bool:
    return bool(_expect(value, bool, path, "true or false"))


def _string(value: Any, path: str, spec: FieldSpec) -> str:
    _no_nul(_expect(value, str, path, "a string"), path)
    if spec.nonempty and not value:
        raise FieldError(path, f"must not be empty ({spec.nonempty})")
    return str(value)


def _path(value: Any, path: str, spec: FieldSpec) -> str:
    _no_nul(_expect(value, str, path, "an absolute path"), path)
    if not value.startswith("/"):
        raise FieldError(path, f"must be an absolute path, got {value!r}")
    if spec.suffixes and not value.endswith(spec.suffixes):
        raise FieldError(path, f"must end in {' or '.join(spec.suffixes)}, got {value!r}")
    return str(value)


def _int(value: Any, path: str, spec: FieldSpec) -> int:
    _expect(value, int, path, "an integer")
    _in_bounds(value, path, spec)
    return int(value)


def _number(value: Any, path: str, spec: FieldSpec) -> float:
    _expect(value, (int, float), path, "a number")
    _in_bounds(value, path, spec)
    return float(value)


def _enum(value: Any, path: str, spec: FieldSpec) -> str:
    _expect(value, str, path, "a string")
    if value not in spec.values:
        raise FieldError(path, f"unknown {spec.name} {value!r} (one of: {', '.join(spec.values)})")
    return str(value)


def _strings(value: Any, path: str, what: str, valid: re.Pattern[str], bad: Callable[[str], str]) -> tuple[str, ...]:
    """A list of `what`s (strings that `valid` matches whole); `bad(item)` says what is wrong."""
    _expect(value, list, path, f"a list of {what}s")
    for i, item in enumerate(value):
        _expect(item, str, f"{path}[{i}]", f"a {what}")
        if not valid.fullmatch(item):
            raise FieldError(f"{path}[{i}]", bad(item))
    return tuple(value)


def _names(value: Any, path: str, spec: FieldSpec) -> tuple[str, ...]:
    names = _strings(value, path, "capsule name", NAME_RE, lambda item: f"{item!r} is not a valid capsule name")
    for i, name in enumerate(names):
        if name_problem(name) is not None:
            raise FieldError(f"{path}[{i}]", f"{name!r} is not a valid capsule name")
    return names


def _argv(value: Any, path: str, spec: FieldSpec) -> tuple[str, ...]:
    argv = _expect(value, list, path, "a non-empty list of strings")
    if not argv:
        raise FieldError(path, "must not be empty")
    for i, arg in enumerate(argv):
        _no_nul(_expect(arg, str, f"{path}[{i}]", "a string"), f"{path}[{i}]")
    if not argv[0].startswith("/"):
        raise FieldError(f"{path}[0]", f"must be an absolute path, got {argv[0]!r}")
    return tuple(argv)


def _env(value: Any, path: str, spec: FieldSpec) -> tuple[tuple[str, str], ...]:
    env = _expect(value, dict, path, "an object of strings")
    for key, item in env.items():
        if not key or "=" in key or "\0" in key:
            raise FieldError(f"{path}.{key}", "not a valid variable name")
        _no_nul(_expect(item, str, f"{path}.{key}", "a string"), f"{path}.{key}")
    return tuple(sorted(env.items()))


def _digits_within(digits: str, lo: int | float, hi: int | float) -> bool:
    """lo <= int(digits) <= hi, without converting a 4,301-digit string (Python refuses to)."""
    digits = digits.lstrip("0") or "0"
    return len(digits) <= len(str(int(hi))) and lo <= int(digits) <= hi


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # (str.isdigit alone takes "²", which int() refuses)


def parse_size(value: Any, path: str, spec: FieldSpec | None = None) -> str:
    """'64M' / 1048576 / 'max' -> the byte count string cgroup files take; at most the field's
    `max` bytes (memory_max's when no spec is given)."""
    spec = spec or QUOTAS.field("memory_max")
    assert spec.bounds is not None
    if value == "max":
        return "max"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        _in_bounds(value, path, spec)
        return str(value)
    if isinstance(value, str) and (m := SIZE_RE.fullmatch(value.strip())):
        unit, digits = SIZE_UNITS[m.group(2).upper()], m.group(1).lstrip("0") or "0"
        if not _digits_within(digits, 0, spec.bounds.max // unit):
            raise FieldError(path, f"must be at most {number_text(spec.bounds.max)} bytes, got {show(value)}")
        return str(int(digits) * unit)
    raise FieldError(path, f"expected a size such as 64M, 1G, 1048576 or \"max\", got {show(value)}")


def parse_cpu_max(value: Any, path: str, spec: FieldSpec | None = None) -> str:
    """'20%' -> '20000 100000'; 'max' or a raw 'QUOTA [PERIOD]' pass through after checking, each
    part within the schema's bounds."""
    spec = spec or QUOTAS.field("cpu_max")
    period_default = spec.extra["default_period"] if spec.extra else 100000
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            percent = spec.sub_bounds("percent")
            try:
                pct = float(text[:-1])
            except ValueError:
                pct = -1.0
            if pct not in percent:
                raise FieldError(path, f"must be a percentage {percent.text()}, got {show(value)}")
            return f"{round(pct * 1000)} {period_default}"
        parts = text.split()
        if len(parts) in (1, 2) and (parts[0] == "max" or _is_digits(parts[0])) and all(
            _is_digits(p) for p in parts[1:]
        ):
            for what, part in (("quota", parts[0]), ("period", parts[1] if len(parts) == 2 else "")):
                bounds = spec.sub_bounds(what)
                if part not in ("", "max") and not _digits_within(part, bounds.min, bounds.max):
                    raise FieldError(path, f"must have a {what} {bounds.text()} microseconds, got {show(value)}")
            return text if len(parts) == 2 else f"{parts[0]} {period_default}"
    raise FieldError(path, f"expected \"20%\", \"max\" or \"QUOTA PERIOD\" in microseconds, got {show(value)}")


def parse_signal(value: Any, path: str, spec: FieldSpec | None = None) -> int:
    """A signal name (any case, SIG optional) or number the schema lists -> its number."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value in SCHEMA.signal_numbers:
            try:
                return int(signal.Signals(value))
            except ValueError:
                pass
    elif isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name in SCHEMA.signal_names and name in signal.Signals.__members__:
            return int(signal.Signals[name])
    raise FieldError(path, f"unknown signal {show(value)}")


def _pids(value: Any, path: str, spec: FieldSpec) -> str:
    return "max" if value == "max" else str(_int(value, path, spec))


def _io_max(value: Any, path: str, spec: FieldSpec) -> tuple[str, ...]:
    return _strings(value, path, "\"MAJ:MIN key=value ...\" line", IO_MAX_RE,
                    lambda line: f"expected \"MAJ:MIN rbps=N ...\", got {line!r}")


def _host_path(value: Any, path: str, prefix: str = "/") -> str:
    _no_nul(_expect(value, str, path, "an absolute path"), path)
    parts = value.split("/")
    if not value.startswith(prefix) or value == prefix.rstrip("/") or ".." in parts or "." in parts[1:]:
        raise FieldError(path, f"expected a normalised absolute path under {prefix}, got {value!r}")
    if value == "/":
        raise FieldError(path, "granting / would give the whole host file system; grant the paths needed")
    return str(value).rstrip("/")


def _grants(value: Any, path: str, spec: FieldSpec) -> tuple[tuple[str, Access], ...]:
    fs = _expect(value, dict, path, "an object of path = \"ro\" | \"rw\"")
    grants: list[tuple[str, Access]] = []
    for key, mode in sorted(fs.items()):
        where = f"{path}.{key}"
        target = _host_path(key, where)
        try:
            grants.append((target, Access(_expect(mode, str, where, "\"ro\" or \"rw\""))))
        except ValueError:
            raise FieldError(where, f"expected \"ro\" or \"rw\", got {mode!r}") from None
    return tuple(grants)


def _veth(obj: Any, path: str) -> Veth:
    import ipaddress  # noqa: PLC0415 (only a veth grant needs it: PID 1 does not carry it otherwise)

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


def _network(value: Any, path: str, spec: FieldSpec) -> tuple[NetworkKind, Veth | None]:
    if isinstance(value, dict):
        _keys(value, ("veth",), path)
        return NetworkKind.VETH, _veth(value.get("veth"), f"{path}.veth")
    if value in ("none", "host"):
        return NetworkKind(value), None
    raise FieldError(path, f"expected \"none\", \"host\" or {{veth = {{...}}}}, got {value!r}")


def _devices(value: Any, path: str, spec: FieldSpec) -> tuple[str, ...]:
    devices = _expect(value, list, path, "a list of device paths")
    return tuple(_host_path(d, f"{path}[{i}]", "/dev/") for i, d in enumerate(devices))


# Capabilities that would let a capsule leave or rewrite its namespaces: granting one to an
# isolated capsule would make the isolation a suggestion, so it is refused (use host = true).
ESCAPE_CAPS = SCHEMA.escape_caps


def _caps(value: Any, path: str, spec: FieldSpec) -> tuple[str, ...]:
    caps = _expect(value, list, path, "a list of capability names")
    for i, cap in enumerate(caps):
        where = f"{path}[{i}]"
        _expect(cap, str, where, "a capability name such as \"CAP_NET_BIND_SERVICE\"")
        if cap not in scope.CAP_NUMBERS:
            raise FieldError(where, f"unknown Linux capability {cap!r}")
        if cap in ESCAPE_CAPS:
            raise FieldError(where, f"{cap} would let the capsule leave its namespaces; refused (use host = true)")
    return tuple(dict.fromkeys(caps))


def _syscalls(value: Any, path: str, spec: FieldSpec) -> tuple[str, ...]:
    deny = _expect(value, list, path, "a list of syscall names")
    for i, name in enumerate(deny):
        where = f"{path}[{i}]"
        _expect(name, str, where, "a syscall name")
        try:
            scope.syscall_number(name)
        except (LookupError, OSError) as e:
            raise FieldError(where, str(e)) from None
    return tuple(dict.fromkeys(deny))


def _enum_list(value: Any, path: str, spec: FieldSpec) -> tuple[str, ...]:
    items = _expect(value, list, path, f"a list of {spec.name} names")
    for i, item in enumerate(items):
        _expect(item, str, f"{path}[{i}]", "a string")
        if item not in spec.values:
            raise FieldError(f"{path}[{i}]", f"unknown {spec.name} {item!r} (one of: {', '.join(spec.values)})")
    return tuple(dict.fromkeys(items))


def _object(value: Any, path: str, spec: FieldSpec) -> Any:
    return _expect(value, dict, path, "an object")


PARSERS: dict[FieldType, Parser] = {
    FieldType.BOOL: _bool, FieldType.STRING: _string, FieldType.PATH: _path, FieldType.INT: _int,
    FieldType.NUMBER: _number, FieldType.ENUM: _enum, FieldType.ENUM_LIST: _enum_list, FieldType.NAMES: _names,
    FieldType.ARGV: _argv,
    FieldType.ENV: _env, FieldType.SIGNAL: parse_signal, FieldType.SIZE: parse_size,
    FieldType.CPU_MAX: parse_cpu_max, FieldType.PIDS: _pids, FieldType.IO_MAX: _io_max,
    FieldType.GRANTS: _grants, FieldType.NETWORK: _network, FieldType.DEVICES: _devices, FieldType.CAPS: _caps,
    FieldType.SYSCALLS: _syscalls, FieldType.SECTION: _object,
}


def parse_section(obj: Any, section: Section, prefix: str) -> dict[str, Any]:
    """The fields of `section` in `obj` (a JSON object at dotted path `prefix`), each parsed by its
    type, absent ones at their default (None for nullable fields, which null also leaves unset).
    A `section` field comes back as the raw object, for the caller to parse with its own rules."""
    where = prefix or "(capsule)"
    _expect(obj, dict, where, "an object")
    _keys(obj, section.keys, prefix)
    out: dict[str, Any] = {}
    for spec in section.fields:
        path = f"{prefix}.{spec.name}" if prefix else spec.name
        value = obj.get(spec.name)
        if spec.name not in obj or (value is None and spec.nullable):
            if spec.required:
                raise FieldError(path, f"missing ({spec.doc[0].lower()}{spec.doc[1:].rstrip('.')})")
            if spec.nullable:
                out[spec.name] = None
                continue
            value = spec.default
        out[spec.name] = PARSERS[spec.type](value, path, spec)
    return out


def _readiness(obj: Any, kind: CapsuleType) -> Readiness:
    f = parse_section(obj, READINESS, "readiness")
    r = Readiness(**(f | {"kind": ReadinessKind(f["kind"])}))
    if kind is CapsuleType.ONESHOT and r.kind is not ReadinessKind.STARTED:
        raise FieldError("readiness.kind", "a oneshot capsule is ready when it exits 0; it takes no readiness")
    if r.kind is ReadinessKind.FILE and not r.path.startswith("/"):
        raise FieldError("readiness.path", "kind file needs an absolute path")
    if r.kind is ReadinessKind.TCP and r.port == 0:
        raise FieldError("readiness.port", "kind tcp needs a port")
    return r


def _restart(obj: Any) -> Restart:
    f = parse_section(obj, RESTART, "restart")
    r = Restart(**(f | {"policy": RestartPolicy(f["policy"])}))
    if r.max_delay < r.delay:
        raise FieldError("restart.max_delay", f"must be >= restart.delay ({number_text(r.delay)})")
    return r


def _stop(obj: Any) -> Stop:
    return Stop(**parse_section(obj, STOP, "stop"))


QUOTA_KEYS = QUOTAS.keys


def _quotas(obj: Any) -> Quotas:
    return Quotas(**parse_section(obj, QUOTAS, "quotas"))


def _wasm(obj: Any) -> Wasm:
    f = parse_section(obj, WASM, "wasm")
    memory = f.pop("memory_max")
    return Wasm(**f, memory_max=WASM_MEMORY_LIMIT if memory == "max" else int(memory))


def _crush(obj: Any) -> Crush:
    f = parse_section(obj, CRUSH, "crush")
    arena = f.pop("arena")
    return Crush(**(f | {"arena": WASM_MEMORY_LIMIT if arena == "max" else int(arena),
                         "on_bad_checkpoint": BadCheckpoint(f["on_bad_checkpoint"])}))


def _health(obj: Any, ctype: CapsuleType) -> Health:
    f = parse_section(obj, HEALTH, "health")
    h = Health(**(f | {"kind": HealthKind(f["kind"]), "action": HealthAction(f["action"]), "argv": f["argv"] or ()}))
    if ctype is CapsuleType.ONESHOT:
        raise FieldError("health", "a oneshot capsule runs to completion; it takes no liveness check")
    if h.kind is HealthKind.FILE and not h.path.startswith("/"):
        raise FieldError("health.path", "kind file needs an absolute path")
    if h.kind is HealthKind.TCP and h.port == 0:
        raise FieldError("health.port", "kind tcp needs a port")
    if (h.kind is HealthKind.EXEC) != bool(h.argv):
        raise FieldError("health.argv", "kind exec needs argv" if h.kind is HealthKind.EXEC else
                         f"only for kind exec (this check's kind is \"{h.kind.value}\")")
    return h


CAPABILITY_KEYS = CAPABILITIES.keys


def parse_capabilities(obj: Any) -> Capabilities:
    _expect(obj, dict, "capabilities", "an object")
    _keys(obj, CAPABILITY_KEYS, "capabilities")
    if _bool(obj.get("host", False), "capabilities.host", CAPABILITIES.field("host")):
        others = sorted(k for k in obj if k != "host")
        if others:
            raise FieldError(f"capabilities.{others[0]}", "meaningless with host = true (it grants everything)")
        return Capabilities(host=True)
    f = parse_section(obj, CAPABILITIES, "capabilities")
    network, veth = f.pop("network")
    if f["manage"] and not f["control"]:
        raise FieldError("capabilities.manage", "needs control = true (the control socket it calls through)")
    return Capabilities(**f, network=network, veth=veth)


CAPSULE_KEYS = CAPSULE.keys


def _runtime_rules(f: dict[str, Any], runtime: Runtime) -> None:
    """`argv` is for exec; each runtime's section is for that runtime, which needs it (the schema's
    `runtimes` table); a runtime supports only some readiness kinds."""
    for other, spec in SCHEMA.runtimes.items():
        if other != runtime.value and f[spec.section] is not None:
            raise FieldError(spec.section, f"only for runtime = \"{other}\" (this capsule's runtime is "
                                           f"\"{runtime.value}\")")
    if runtime is Runtime.EXEC:
        if f["argv"] is None:
            raise FieldError("argv", "missing (the command to run, with arguments; required for runtime = \"exec\")")
        return
    spec = SCHEMA.runtimes[runtime.value]
    if f["argv"] is not None:
        raise FieldError("argv", f"a {runtime.value} capsule's command is derived (exo_init runs {spec.program}); "
                                 "leave argv out")
    if f[spec.section] is None:
        raise FieldError(spec.section, f"missing (runtime = \"{runtime.value}\" needs its {spec.section} section)")


def parse_capsule(name: str, obj: Any) -> Capsule:
    """One capsule's JSON object -> Capsule, or FieldError naming the field."""
    f = parse_section(obj, CAPSULE, "")
    if name in f["after"] + f["requires"]:
        raise FieldError("requires" if name in f["requires"] else "after", "a capsule cannot depend on itself")
    ctype = CapsuleType(f["type"])
    runtime = Runtime(f["runtime"])
    _runtime_rules(f, runtime)
    readiness = _readiness(f["readiness"], ctype)
    capabilities = parse_capabilities(f["capabilities"])
    if capabilities.manage and f["user"] is not None:
        raise FieldError("capabilities.manage", "needs the capsule's own dynamic uid (no user): PID 1 knows the "
                                                "caller by its uid")
    if runtime is not Runtime.EXEC and readiness.kind.value not in SCHEMA.runtimes[runtime.value].readiness:
        kinds = SCHEMA.runtimes[runtime.value].readiness
        raise FieldError("readiness.kind", f"a {runtime.value} capsule takes {' or '.join(kinds)}, got "
                                           f"{readiness.kind.value!r}")
    return Capsule(**(f | {
        "name": name,
        "argv": f["argv"] or (),
        "type": ctype,
        "readiness": readiness,
        "restart": _restart(f["restart"]),
        "stop": _stop(f["stop"]),
        "quotas": _quotas(f["quotas"]),
        "capabilities": capabilities,
        "runtime": runtime,
        "wasm": _wasm(f["wasm"]) if f["wasm"] is not None else None,
        "crush": _crush(f["crush"]) if f["crush"] is not None else None,
        "health": _health(f["health"], ctype) if f["health"] is not None else None,
    }))


TOP_KEYS = SCHEMA.top.keys
DEFAULT_HOSTNAME = _default(SCHEMA.top, "hostname", str)


def parse_manifest(doc: Any, source: str = "") -> Manifest:
    where = source or "manifest"
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: top level must be an object")
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ManifestError(f"{where}: unknown top-level key {unknown[0]!r}")
    version = doc.get("version")
    if type(version) is not int or version != MANIFEST_VERSION:
        raise ManifestError(f"{where}: version must be {MANIFEST_VERSION}, got {show(version)}")
    hostname = doc.get("hostname", DEFAULT_HOSTNAME)
    if not isinstance(hostname, str) or not HOSTNAME_RE.fullmatch(hostname):
        raise ManifestError(f"{where}: hostname {show(hostname)} is not a valid host name")
    raw = doc.get("capsules", {})
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: capsules must be an object of name -> capsule")

    capsules: dict[str, Capsule] = {}
    errors: dict[str, CapsuleError] = {}
    for name, obj in raw.items():
        problem = name_problem(name)
        if problem is not None:
            errors[name] = CapsuleError(name, "(name)", problem)
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


INT64 = range(-(1 << 63), 1 << 63)


def _json_int(text: str) -> int | float:
    """A JSON integer as Nix's builtins.fromJSON reads it: an int if it fits in 64 bits, else a
    float (inf when huge). Python's int() refuses 4,301 digits and more, with a ValueError that
    would otherwise escape the loader; this way such a number is one capsule's bounds error."""
    if len(text) <= 20 and int(text) in INT64:
        return int(text)
    return float(text)


def loads(text: str | bytes) -> Any:
    """Parse manifest JSON (json.JSONDecodeError on bad syntax), numbers as `_json_int` says."""
    return json.loads(text, parse_int=_json_int)


def decode(data: bytes, source: str) -> Any:
    """A manifest file's bytes -> the JSON document; ManifestError names the source and the problem
    (not UTF-8, not JSON, nested too deeply)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{source}: not valid UTF-8: {e.reason} at byte {e.start}") from None
    try:
        return loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ManifestError(f"{source}: not valid JSON: nested too deeply") from None
    except ValueError as e:  # (what json raises besides JSONDecodeError: e.g. a number it cannot read)
        raise ManifestError(f"{source}: not valid JSON: {e}") from None


def load_manifest(path: Path) -> Manifest:
    """Read and parse a manifest file; ManifestError names the file and what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read: {e.strerror}") from None
    return parse_manifest(decode(data, str(path)), str(path))


def empty_manifest(source: str = "") -> Manifest:
    return Manifest(hostname=DEFAULT_HOSTNAME, capsules={}, errors={}, source=source)
