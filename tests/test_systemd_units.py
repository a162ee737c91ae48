"""`exoctl export-systemd` (exo_init/client/systemd_units.py): the unit written for each manifest
field, from the real loader's Capsule values; every unit of the dev image's manifest (and of one
that sets every field) passes `systemd-analyze verify` of this machine's systemd; the readiness
helper (systemd_ready.py) as real processes; the exoctl command; README names every field that
has no exact equivalent. The units running under systemd are tested in the booted systemd image
(tests/vm/test_versus.py)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exo_init.client import systemd_units
from exo_init.client.systemd_units import INEXACT, Options, capsule_unit, export, quote_command, target_unit
from exo_init.lib.runtime import ENV_CONFIG, EXIT_DETERMINISTIC, RuntimeConfig
from exo_init.pid1.manifest import Capsule, Manifest, parse_manifest

REPO = Path(__file__).resolve().parent.parent
HELPER = REPO / "exo_init" / "client" / "systemd_ready.py"
OPTIONS = Options(helper=str(HELPER), python=sys.executable, exo_lib=str(REPO))
WASM = REPO / "tests" / "guest" / "wasm"


def capsule(**fields: Any) -> Capsule:
    """One capsule through the real loader (argv defaults to /bin/sleep unless it has a runtime; its
    dependencies declared)."""
    deps = {name: {"argv": ["/bin/true"]} for name in (*fields.get("after", ()), *fields.get("requires", ()))}
    argv = {} if "runtime" in fields else {"argv": ["/bin/sleep", "1000"]}
    doc = {"version": 1, "capsules": {**deps, "svc": {**argv, **fields}}}
    m = parse_manifest(doc, "test")
    assert not m.errors, m.errors
    return m.capsules["svc"]


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """{section: [(key, value), ...]}, comments dropped."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = []
            continue
        key, _, value = line.partition("=")
        out[section].append((key, value))
    return out


def settings(cap: Capsule, options: Options = OPTIONS) -> dict[str, list[str]]:
    """key -> values (a key may repeat), over all sections."""
    out: dict[str, list[str]] = {}
    for items in parse_unit(capsule_unit(cap, options).text).values():
        for key, value in items:
            out.setdefault(key, []).append(value)
    return out


HOST = {"capabilities": {"host": True}}

