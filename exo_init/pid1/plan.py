"""A capsule's launch plan: manifest entry + run-time facts -> a frozen SpawnPlan. Pure.

Everything exo_init decides about a run before it forks is decided here, without touching the
system: who the process runs as (`Identity`, from a snapshot of the user database), the world it
sees (`scope.ScopePlan`: system paths, grants, sockets, devices), its environment, and which
readiness file descriptor it gets. The facts that depend on the machine (the user database, the
dynamic uids other capsules hold, which paths exist) come in as a `Facts` value, so the whole
plan is unit-tested without processes (tests/test_plan.py).

A runtime capsule (manifest `runtime` other than `exec`, e.g. `wasm`) gets a derived command: the
runtime interpreter (`Config.python`) running `-m PROGRAM` (the schema's `runtimes` table), with
its configuration, grants and state directory in `$EXO_RUNTIME` (exo_init/lib/runtime.py: the
runtime builds its capability import table from the grants). Its world gets, read-only, the file it
runs (`wasm.module`, `crush.program`: a grant the plan adds), the exo_init package (and the crush
package for a CRUSH capsule) and the interpreter's installation when they are not under the
system's paths already, and, read-write, its state directory
(`STATE/capsules/NAME`: the state disk's /var/lib/exosphere when there is one, else /run), which
the host makes, owned by the capsule's uid, before the fork.

A grant that cannot be honoured now (a granted path that does not exist, an unknown user, a socket
whose service is not running, a module file that is not there) is a `PlanError` naming the field:
the runner turns it into the capsule's `failed` state, never an exception out of the supervisor.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from pathlib import Path

from exo_init.lib.paths import SYSTEM_BUS_DIR, WAYLAND_SOCKET
from exo_init.lib.runtime import ENV_CONFIG
from exo_init.pid1 import scope
from exo_init.pid1.config import SYSTEM_PATH, Config
from exo_init.pid1.manifest import Access, Capsule, NetworkKind, Quotas, ReadinessKind, Runtime
from exo_init.pid1.manifest_schema import SCHEMA
from exo_init.pid1.spawn import SpawnPlan
from exo_init.pid1.zygote import PythonRun

DEFAULT_PIDS_MAX = "1024"
# The small init a scoped capsule's PID namespace runs (Debian's dumb-init: it waits on signals,
# never on a timer). Where it is missing, exo_init's own Python nsinit takes its place.
NS_INIT = "/usr/bin/dumb-init"


def mem_total(meminfo: str = "/proc/meminfo") -> int:
    """The machine's RAM in bytes, 0 if unknown."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class PlanError(Exception):
    """A capsule that cannot be launched as declared; the message names the field."""


