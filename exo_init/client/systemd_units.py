"""`exoctl export-systemd`: a manifest's capsules as systemd unit files.

Each capsule becomes `<prefix><name>.service`; one `exosphere.target` wants every capsule that
starts at boot and is ordered after them, so reaching it means what "boot complete" means to
exo_init (every capsule ready). The manifest is read by exo_init's own loader (the same
`Capsule` values PID 1 runs), so a unit says exactly what the capsule declares:

    type, readiness   oneshot -> Type=oneshot + RemainAfterExit=yes; started -> Type=exec;
                      notify -> Type=notify; fd -> Type=notify through `systemd_ready.py fd`;
                      file / tcp -> Type=exec + ExecStartPost=`systemd_ready.py file|tcp`
    restart           Restart=, RestartSec=, StartLimitBurst=/StartLimitIntervalSec=; the doubling
                      backoff as RestartSteps=/RestartMaxDelaySec= only for systemd >= 254
    stop              KillSignal=, TimeoutStopSec=, KillMode=mixed (the signal to the main
                      process, SIGKILL to the whole cgroup: what exo_init does)
    after, requires   After=, Requires=
    quotas            CPUQuota=(+CPUQuotaPeriodSec=), CPUWeight=, MemoryMax=, MemoryHigh=,
                      MemorySwapMax=, TasksMax=, IOWeight=, IO{Read,Write}{Bandwidth,IOPS}Max=,
                      OOMPolicy=; an isolated capsule's default limits (TasksMax=1024,
                      MemoryMax=50%) as exo_init applies them
    scope             DynamicUser=, ProtectSystem=strict, ProtectHome=, PrivateTmp=,
                      PrivateDevices= or DevicePolicy=closed + DeviceAllow=, PrivateNetwork=,
                      PrivateIPC=, ProtectHostname=, ProtectProc=, BindPaths=/BindReadOnlyPaths=,
                      InaccessiblePaths= (exo_init's sockets not granted), NoNewPrivileges=,
                      CapabilityBoundingSet=/AmbientCapabilities=, SystemCallFilter=,
                      RestrictNamespaces=, ProtectKernel*=, ProtectControlGroups=

What has no exact equivalent is written into the unit as a `# inexact:` comment and returned in
`Unit.inexact` (README: "Exporting to systemd" lists them). The target is systemd 252, Debian
bookworm's; `systemd-analyze verify` accepts every unit (tests/test_systemd_units.py).
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from exo_init.lib.paths import DEFAULT_RUNTIME, SYSTEM_BUS_DIR, WAYLAND_SOCKET
from exo_init.lib.runtime import ENV_CONFIG, EXIT_DETERMINISTIC
from exo_init.pid1.manifest import (
    Access,
    Capsule,
    CapsuleType,
    Manifest,
    ManifestError,
    NetworkKind,
    ReadinessKind,
    RestartPolicy,
    load_manifest,
)

BOOKWORM = 252            # Debian 12's systemd: the default target version
RESTART_STEPS_SINCE = 254  # RestartSteps= and RestartMaxDelaySec= appeared in systemd 254
TARGET = "exosphere.target"
EXO_LIB = "/usr/lib/exosphere"  # where the dev image installs the exo_init package
HELPER = f"{EXO_LIB}/exo_init/client/systemd_ready.py"
RUNTIME_STATE = "exosphere-capsules"  # a runtime capsule's StateDirectory= is RUNTIME_STATE/NAME (in /var/lib)
DEFAULT_PIDS_MAX = 1024   # exo_init's default for an isolated capsule (plan.default_quotas) ...
DEFAULT_MEMORY_MAX = "50%"  # ... and half the RAM
WAYLAND_DIR = DEFAULT_RUNTIME / "wayland"
CONTROL_SOCKET = DEFAULT_RUNTIME / "control.sock"
SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
# What has no exact equivalent in systemd, by manifest field (README "Exporting to systemd").
INEXACT = {
    "readiness.fd": "systemd has no notification fd; the helper gives the program a pipe as that fd and sends "
                    "READY=1 when a newline arrives",
    "readiness.file": "systemd does not probe; ExecStartPost= polls for the path (in the service's namespaces)",
    "readiness.tcp": "systemd does not probe; ExecStartPost= polls the port (in the service's namespaces)",
    "restart.max_delay": "no doubling backoff before systemd 254 (RestartSteps=, RestartMaxDelaySec=): a fixed "
                         "RestartSec=",
    "restart.reset_after": "no equivalent; the start limit counts starts, exo_init's counts failed runs",
    "quotas.cpu_max": "CPUQuota= takes hundredths of a percent: rounded",
    "quotas.io_max": "systemd names devices by path: /dev/block/MAJ:MIN (made by udev)",
    "quotas.memory_oom_group": "OOMPolicy= also decides whether the unit stops after an OOM kill",
    "capabilities": "no PID namespace (PrivatePIDs= is systemd 257); the host's tree stays visible read-only "
                    "where exo_init's root holds only the system's programs and the grants; /sys stays visible "
                    "read-only; the host name stays the host's",
    "capabilities.namespaces": "RestrictNamespaces=yes is stricter: exo_init lets a capsule make user namespaces "
                               "of its own",
    "capabilities.network": "systemd makes no veth pair for a service: PrivateNetwork= gives only lo",
    "capabilities.devices": "DevicePolicy=closed + DeviceAllow= refuse other devices, but the host's /dev stays "
                            "visible (exo_init's /dev holds only the granted nodes)",
    "capabilities.control": "exo_init's control socket means nothing to systemd (its API is D-Bus); it stays "
                            "reachable if it exists",
    "capabilities.logs": "logs go to the journal; exo_init's log directory stays readable",
    "runtime": "the runtime's deterministic failure (exit 65) is not restarted (RestartPreventExitStatus=), but "
               "the unit is 'failed' with its status, not with the runtime's one-line reason; its figures "
               "(EXO_METRICS) mean nothing to systemd",
}


class ExportError(Exception):
    """The manifest as a whole cannot be read (one line naming the file and the problem)."""


def read_manifest(path: Path) -> Manifest:
    """The manifest by exo_init's own loader; capsules that do not load are in `errors`."""
    try:
        return load_manifest(path)
    except ManifestError as e:
        raise ExportError(str(e)) from None