# (manifest fields, settings that must be there, keys that must not be)
FIELDS: list[tuple[str, dict[str, Any], dict[str, str], tuple[str, ...]]] = [
    ("simple, started: Type=exec", HOST, {"Type": "exec", "ExecStart": "/bin/sleep 1000"}, ("RemainAfterExit",)),
    ("oneshot", {"type": "oneshot", **HOST}, {"Type": "oneshot", "RemainAfterExit": "yes",
                                              "TimeoutStartSec": "infinity"}, ()),
    ("oneshot with restart always restarts only on failure", {"type": "oneshot", "restart": {"policy": "always"}},
     {"Restart": "on-failure"}, ()),
    ("notify", {"readiness": {"kind": "notify", "timeout": 12}},
     {"Type": "notify", "NotifyAccess": "all", "TimeoutStartSec": "12s"}, ()),
    ("readiness timeout 0 is no timeout", {"readiness": {"kind": "notify", "timeout": 0}},
     {"TimeoutStartSec": "infinity"}, ()),
    ("fd readiness through the helper", {"readiness": {"kind": "fd", "fd": 5}},
     {"Type": "notify", "NotifyAccess": "all",
      "ExecStart": f"{sys.executable} {HELPER} fd 5 -- /bin/sleep 1000"}, ()),
    ("file readiness polled by ExecStartPost", {"readiness": {"kind": "file", "path": "/run/x.ready"}},
     {"Type": "exec", "ExecStartPost": f"{sys.executable} {HELPER} file /run/x.ready"}, ()),
    ("tcp readiness polled by ExecStartPost", {"readiness": {"kind": "tcp", "host": "::1", "port": 80}},
     {"ExecStartPost": f"{sys.executable} {HELPER} tcp ::1 80"}, ()),
    ("watchdog", {"watchdog_sec": 3, **HOST}, {"WatchdogSec": "3s", "NotifyAccess": "all"}, ()),
    ("restart always with backoff and start limit",
     {"restart": {"policy": "always", "delay": 2, "max_delay": 8, "limit_burst": 7, "limit_interval": 90}},
     {"Restart": "always", "RestartSec": "2s", "StartLimitBurst": "7", "StartLimitIntervalSec": "90s"},
     ("RestartSteps", "RestartMaxDelaySec")),
    ("restart never", {"restart": {"policy": "never"}}, {"Restart": "no"}, ("RestartSec", "StartLimitBurst")),
    ("stop signal and timeout", {"stop": {"signal": "hup", "timeout": 4}},
     {"KillSignal": "SIGHUP", "TimeoutStopSec": "4s", "KillMode": "mixed"}, ()),
    ("stop timeout 0 kills at once", {"stop": {"timeout": 0}}, {"TimeoutStopSec": "1ms"}, ()),
    ("after and requires", {"after": ["a"], "requires": ["b"]},
     {"After": "exo-a.service exo-b.service", "Requires": "exo-b.service"}, ()),
    ("user, group, workdir", {"user": "daemon", "group": "nogroup", "workdir": "/tmp"},
     {"User": "daemon", "Group": "nogroup", "WorkingDirectory": "/tmp"}, ("DynamicUser",)),
    ("env", {"env": {"A": "1", "B": "two words"}, **HOST},
     {"Environment": 'EXO_CAPSULE=svc LANG=C.UTF-8 TERM=dumb A=1 "B=two words"'}, ()),
    ("console", {"console": True, **HOST}, {"StandardInput": "tty", "TTYPath": "/dev/console"}, ("DeviceAllow",)),
    ("console, isolated: the device cgroup allows it", {"console": True},
     {"PrivateDevices": "yes", "DeviceAllow": "/dev/console rw"}, ()),
    ("not autostart: no [Install]", {"autostart": False}, {}, ("WantedBy",)),
    ("cpu_max percent", {"quotas": {"cpu_max": "20%"}, **HOST}, {"CPUQuota": "20%"}, ("CPUQuotaPeriodSec",)),
    ("cpu_max with a period", {"quotas": {"cpu_max": "5000 50000"}, **HOST},
     {"CPUQuota": "10%", "CPUQuotaPeriodSec": "50ms"}, ()),
    ("cpu_max max", {"quotas": {"cpu_max": "max"}, **HOST}, {}, ("CPUQuota",)),
    ("cpu_max rounded", {"quotas": {"cpu_max": "33333 100000"}, **HOST}, {"CPUQuota": "33.33%"}, ()),
    ("cpu and io weight", {"quotas": {"cpu_weight": 50, "io_weight": 200}, **HOST},
     {"CPUWeight": "50", "IOWeight": "200"}, ()),
    ("memory", {"quotas": {"memory_max": "64M", "memory_high": "max", "memory_swap_max": "0"}, **HOST},
     {"MemoryMax": "67108864", "MemoryHigh": "infinity", "MemorySwapMax": "0"}, ()),
    ("pids", {"quotas": {"pids_max": 16}, **HOST}, {"TasksMax": "16"}, ()),
    ("io_max", {"quotas": {"io_max": ["8:0 rbps=100 wbps=max riops=5 wiops=6"]}, **HOST},
     {"IOReadBandwidthMax": "/dev/block/8:0 100", "IOReadIOPSMax": "/dev/block/8:0 5",
      "IOWriteIOPSMax": "/dev/block/8:0 6"}, ("IOWriteBandwidthMax",)),
    ("memory_oom_group", {"quotas": {"memory_oom_group": True}, **HOST}, {"OOMPolicy": "kill"}, ()),
    ("host: unconfined, no default limits", HOST, {},
     ("DynamicUser", "ProtectSystem", "PrivateNetwork", "TasksMax", "MemoryMax", "CapabilityBoundingSet")),
    ("isolated by default", {},
     {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
      "PrivateTmp": "yes", "PrivateDevices": "yes", "PrivateNetwork": "yes", "PrivateIPC": "yes",
      "ProtectHostname": "yes", "CapabilityBoundingSet": "", "TasksMax": "1024", "MemoryMax": "50%",
      "InaccessiblePaths": "-/run/exosphere/control.sock -/run/dbus -/run/exosphere/wayland -/var/log/exosphere"},
     ("AmbientCapabilities", "SystemCallFilter", "DeviceAllow")),
    ("filesystem grants", {"capabilities": {"filesystem": {"/srv/a": "ro", "/srv/b": "rw"}}},
     {"BindReadOnlyPaths": "/srv/a", "BindPaths": "/srv/b"}, ()),
    ("network host", {"capabilities": {"network": "host"}}, {}, ("PrivateNetwork",)),
    ("network veth: private, only lo", {"capabilities": {"network": {"veth": {"address": "10.1.0.2/30",
                                                                               "peer": "10.1.0.1/30"}}}},
     {"PrivateNetwork": "yes"}, ()),
    ("devices", {"capabilities": {"devices": ["/dev/fb0", "/dev/kmsg"]}},
     {"DevicePolicy": "closed", "DeviceAllow": "/dev/fb0 rw"}, ("PrivateDevices", "ProtectKernelLogs")),
    ("socket grants are not hidden", {"capabilities": {"bus": True, "control": True, "display": True, "logs": True}},
     {"Environment": "EXO_CAPSULE=svc LANG=C.UTF-8 TERM=dumb HOME=/tmp "
                     "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket "
                     "XDG_RUNTIME_DIR=/run/exosphere/wayland WAYLAND_DISPLAY=wayland-0"}, ("InaccessiblePaths",)),
    ("caps", {"user": "root", "capabilities": {"caps": ["CAP_NET_BIND_SERVICE", "CAP_SYS_TTY_CONFIG"]}},
     {"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE CAP_SYS_TTY_CONFIG",
      "AmbientCapabilities": "CAP_NET_BIND_SERVICE CAP_SYS_TTY_CONFIG"}, ("DynamicUser",)),
    ("seccomp_deny", {"capabilities": {"seccomp_deny": ["ptrace", "mkdir"]}},
     {"SystemCallFilter": "~ptrace mkdir", "SystemCallErrorNumber": "EPERM"}, ()),
]