@dataclass(frozen=True)
class Identity:
    """Who a capsule's main process runs as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


@dataclass(frozen=True)
class UserEntry:
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class Users:
    """A snapshot of the user and group databases."""

    users: Mapping[str, UserEntry]
    groups: Mapping[str, int]                       # group name -> gid
    members: Mapping[str, tuple[int, ...]]          # user name -> supplementary gids

    @classmethod
    def read(cls) -> Users:
        members: dict[str, list[int]] = {}
        groups: dict[str, int] = {}
        for g in grp.getgrall():
            groups.setdefault(g.gr_name, g.gr_gid)
            for user in g.gr_mem:
                members.setdefault(user, []).append(g.gr_gid)
        return cls(users={pw.pw_name: UserEntry(pw.pw_uid, pw.pw_gid, pw.pw_dir) for pw in pwd.getpwall()},
                   groups=groups, members={u: tuple(gids) for u, gids in members.items()})

    def uids(self) -> frozenset[int]:
        return self._uids

    @functools.cached_property
    def _uids(self) -> frozenset[int]:
        return frozenset(e.uid for e in self.users.values())


def cached_users(files: tuple[str, ...] = ("/etc/passwd", "/etc/group")) -> Callable[[], Users]:
    """Users.read, again only when one of `files` changed (it parsed the databases for every
    launch: a thousand launches, a thousand parses)."""
    cache: dict[str, object] = {}

    def users() -> Users:
        key = []
        for f in files:
            try:
                st = os.stat(f)
                key.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                key.append((0, 0, 0))
        if cache.get("key") != key or not isinstance(cache.get("users"), Users):
            cache["users"], cache["key"] = Users.read(), key
        found = cache["users"]
        assert isinstance(found, Users)
        return found

    return users


class Either:
    """Membership in either of two containers, without copying them (the uids other capsules hold,
    the user database's)."""

    def __init__(self, a: Container[int], b: Container[int]) -> None:
        self.a, self.b = a, b

    def __contains__(self, item: object) -> bool:
        return item in self.a or item in self.b


def _is_block_device(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


@dataclass(frozen=True)
class Facts:
    """What a launch plan depends on besides the manifest entry."""

    config: Config
    users: Users
    taken_uids: Container[int]            # uids held by the other capsules' runs
    mem_total: int = 0                    # bytes of RAM (0: unknown, no default memory limit)
    state_dir: Path | None = None         # PID 1's state directory (None: RUNTIME/state)
    exists: Callable[[str], bool] = os.path.exists
    is_block_device: Callable[[str], bool] = _is_block_device
    interpreter: str = ""                 # PID 1's own Python (its realpath): programs on it may run in the fork
    realpath: Callable[[str], str] = os.path.realpath


def launch_plan(spec: Capsule, facts: Facts) -> SpawnPlan:
    """The complete, frozen plan of one run of `spec`; PlanError if it cannot be launched now."""
    ident = identity(spec, facts)
    env = environment(spec, ident, facts.config)
    argv, state = spec.argv, None
    if spec.runtime is not Runtime.EXEC:
        argv, state = runtime_argv(spec, facts), str(runtime_state_dir(spec, facts))
        env |= runtime_environment(spec, facts, state)
    return SpawnPlan(
        argv=argv,
        env=env,
        uid=ident.uid,
        gid=ident.gid,
        groups=ident.groups,
        user=ident.name,
        workdir=spec.workdir,
        console=spec.console,
        notify_fd=spec.readiness.fd if spec.readiness.kind is ReadinessKind.FD else None,
        scope=scope_plan(spec, ident, facts) if spec.capabilities.isolated else None,
        ns_init=ns_init(spec, facts),
        python=python_run(spec, ident, facts),
        quotas=spec.quotas,
        default_quotas=default_quotas(spec, facts),
        state_dir=state,
    )


# Interpreter options a forked PID 1 can honour (the rest -- -O, -X, -W, ... -- exec as before),
# and the environment variables it can (any other PYTHON* one: exec).
PYTHON_FLAGS = frozenset("IESsuBP")
PYTHON_ENV = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})


def python_run(spec: Capsule, ident: Identity, facts: Facts) -> PythonRun | None:
    """The Python program to run in the forked child instead of exec'ing the interpreter (see
    zygote.py): only on PID 1's own interpreter, only for an unconfined capsule running as root
    (none other may see PID 1's memory), not on the console, with options and environment a fork
    can honour; not a runtime capsule (its program is exo_init's runtime, run by the runtime
    interpreter: exo_init --python). None: exec as usual."""
    if not facts.interpreter or spec.capabilities.isolated or ident.uid != 0 or spec.console:
        return None
    if spec.runtime is not Runtime.EXEC:
        return None
    if facts.realpath(spec.argv[0]) != facts.interpreter:
        return None
    env = dict(spec.env)
    if any(k.startswith("PYTHON") and k not in PYTHON_ENV for k in env):
        return None
    flags, rest = "", list(spec.argv[1:])
    while rest and rest[0].startswith("-") and rest[0] not in ("-", "-m", "-c") and not rest[0].startswith("--"):
        if not set(rest[0][1:]) <= PYTHON_FLAGS:
            return None
        flags += rest.pop(0)[1:]
    if not rest:
        return None
    isolated = "I" in flags
    use_env = not (isolated or "E" in flags)
    path: list[str] = []
    if rest[0] in ("-m", "-c"):
        if len(rest) < 2:
            return None
        kind, target, args = ("module" if rest[0] == "-m" else "code"), rest[1], rest[2:]
        argv0 = "-c" if kind == "code" else rest[1]  # (-m: runpy sets the module's file)
        first = spec.workdir if kind == "module" else ""
    else:
        kind, target, args, argv0 = "script", rest[0], rest[1:], rest[0]
        first = os.path.dirname(facts.realpath(os.path.join(spec.workdir, rest[0])))
    if not (isolated or "P" in flags):
        path.append(first)
    if use_env and env.get("PYTHONPATH"):
        path += [p for p in env["PYTHONPATH"].split(":") if p]
    return PythonRun(kind=kind, target=target, argv=(argv0, *args), path=tuple(path),
                     unbuffered="u" in flags or bool(use_env and env.get("PYTHONUNBUFFERED")),
                     dont_write_bytecode="B" in flags or bool(use_env and env.get("PYTHONDONTWRITEBYTECODE")))