@dataclass(frozen=True)
class Options:
    prefix: str = "exo-"                 # unit names: <prefix><capsule>.service
    systemd_version: int = BOOKWORM
    python: str = "/usr/bin/python3"     # runs the readiness helper and runtime capsules (with wasmtime)
    helper: str = HELPER                 # exo_init/client/systemd_ready.py on the target system
    exo_lib: str = EXO_LIB               # the directory holding the exo_init package (runtime capsules)
    log_dir: str = "/var/log/exosphere"  # exo_init's capsule logs (capabilities.logs)


@dataclass(frozen=True)
class Unit:
    name: str
    text: str
    inexact: tuple[str, ...] = ()


@dataclass
class _Section:
    title: str
    lines: list[str] = field(default_factory=list)

    def set(self, key: str, value: object) -> None:
        self.lines.append(f"{key}={value}")

    def note(self, text: str) -> None:
        self.lines.append(f"# {text}")


def unit_name(capsule: str, options: Options = Options()) -> str:
    return f"{options.prefix}{capsule}.service"


# --- quoting (systemd.syntax(7), systemd.service(5) "Command lines") -------------------------------

def _escape(text: str) -> str:
    """Inside double quotes: C escapes for backslash, quote and control characters."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def specifiers(text: str) -> str:
    """% starts a specifier in nearly every setting: a literal % is %%."""
    return text.replace("%", "%%")


def quote_word(word: str) -> str:
    """One word of a space-separated list (paths, Environment= assignments)."""
    word = specifiers(word)
    return word if SAFE.fullmatch(word) else f'"{_escape(word)}"'


def quote_command(argv: Iterable[str]) -> str:
    """An ExecStart= command line: each argument one word; `$` is variable expansion there ($$),
    and a lone `;` would separate commands."""
    words = []
    for raw in argv:
        arg = specifiers(raw).replace("$", "$$")
        if arg == ";":
            words.append("\\;")
        elif arg and SAFE.fullmatch(arg):
            words.append(arg)
        else:
            words.append(f'"{_escape(arg)}"')
    return " ".join(words)


def seconds(value: float) -> str:
    return f"{value:g}s"


# --- one capsule ---------------------------------------------------------------------------------

class _Writer:
    def __init__(self, capsule: Capsule, options: Options) -> None:
        self.c = capsule
        self.o = options
        self.unit = _Section("Unit")
        self.service = _Section("Service")
        self.install = _Section("Install")
        self.inexact: list[str] = []

    def inexact_note(self, section: _Section, key: str, detail: str = "") -> None:
        """`key` is the manifest field; INEXACT[key] says what differs, `detail` this capsule's value."""
        self.inexact.append(key)
        section.note(f"inexact: {key}{f' ({detail})' if detail else ''}: {INEXACT[key]}")

    def render(self) -> Unit:
        c = self.c
        self.unit.set("Description", c.description or f"Exosphere capsule {c.name}")
        self._dependencies()
        self._type_and_readiness()
        self._identity_and_environment()
        self._restart_and_stop()
        self._quotas()
        if c.capabilities.isolated:
            self._scope()
        if c.autostart:
            self.install.set("WantedBy", TARGET)
        header = [f"# {unit_name(c.name, self.o)}: capsule {c.name!r}, generated by `exoctl export-systemd`",
                  f"# for systemd {self.o.systemd_version} from the Exosphere manifest "
                  "(exo_init/client/systemd_units.py)."]
        sections = [s for s in (self.unit, self.service, self.install) if s.lines]
        text = "\n".join(header) + "\n" + "\n".join(
            f"\n[{s.title}]\n" + "\n".join(s.lines) for s in sections) + "\n"
        return Unit(unit_name(c.name, self.o), text, tuple(self.inexact))

    def _dependencies(self) -> None:
        c = self.c
        if c.ordering:
            self.unit.set("After", " ".join(unit_name(n, self.o) for n in c.ordering))
        if c.requires:
            self.unit.set("Requires", " ".join(unit_name(n, self.o) for n in c.requires))

    def _type_and_readiness(self) -> None:
        c, s, r = self.c, self.service, self.c.readiness
        program = c.runtime_program()
        argv = list(c.argv) if program is None else [self.o.python, "-m", program]
        post: list[str] = []
        if c.type is CapsuleType.ONESHOT:
            s.set("Type", "oneshot")
            s.set("RemainAfterExit", "yes")  # ready for dependents once it exited 0, like `exited`
            s.set("TimeoutStartSec", "infinity")  # exo_init puts no readiness timeout on a oneshot
        elif r.kind is ReadinessKind.STARTED:
            s.set("Type", "exec")  # active once the exec succeeded: readiness `started`
        elif r.kind is ReadinessKind.NOTIFY:
            s.set("Type", "notify")
        elif r.kind is ReadinessKind.FD:
            s.set("Type", "notify")
            self.inexact_note(s, "readiness.fd", f"fd {r.fd}")
            argv = [self.o.python, self.o.helper, "fd", str(r.fd), "--", *argv]
        else:
            s.set("Type", "exec")
            probe = ["file", r.path] if r.kind is ReadinessKind.FILE else ["tcp", r.host, str(r.port)]
            self.inexact_note(s, f"readiness.{r.kind.value}")
            post = [self.o.python, self.o.helper, *probe]
        if c.type is not CapsuleType.ONESHOT:
            s.set("TimeoutStartSec", seconds(r.timeout) if r.timeout > 0 else "infinity")
        if r.kind in (ReadinessKind.NOTIFY, ReadinessKind.FD) or c.watchdog_sec > 0:
            s.set("NotifyAccess", "all")  # exo_init takes sd_notify from any process of the capsule
        if c.watchdog_sec > 0:
            s.set("WatchdogSec", seconds(c.watchdog_sec))  # missed: SIGABRT (WatchdogSignal=), as exo_init
        s.set("ExecStart", quote_command(argv))
        if post:
            s.set("ExecStartPost", quote_command(post))

    def _identity_and_environment(self) -> None:
        c, s, caps = self.c, self.service, self.c.capabilities
        if c.user is not None:
            s.set("User", quote_word(c.user))
        elif caps.isolated:
            s.set("DynamicUser", "yes")  # the same uid range as exo_init's (61184-65519)
        if c.group is not None:
            s.set("Group", quote_word(c.group))
        if c.workdir != "/":
            s.set("WorkingDirectory", quote_word(c.workdir))
        env = {"EXO_CAPSULE": c.name, "LANG": "C.UTF-8", "TERM": "linux" if c.console else "dumb"}
        if caps.isolated and c.user is None:
            env["HOME"] = "/tmp"
        if caps.bus:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={SYSTEM_BUS_DIR}/system_bus_socket"
        if caps.display:
            env["XDG_RUNTIME_DIR"] = str(WAYLAND_DIR)
            env["WAYLAND_DISPLAY"] = WAYLAND_SOCKET
        env.update(dict(c.env))
        if c.runtime_program() is not None:  # (as exo_init's plan: the runtime's configuration wins)
            state = f"{RUNTIME_STATE}/{c.name}"
            env |= {ENV_CONFIG: c.runtime_config(f"/var/lib/{state}").to_json(), "PYTHONPATH": self.o.exo_lib,
                    "PYTHONDONTWRITEBYTECODE": "1"}
            s.set("StateDirectory", quote_word(state))
            s.set("RestartPreventExitStatus", EXIT_DETERMINISTIC)
            self.inexact_note(s, "runtime", c.runtime.value)
        s.set("Environment", " ".join(quote_word(f"{k}={v}") for k, v in env.items()))
        if c.console:
            s.set("StandardInput", "tty")
            s.set("StandardOutput", "tty")
            s.set("StandardError", "tty")
            s.set("TTYPath", "/dev/console")

    def _restart_and_stop(self) -> None:
        c, s, r = self.c, self.service, self.c.restart
        policy = {RestartPolicy.ALWAYS: "always", RestartPolicy.ON_FAILURE: "on-failure",
                  RestartPolicy.NEVER: "no"}[r.policy]
        if c.type is CapsuleType.ONESHOT and policy == "always":
            policy = "on-failure"  # exo_init restarts a oneshot only after a failure, whatever the policy
        s.set("Restart", policy)
        if r.policy is not RestartPolicy.NEVER:
            s.set("RestartSec", seconds(r.delay))
            if r.max_delay > r.delay:
                if self.o.systemd_version >= RESTART_STEPS_SINCE:
                    steps = max(1, math.ceil(math.log2(r.max_delay / r.delay))) if r.delay > 0 else 1
                    s.set("RestartSteps", steps)
                    s.set("RestartMaxDelaySec", seconds(r.max_delay))
                else:
                    self.inexact_note(s, "restart.max_delay", f"{r.delay:g} s doubling up to {r.max_delay:g} s")
            self.inexact_note(s, "restart.reset_after", f"{r.reset_after:g} s")
            self.unit.set("StartLimitIntervalSec", seconds(r.limit_interval))
            self.unit.set("StartLimitBurst", r.limit_burst)
        s.set("KillMode", "mixed")
        s.set("KillSignal", signal.Signals(c.stop.signal).name)
        # 0 means "no timeout" to systemd, "kill at once" to exo_init.
        s.set("TimeoutStopSec", seconds(c.stop.timeout) if c.stop.timeout > 0 else "1ms")

    def _quotas(self) -> None:
        q, s = self.c.quotas, self.service
        isolated = self.c.capabilities.isolated
        if q.cpu_max is not None:
            quota, period = q.cpu_max.split()
            if quota != "max":
                permyriad = int(quota) * 10000 / int(period)
                if permyriad != int(permyriad):
                    self.inexact_note(s, "quotas.cpu_max", q.cpu_max)
                percent = round(permyriad) / 100
                s.set("CPUQuota", f"{percent:g}%")
                if int(period) != 100000:
                    s.set("CPUQuotaPeriodSec", f"{int(period) / 1000:g}ms")
        if q.cpu_weight is not None:
            s.set("CPUWeight", q.cpu_weight)
        memory_max = q.memory_max if q.memory_max is not None else (DEFAULT_MEMORY_MAX if isolated else None)
        for key, value in (("MemoryMax", memory_max), ("MemoryHigh", q.memory_high),
                           ("MemorySwapMax", q.memory_swap_max)):
            if value is not None:
                s.set(key, "infinity" if value == "max" else value)
        pids = q.pids_max if q.pids_max is not None else (str(DEFAULT_PIDS_MAX) if isolated else None)
        if pids is not None:
            s.set("TasksMax", "infinity" if pids == "max" else pids)
        if q.io_weight is not None:
            s.set("IOWeight", q.io_weight)
        keys = {"rbps": "IOReadBandwidthMax", "wbps": "IOWriteBandwidthMax", "riops": "IOReadIOPSMax",
                "wiops": "IOWriteIOPSMax"}
        if q.io_max:
            self.inexact_note(s, "quotas.io_max")
        for line in q.io_max:
            dev, *limits = line.split()
            for item in limits:
                key, _, value = item.partition("=")
                if value != "max":
                    s.set(keys[key], f"/dev/block/{dev} {value}")
        if q.memory_oom_group is not None:
            s.set("OOMPolicy", "kill" if q.memory_oom_group else "continue")
            self.inexact_note(s, "quotas.memory_oom_group")

    def _scope(self) -> None:
        s, caps = self.service, self.c.capabilities
        self.inexact_note(s, "capabilities")
        s.set("NoNewPrivileges", "yes")
        s.set("ProtectSystem", "strict")
        s.set("ProtectHome", "yes")
        s.set("PrivateTmp", "yes")
        s.set("PrivateIPC", "yes")
        s.set("ProtectHostname", "yes")
        s.set("ProtectProc", "invisible")
        s.set("ProtectKernelTunables", "yes")
        s.set("ProtectKernelModules", "yes")
        if "/dev/kmsg" not in caps.devices:
            s.set("ProtectKernelLogs", "yes")
        s.set("ProtectControlGroups", "yes")
        s.set("RestrictNamespaces", "yes")
        self.inexact_note(s, "capabilities.namespaces")
        if caps.network is NetworkKind.HOST:
            pass
        else:
            s.set("PrivateNetwork", "yes")
            if caps.network is NetworkKind.VETH and caps.veth is not None:
                self.inexact_note(s, "capabilities.network", f"veth {caps.veth.address}, peer {caps.veth.peer}")
        if self.c.console:  # opened before the sandbox, but the device cgroup must let it be
            s.set("DeviceAllow", "/dev/console rw")
        if caps.devices:
            s.set("DevicePolicy", "closed")
            for dev in caps.devices:
                s.set("DeviceAllow", f"{quote_word(dev)} rw")
            self.inexact_note(s, "capabilities.devices")
        else:
            s.set("PrivateDevices", "yes")
        ro = [p for p, a in caps.filesystem if a is Access.RO]
        rw = [p for p, a in caps.filesystem if a is Access.RW]
        if ro:
            s.set("BindReadOnlyPaths", " ".join(quote_word(p) for p in ro))
        if rw:
            s.set("BindPaths", " ".join(quote_word(p) for p in rw))
        hidden = []
        for granted, path in ((caps.control, CONTROL_SOCKET), (caps.bus, SYSTEM_BUS_DIR),
                              (caps.display, WAYLAND_DIR), (caps.logs, Path(self.o.log_dir))):
            if not granted and not any(p == str(path) or str(path).startswith(p + "/") for p in rw + ro):
                hidden.append(quote_word(f"-{path}"))
        if hidden:
            s.set("InaccessiblePaths", " ".join(hidden))
        if caps.control:
            self.inexact_note(s, "capabilities.control")
        if caps.logs:
            self.inexact_note(s, "capabilities.logs")
        s.set("CapabilityBoundingSet", " ".join(caps.caps))
        if caps.caps:
            s.set("AmbientCapabilities", " ".join(caps.caps))
        if caps.seccomp_deny:
            s.set("SystemCallFilter", "~" + " ".join(caps.seccomp_deny))
            s.set("SystemCallErrorNumber", "EPERM")


def capsule_unit(capsule: Capsule, options: Options = Options()) -> Unit:
    return _Writer(capsule, options).render()


def target_unit(manifest: Manifest, options: Options = Options()) -> Unit:
    wanted = [unit_name(n, options) for n, c in sorted(manifest.capsules.items()) if c.autostart]
    lines = [f"# {TARGET}: every capsule that starts at boot, generated by `exoctl export-systemd`.",
             "# Reached once all of them are ready: exo_init's \"boot complete\".", "", "[Unit]",
             f"Description=Exosphere capsules ({manifest.hostname})"]
    if wanted:
        lines += [f"Wants={' '.join(wanted)}", f"After={' '.join(wanted)}"]
    lines += ["", "[Install]", "WantedBy=multi-user.target"]
    return Unit(TARGET, "\n".join(lines) + "\n")


def export(manifest: Manifest, options: Options = Options(), only: Iterable[str] = ()) -> list[Unit]:
    """The target and one service per loaded capsule (`only`: those capsules, without the target)."""
    names = list(only)
    if names:
        return [capsule_unit(manifest.capsules[n], options) for n in names]
    return [target_unit(manifest, options)] + [capsule_unit(c, options) for _, c in sorted(manifest.capsules.items())]