@pytest.mark.parametrize(("fields", "want", "absent"), [f[1:] for f in FIELDS], ids=[f[0] for f in FIELDS])
def test_unit_per_field(fields: dict[str, Any], want: dict[str, str], absent: tuple[str, ...]) -> None:
    got = settings(capsule(**fields))
    for key, value in want.items():
        assert value in got.get(key, []), f"{key}={value!r} not in {key}={got.get(key)}"
    for key in absent:
        assert key not in got, f"{key}={got[key]} should not be set"


def test_backoff_steps_for_a_newer_systemd() -> None:
    fields = {"restart": {"delay": 0.5, "max_delay": 30}}
    new = settings(capsule(**fields), Options(systemd_version=254))
    assert new["RestartSteps"] == ["6"] and new["RestartMaxDelaySec"] == ["30s"]  # 0.5 * 2^6 = 32 >= 30
    old = capsule_unit(capsule(**fields), OPTIONS)
    assert "RestartSteps" not in settings(capsule(**fields)) and "restart.max_delay" in old.inexact


def test_inexact_notes_are_in_the_unit_and_named() -> None:
    unit = capsule_unit(capsule(readiness={"kind": "fd", "fd": 3},
                                capabilities={"network": {"veth": {"address": "10.1.0.2/30", "peer": "10.1.0.1/30"}}}))
    assert {"readiness.fd", "capabilities", "capabilities.network"} <= set(unit.inexact)
    for key in unit.inexact:
        assert f"# inexact: {key}" in unit.text
    assert capsule_unit(capsule(**HOST, restart={"policy": "never"})).inexact == ()
    produced = {key for u in export(every_field_manifest()) for key in u.inexact}
    assert produced == set(INEXACT), f"never produced: {set(INEXACT) - produced}"


def test_readme_names_every_inexact_field() -> None:
    readme = (REPO / "README.md").read_text()
    section = re.split(r"\n##+ ", readme.split("### Exporting to systemd", 1)[1], maxsplit=1)[0]
    missing = [key for key in INEXACT if f"`{key}`" not in section]
    assert missing == [], f"README 'Exporting to systemd' does not name: {missing}"