def ns_init(spec: Capsule, facts: Facts) -> str | None:
    """The small init of an isolated capsule's PID namespace, if the system has it; a console
    capsule keeps exo_init's own (it hands the terminal to the program, and ^C to it alone)."""
    if not spec.capabilities.isolated or spec.console or not facts.exists(NS_INIT):
        return None
    return NS_INIT


# --- runtime capsules ---------------------------------------------------------------------------------

def runtime_argv(spec: Capsule, facts: Facts) -> tuple[str, ...]:
    """`PYTHON -m PROGRAM` for a runtime capsule; PlanError if the interpreter or the file it
    runs is not there."""
    python = facts.config.python
    if not facts.exists(python):
        raise PlanError(f"runtime: the runtime interpreter {python} does not exist (exo_init --python)")
    runtime = SCHEMA.runtimes[spec.runtime.value]
    code = runtime_file(spec)
    if code is not None and not facts.exists(code):
        raise PlanError(f"{runtime.section}.{runtime.file}: {code} does not exist")
    program = spec.runtime_program()
    assert program is not None
    return (python, "-m", program)


def runtime_file(spec: Capsule) -> str | None:
    """The file a runtime capsule runs (the `wasm.module`, the `crush.program`: the schema's
    `runtimes` table names the field); None for exec."""
    if spec.runtime is Runtime.EXEC:
        return None
    code = (spec.runtime_options() or {}).get(SCHEMA.runtimes[spec.runtime.value].file)
    return code if isinstance(code, str) else None


def runtime_state_dir(spec: Capsule, facts: Facts) -> Path:
    """The capsule's own writable directory (compiled-module cache): STATE/capsules/NAME."""
    base = facts.state_dir or facts.config.runtime_dir / "state"
    return base / "capsules" / spec.name


def runtime_environment(spec: Capsule, facts: Facts, state_dir: str) -> dict[str, str]:
    """The runtime's configuration and where its package is; they win over the capsule's `env`."""
    return {ENV_CONFIG: spec.runtime_config(state_dir).to_json(), "PYTHONPATH": facts.config.exo_lib,
            "PYTHONDONTWRITEBYTECODE": "1"}


def _under(path: str, roots: tuple[str, ...] | list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def runtime_binds(spec: Capsule, facts: Facts) -> list[scope.Bind]:
    """What a scoped runtime capsule's world needs besides its grants: the runtime's interpreter and
    package (read-only, where they are not under the system's paths), the file it runs (read-only,
    last: above a granted directory it is in), the state directory (read-write)."""
    config = facts.config
    binds: list[scope.Bind] = []
    needed = [*config.python_paths, str(Path(config.exo_lib) / "exo_init")]
    if spec.runtime is Runtime.CRUSH:
        needed.append(str(Path(config.exo_lib) / "crush"))  # the CRUSH VM, beside exo_init
    for path in dict.fromkeys(needed):
        if not _under(path, scope.SYSTEM_PATHS) and facts.exists(path):
            binds.append(scope.Bind(path, path, readonly=True))
    code = runtime_file(spec)
    if code is not None and not _under(code, scope.SYSTEM_PATHS):
        binds.append(scope.Bind(code, code, readonly=True))
    state = str(runtime_state_dir(spec, facts))
    binds.append(scope.Bind(state, state, readonly=False))
    return binds


def default_quotas(spec: Capsule, facts: Facts) -> Quotas:
    """An isolated capsule that declares no limit still gets some (a fork bomb or a leak in a
    scoped capsule must not take the machine): DEFAULT_PIDS_MAX tasks, half the RAM. A capsule
    with `host = true` manages the machine and gets none."""
    if not spec.capabilities.isolated:
        return Quotas()
    memory = str(facts.mem_total // 2) if facts.mem_total > 0 else None
    return Quotas(pids_max=DEFAULT_PIDS_MAX, memory_max=memory)


def identity(spec: Capsule, facts: Facts) -> Identity:
    if spec.user is None and spec.capabilities.isolated:
        try:
            uid = scope.dynamic_uid(spec.name, Either(facts.taken_uids, facts.users.uids()))
        except LookupError:
            raise PlanError(f"user: no free dynamic uid ({len(scope.DYNAMIC_UIDS)} in use)") from None
        return Identity(spec.name, uid, uid, (uid,), "/tmp")  # dynamic: no passwd entry on the host
    user = spec.user or "root"
    entry = facts.users.users.get(user)
    if entry is None:
        raise PlanError(f"user: unknown user {user!r}")
    gid = entry.gid
    if spec.group is not None:
        if spec.group not in facts.users.groups:
            raise PlanError(f"group: unknown group {spec.group!r}")
        gid = facts.users.groups[spec.group]
    groups = tuple(sorted({gid, *facts.users.members.get(user, ())}))
    return Identity(user, entry.uid, gid, groups, entry.home if spec.capabilities.host else "/tmp")


def needs_notify_socket(spec: Capsule) -> bool:
    """sd_notify readiness, the watchdog, and every runtime capsule (it reports its figures)."""
    return spec.readiness.kind is ReadinessKind.NOTIFY or spec.watchdog_sec > 0 or spec.runtime is not Runtime.EXEC


def scope_plan(spec: Capsule, ident: Identity, facts: Facts) -> scope.ScopePlan:
    """The isolated world of a capsule; PlanError names a grant that cannot be honoured now."""
    caps, config = spec.capabilities, facts.config
    binds = [scope.Bind(p, p, readonly=True) for p in scope.SYSTEM_PATHS if facts.exists(p)]
    for path, access in caps.filesystem:
        if not facts.exists(path):
            raise PlanError(f"capabilities.filesystem: {path} does not exist")
        binds.append(scope.Bind(path, path, readonly=access is Access.RO))
    for dev in caps.devices:
        if not facts.exists(dev):
            raise PlanError(f"capabilities.devices: {dev} does not exist")
        if facts.is_block_device(dev) and not caps.block_devices:
            raise PlanError(f"capabilities.devices: {dev} is a block device (raw access to a disk); "
                            "that needs capabilities.block_devices = true")
        binds.append(scope.Bind(dev, dev, readonly=False, device=True))
    # Read-only, sockets too: connect(2) works on a read-only mount, chmod/chown/unlink do not
    # (a uid-0 capsule could otherwise lock everyone else out of the host's socket).
    sockets: list[tuple[bool, Path, str]] = [
        (needs_notify_socket(spec), config.notify_socket, "the sd_notify socket"),
        (caps.control, config.control_socket, "exo_init's control socket"),
        (caps.logs, config.log_dir, "the capsule log directory"),
        (caps.bus, SYSTEM_BUS_DIR, "the system bus (is the dbus capsule running?)"),
        (caps.display, config.wayland_dir, "the Wayland socket directory (is the compositor running?)"),
    ]
    for granted, sock, what in sockets:
        if granted:
            if not facts.exists(str(sock)):
                raise PlanError(f"capabilities: {what} is not there ({sock})")
            binds.append(scope.Bind(str(sock), str(sock), readonly=True))
    if caps.network is NetworkKind.HOST and facts.exists("/etc/resolv.conf"):
        binds.append(scope.Bind("/etc/resolv.conf", "/etc/resolv.conf", readonly=True))
    if spec.runtime is not Runtime.EXEC:
        binds += runtime_binds(spec, facts)
    return scope.ScopePlan(
        root=str(config.runtime_dir / "scope-root"),
        hostname=spec.name,
        binds=tuple(binds),
        etc_files=scope.etc_files(spec.name, ident.name, ident.uid, ident.gid),
        network=caps.network.value,
        veth_address=caps.veth.address if caps.veth else "",
        veth_peer=caps.veth.peer if caps.veth else "",
        veth_host_name=scope.veth_name(spec.name),
        caps=tuple(scope.CAP_NUMBERS[c] for c in caps.caps),
        seccomp_deny=caps.seccomp_deny,
        seccomp_allow=caps.seccomp_allow,
    )


def environment(spec: Capsule, ident: Identity, config: Config) -> dict[str, str]:
    env = {"PATH": SYSTEM_PATH, "HOME": ident.home, "USER": ident.name, "LOGNAME": ident.name,
           "LANG": "C.UTF-8", "EXO_CAPSULE": spec.name, "TERM": "linux" if spec.console else "dumb"}
    if needs_notify_socket(spec):
        env["NOTIFY_SOCKET"] = str(config.notify_socket)
    if spec.capabilities.bus:  # (libdbus's default is /var/run/..., not in a scoped world)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={SYSTEM_BUS_DIR}/system_bus_socket"
    if spec.capabilities.display:
        env["XDG_RUNTIME_DIR"] = str(config.wayland_dir)
        env["WAYLAND_DISPLAY"] = WAYLAND_SOCKET
    if spec.watchdog_sec > 0:
        env["WATCHDOG_USEC"] = str(int(spec.watchdog_sec * 1_000_000))
    env.update(dict(spec.env))
    return env