@pytest.mark.parametrize("argv", [
    ["/bin/echo", "plain"],
    ["/bin/echo", "two words", 'a "quote"', "back\\slash", "50%", "$HOME", "${X}", ";", "tab\there", ""],
])
def test_command_quoting(argv: list[str]) -> None:
    """The words systemd reads back are the argv (systemd's own parsing: tests/vm/test_versus.py;
    here the rules: % doubled, $ doubled, a lone ; escaped, anything else quoted with C escapes)."""
    line = quote_command(argv)
    if argv[1:] == ["plain"]:
        assert line == "/bin/echo plain"
    else:
        assert line == ('/bin/echo "two words" "a \\"quote\\"" "back\\\\slash" 50%% "$$HOME" "$${X}" \\; '
                        '"tab\\there" ""')


def test_target_wants_and_follows_the_autostart_capsules() -> None:
    m = parse_manifest({"version": 1, "hostname": "box", "capsules": {
        "a": {"argv": ["/bin/true"]}, "b": {"argv": ["/bin/true"], "autostart": False}}}, "t")
    units = parse_unit(target_unit(m).text)
    assert ("Wants", "exo-a.service") in units["Unit"] and ("After", "exo-a.service") in units["Unit"]
    assert [u.name for u in export(m)] == ["exosphere.target", "exo-a.service", "exo-b.service"]
    assert [u.name for u in export(m, Options(prefix=""), only=["b"])] == ["b.service"]


# --- systemd's own check -------------------------------------------------------------------------

def unit_environment(cap: Capsule, options: Options = OPTIONS) -> dict[str, str]:
    """The unit's Environment= as systemd reads it (quoted words; %% is %)."""
    words = shlex.split(" ".join(settings(cap, options)["Environment"]).replace("%%", "%"))
    return dict(w.split("=", 1) for w in words)


@pytest.mark.parametrize(("module", "wasm", "status"), [("hello.wat", {}, 0),
                                                          ("spin.wat", {"fuel": 1000}, EXIT_DETERMINISTIC)])
def test_a_runtime_capsule_runs_exo_inits_runtime_with_the_same_configuration(
        module: str, wasm: dict[str, Any], status: int, tmp_path: Path) -> None:
    """A wasm capsule's unit runs `PYTHON -m exo_init.runtimes.wasm` with the configuration exo_init's
    plan gives it (the same Capsule.runtime_config); run here as the unit would (its state directory
    in tmp), the module runs, and a deterministic failure exits with the status the unit does not
    restart."""
    cap = capsule(runtime="wasm", wasm={"module": str(WASM / module), **wasm}, restart={"policy": "on-failure"})
    s = settings(cap)
    assert s["ExecStart"] == [quote_command([sys.executable, "-m", "exo_init.runtimes.wasm"])]
    assert s["StateDirectory"] == ["exosphere-capsules/svc"] and s["RestartPreventExitStatus"] == ["65"]
    env = unit_environment(cap)
    config = RuntimeConfig.from_json(env[ENV_CONFIG])
    assert config == cap.runtime_config("/var/lib/exosphere-capsules/svc")
    assert env["PYTHONPATH"] == str(REPO) and env["EXO_CAPSULE"] == "svc"
    env[ENV_CONFIG] = replace(config, state_dir=str(tmp_path)).to_json()
    proc = subprocess.run([sys.executable, "-m", "exo_init.runtimes.wasm"], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == status, proc.stdout + proc.stderr
    if status == 0:
        assert "hello from wasm" in proc.stdout + proc.stderr


def every_field_manifest() -> Manifest:
    capsules: dict[str, Any] = {f"c{i}": {"argv": ["/bin/sleep", "1000"], **fields}
                                for i, (_, fields, _, _) in enumerate(FIELDS) if "after" not in fields}
    capsules["deps"] = {"argv": ["/bin/true"], "after": ["c0"], "requires": ["c1"]}
    capsules["runtime"] = {"runtime": "wasm", "wasm": {"module": str(WASM / "hello.wat")}}
    doc = {"version": 1, "capsules": capsules}
    m = parse_manifest(doc, "every field")
    assert not m.errors and len(m.capsules) == len(FIELDS) + 1
    return m


def dev_manifest() -> Manifest:
    render = REPO / "nixos-modules" / "render.nix"
    out = subprocess.run(["nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", render,
                          "--arg", "extra", f"[ {REPO / 'tests' / 'guest' / 'capsules.nix'} ]"],
                         capture_output=True, text=True, check=True).stdout
    m = parse_manifest(json.loads(out), "dev image")
    assert not m.errors
    return m


@pytest.mark.parametrize("which", ["every field", "dev image"])
def test_systemd_analyze_verify_accepts_every_unit(which: str, tmp_path: Path) -> None:
    """systemd-analyze verify prints nothing for a unit it accepts whole (an unknown key or a value
    it cannot parse is a warning, with exit 0: so any output fails)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("no systemd-analyze on this machine (the booted systemd image still runs the units)")
    manifest = every_field_manifest() if which == "every field" else dev_manifest()
    # ExecStart programs must exist here: the dev image's python capsules run /usr/bin/python3.
    units = export(manifest, OPTIONS)
    for u in units:
        (tmp_path / u.name).write_text(u.text)
    r = subprocess.run([tool, "verify", "--man=no", *sorted(u.name for u in units)], cwd=tmp_path,
                       capture_output=True, text=True, check=False)
    lines = [line for line in (r.stdout + r.stderr).splitlines()
             if "Command /usr/bin/dbus-daemon is not executable" not in line]  # (not every host has a bus)
    assert r.returncode in (0, 1) and lines == [], "\n".join(lines)


def test_verify_would_see_a_bad_unit(tmp_path: Path) -> None:
    """The check above can fail: a key systemd 252 does not have is reported."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("no systemd-analyze on this machine")
    unit = capsule_unit(capsule(**HOST, restart={"delay": 1, "max_delay": 8}), Options(systemd_version=254))
    (tmp_path / unit.name).write_text(unit.text)
    r = subprocess.run([tool, "verify", "--man=no", unit.name], cwd=tmp_path, capture_output=True, text=True,
                       check=False)
    assert "Unknown key 'RestartSteps'" in r.stderr


# --- the readiness helper, as real processes -----------------------------------------------------

def notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    return sock


def test_helper_fd_mode_turns_a_newline_into_ready(tmp_path: Path) -> None:
    sock = notify_socket(tmp_path)
    program = "import os, time; time.sleep(0.3); os.write(4, b'up\\n'); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, str(HELPER), "fd", "4", "--", sys.executable, "-c", program],
                            env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        message = sock.recv(512).decode()
        assert message == f"READY=1\nMAINPID={proc.pid}"
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[1] == b"-c"  # the program kept the pid
    finally:
        proc.kill()
        proc.wait()


def test_helper_fd_mode_sends_nothing_when_the_program_exits_silently(tmp_path: Path) -> None:
    sock = notify_socket(tmp_path)
    sock.settimeout(1.0)
    r = subprocess.run([sys.executable, str(HELPER), "fd", "3", "--", "/bin/true"],
                       env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}, timeout=30, check=False)
    assert r.returncode == 0
    with pytest.raises(TimeoutError):
        sock.recv(512)


def test_helper_probes_wait_for_the_file_and_the_port(tmp_path: Path) -> None:
    target = tmp_path / "ready"
    waiting = subprocess.Popen([sys.executable, str(HELPER), "file", str(target)])
    time.sleep(0.5)
    assert waiting.poll() is None
    target.touch()
    assert waiting.wait(timeout=10) == 0
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        waiting = subprocess.Popen([sys.executable, str(HELPER), "tcp", "127.0.0.1", str(port)])
        time.sleep(0.5)
        assert waiting.poll() is None
        listener.listen()
        assert waiting.wait(timeout=10) == 0


# --- exoctl export-systemd -------------------------------------------------------------------------

def exoctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", *args], cwd=REPO, capture_output=True,
                          text=True, check=False, timeout=60)


def test_exoctl_export_systemd(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "capsules": {
        "web": {"argv": ["/bin/sleep", "1"]}, "bad": {"argv": ["relative"]}}}))
    r = exoctl("export-systemd", str(manifest), "-o", str(tmp_path / "units"), "--prefix", "x-")
    assert r.returncode == 1 and "skipped: capsule 'bad': argv[0]" in r.stderr, r.stderr
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["exosphere.target", "x-web.service"]
    printed = exoctl("export-systemd", str(manifest), "--only", "web")
    assert printed.stdout.startswith("### exo-web.service\n") and "DynamicUser=yes" in printed.stdout
    assert exoctl("export-systemd", str(manifest), "--only", "nope").returncode == 4
    assert exoctl("export-systemd", str(tmp_path / "missing.json")).returncode == 1
    assert systemd_units.HELPER.endswith("exo_init/client/systemd_ready.py")
