"""The org.exosphere.Core1 D-Bus API on the host.

* pure: the call mapping between D-Bus methods and control socket requests, error names, the
  introspection XML, and that the bus policy file lets through exactly the read-only methods;
* live: a real exo_init (child subreaper) supervising a private dbus-daemon and the bridge as its
  capsules (fd and sd_notify readiness, as in the image), driven with exoctl and gdbus: both
  transports give the same documents and exit codes, access control, state signals, stopping the
  bus through the API itself, and the fallback to the private socket.

The live part needs the system Python's D-Bus bindings (python3-gi, python3-pydbus) and dbus-daemon,
which qemu/setup-host installs; it is skipped without them.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exo_init.client import dbus_api
from tests.exo import ExoInit

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "dbus" / "org.exosphere.Core1.conf"
SYSTEM_PY = "/usr/bin/python3"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# --- pure ------------------------------------------------------------------------------------------


def test_every_exoctl_request_maps_to_a_method_and_back() -> None:
    requests: list[dict[str, Any]] = [
        {"op": "status"}, {"op": "status", "name": "web"}, {"op": "logs", "name": "web", "lines": 7},
        {"op": "info"}, {"op": "reload"}, {"op": "poweroff"}, {"op": "reboot"},
        *({"op": op, "name": "web"} for op in ("start", "stop", "restart", "freeze", "thaw")),
    ]
    for request in requests:
        method, signature, args = dbus_api.dbus_call(request)
        assert dbus_api.METHODS[method].signature == signature
        assert dbus_api.control_request(method, args) == request, request
        assert dbus_api.supports(request["op"])
    assert not dbus_api.supports("subscribe") and not dbus_api.supports("ping")


def test_error_names() -> None:
    for name in ("NoSuchCapsule", "AccessDenied", "InvalidManifest", "Failed", "BadRequest"):
        assert dbus_api.error_name(name) == f"org.exosphere.Error.{name}"
        assert dbus_api.control_error_name(dbus_api.error_name(name)) == name
    assert dbus_api.error_name("SomethingNew") == "org.exosphere.Error.Failed"
    assert dbus_api.control_error_name("org.freedesktop.DBus.Error.AccessDenied") == "AccessDenied"
    assert dbus_api.control_error_name("org.freedesktop.DBus.Error.NoReply") == "Failed"


def test_introspection_xml_documents_every_member() -> None:
    iface = ET.fromstring(dbus_api.introspection_xml()).find("interface")
    assert iface is not None and iface.get("name") == dbus_api.INTERFACE
    methods = {m.get("name"): m for m in iface.findall("method")}
    assert set(methods) == set(dbus_api.METHODS)
    assert {s.get("name") for s in iface.findall("signal")} == {"CapsuleStateChanged", "LogLine"}
    for member in [*iface.findall("method"), *iface.findall("signal")]:
        docs = [a for a in member.findall("annotation") if a.get("name") == "org.freedesktop.DBus.DocString"]
        assert docs and docs[0].get("value"), member.get("name")
    assert [a.get("type") for a in methods["Logs"].findall("arg")] == ["s", "u", "s"]


def test_bus_policy_allows_exactly_the_read_only_methods() -> None:
    root = ET.parse(POLICY).getroot()
    by_context = {(p.get("context"), p.get("user")): p for p in root.findall("policy")}
    root_policy = by_context[(None, "root")]
    assert root_policy.find("allow[@own='org.exosphere.Core1']") is not None
    default = by_context[("default", None)]
    assert default.find("allow[@own]") is None
    allowed = {a.get("send_member") for a in default.findall("allow")
               if a.get("send_interface") == dbus_api.INTERFACE}
    assert allowed == set(dbus_api.READ_ONLY_METHODS)
    assert not allowed & set(dbus_api.MUTATING_METHODS)


# --- live ------------------------------------------------------------------------------------------


def _system_python_has_dbus() -> bool:
    if not os.access(SYSTEM_PY, os.X_OK):
        return False
    probe = subprocess.run([SYSTEM_PY, "-c", "import gi, pydbus"], capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


LIVE = shutil.which("dbus-daemon") is not None and shutil.which("gdbus") is not None and _system_python_has_dbus()
live = pytest.mark.skipif(not LIVE, reason="needs dbus-daemon, gdbus and python3-gi + python3-pydbus (qemu/setup-host)")


BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""


class Bus:
    """exo_init with `dbus` (a private system-type bus) and `dbus-bridge` capsules."""

    def __init__(self, exo: ExoInit, home: Path) -> None:
        self.exo = exo
        self.socket = home / "bus.sock"
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={self.socket}", "PYTHONPATH": str(REPO)}
        self.control = exo.runtime / "control.sock"

    def exoctl(self, *args: str, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        argv = [*(user or []), SYSTEM_PY, "-m", "exo_init.client.exoctl", *args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False, timeout=60)

    def gdbus(self, *args: str, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        argv = [*(user or []), "gdbus", *args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False, timeout=60)

    def call(self, method: str, *args: str, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.gdbus("call", "--system", "--dest", dbus_api.BUS_NAME, "--object-path", dbus_api.OBJECT_PATH,
                          "--method", f"{dbus_api.INTERFACE}.{method}", *args, user=user)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    home = Path(tempfile.mkdtemp(prefix="exo-bus-"))  # short, and reachable by `nobody`
    home.chmod(0o755)
    (home / "bus.conf").write_text(BUS_CONF.format(socket=home / "bus.sock", policy=POLICY))
    exo = ExoInit(tmp_path, {"capsules": {}}, cgroups=False)
    try:
        env = {"PYTHONPATH": str(REPO), "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={home / 'bus.sock'}"}
        exo.write_manifest({"capsules": {
            "dbus": {"argv": [shutil.which("dbus-daemon"), f"--config-file={home / 'bus.conf'}", "--nofork",
                              "--nopidfile", "--print-address=3"],
                     "readiness": {"kind": "fd", "fd": 3}, "restart": {"policy": "always"}},
            "dbus-bridge": {"argv": [SYSTEM_PY, "-m", "exo_init.system.dbus_bridge", "--socket",
                                     str(exo.runtime / "control.sock")],
                            "env": env, "requires": ["dbus"], "readiness": {"kind": "notify"},
                            "restart": {"policy": "always"}},
            "sleeper": {"argv": ["/bin/sleep", "1000"], "autostart": False},
        }})
        exo.call("reload")
        exo.wait_state("dbus-bridge", "ready", 60)
        os.chmod(home / "bus.sock", 0o777)
        yield Bus(exo, home)
    finally:
        exo.close()
        shutil.rmtree(home, ignore_errors=True)


@live
def test_exoctl_over_dbus_matches_the_socket(bus: Bus) -> None:
    over_dbus = bus.exoctl("--via", "dbus", "--json", "status")
    over_socket = bus.exoctl("--socket", str(bus.control), "--json", "status")
    assert over_dbus.returncode == over_socket.returncode == 0, (over_dbus.stderr, over_socket.stderr)
    rows_dbus, rows_socket = json.loads(over_dbus.stdout), json.loads(over_socket.stdout)
    assert [r["name"] for r in rows_dbus] == [r["name"] for r in rows_socket] == ["dbus", "dbus-bridge", "sleeper"]
    assert [set(r) for r in rows_dbus] == [set(r) for r in rows_socket]
    assert rows_dbus[1]["status_text"] == "serving org.exosphere.Core1"
    for args in (("status", "nope"), ("start", "nope")):
        d, s = bus.exoctl("--via", "dbus", *args), bus.exoctl("--socket", str(bus.control), *args)
        assert d.returncode == s.returncode == 4 and d.stderr == s.stderr == "exoctl: no capsule named 'nope'\n"


class Monitor:
    """`gdbus monitor` on the bus, read line by line with a deadline per wait (a signal that never
    comes fails the test naming what the monitor printed, instead of hanging the suite)."""

    def __init__(self, bus: Bus) -> None:
        self.proc = subprocess.Popen(["gdbus", "monitor", "--system", "--dest", dbus_api.BUS_NAME], env=bus.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.seen: list[str] = []
        self._pending: list[str] = []
        self._partial = b""

    def read_until(self, done: Callable[[str], bool], what: str, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while True:
            while self._pending:
                line = self._pending.pop(0)
                self.seen.append(line)
                if done(line):
                    return
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"gdbus monitor: {what} not seen within {timeout:g} s; it printed:\n"
                                     + "\n".join(self.seen[-40:]))
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"gdbus monitor exited ({self.proc.wait()}) before {what}; it printed:\n"
                                     + "\n".join(self.seen[-40:]))
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            self._pending += [line.decode(errors="replace") for line in lines]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@live
def test_start_stop_over_dbus_with_signals(bus: Bus) -> None:
    monitor = Monitor(bus)
    try:
        monitor.read_until(lambda line: "is owned by" in line, "the name's owner (subscribed)")
        assert bus.call("Start", "sleeper").returncode == 0
        bus.exo.wait_state("sleeper", "ready")
        stopped = bus.exoctl("--via", "dbus", "stop", "sleeper")
        assert stopped.returncode == 0 and stopped.stdout.startswith("sleeper: "), stopped
        bus.exo.wait_state("sleeper", "stopped")
        seen: list[tuple[str, str]] = []

        def state_change(line: str) -> bool:
            m = re.search(r"CapsuleStateChanged \('sleeper', '(\w+)', '(\w+)'", line)
            if m:
                seen.append((m.group(1), m.group(2)))
            return seen[-1:] == [("stopping", "stopped")]

        monitor.read_until(state_change, "sleeper's CapsuleStateChanged stopping -> stopped")
        assert seen == [("stopped", "starting"), ("starting", "ready"), ("ready", "stopping"), ("stopping", "stopped")]
    finally:
        monitor.close()


@live
def test_non_root_reads_but_cannot_change(bus: Bus) -> None:
    assert bus.exoctl("--via", "dbus", "status", "dbus", user=NOBODY).returncode == 0
    refused = bus.exoctl("--via", "dbus", "start", "sleeper", user=NOBODY)
    assert refused.returncode == 5, refused
    assert refused.stderr == "exoctl: start needs root (caller uid 65534; refused by the system bus policy)\n"
    assert "org.freedesktop.DBus.Error.AccessDenied" in bus.call("Reboot", user=NOBODY).stderr
    assert bus.exo.status("sleeper")["state"] == "stopped"


@live
def test_stopping_the_bus_through_the_api_answers_and_falls_back(bus: Bus) -> None:
    # Stopping dbus stops the bridge serving this very call: the reply must still arrive.
    stopped = bus.exoctl("--via", "dbus", "stop", "dbus")
    assert stopped.returncode == 0, stopped
    bus.exo.wait_state("dbus", "stopped")
    assert bus.exo.status("dbus-bridge")["state"] == "stopped"
    fallback = bus.exoctl("--via", "auto", "--socket", str(bus.control), "--json", "status", "dbus")
    assert fallback.returncode == 3 and json.loads(fallback.stdout)["state"] == "stopped", fallback
    forced = bus.exoctl("--via", "dbus", "status")
    assert forced.returncode == 6 and "cannot reach org.exosphere.Core1 on the system bus" in forced.stderr


@live
def test_auto_takes_the_socket_it_can_reach_and_dbus_otherwise(bus: Bus) -> None:
    """The socket, when reachable, without loading the D-Bus bindings (most of exoctl's start-up);
    D-Bus when the socket cannot be reached."""
    code = ("import sys\nfrom exo_init.client import exoctl\ntry:\n"
            "    exoctl.main(['--via', 'auto', '--socket', sys.argv[1], '--json', 'status', 'dbus'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('gi', 'exo_init.client.dbus_api') if m in sys.modules))")
    r = subprocess.run([SYSTEM_PY, "-c", code, str(bus.control)], env=bus.env, capture_output=True, text=True,
                       check=False, timeout=60)
    assert json.loads(r.stdout.rsplit("}", 1)[0] + "}")["state"] == "ready" and r.stdout.splitlines()[-1] == "[]", r
    r = subprocess.run([SYSTEM_PY, "-c", code, "/nonexistent/control.sock"], env=bus.env, capture_output=True,
                       text=True, check=False, timeout=60)
    assert json.loads(r.stdout.rsplit("}", 1)[0] + "}")["state"] == "ready", r
    assert r.stdout.splitlines()[-1] == "['exo_init.client.dbus_api', 'gi']", r
    # As the image runs it (python3 -IS: no site), the D-Bus path adds site-packages itself.
    script = f"import sys; sys.path.insert(0, {str(REPO)!r}); from exo_init.client.exoctl import main; main()"
    r = subprocess.run([SYSTEM_PY, "-IS", "-c", script, "--via", "dbus", "--json", "status", "dbus"], env=bus.env,
                       capture_output=True, text=True, check=False, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "ready", r


@live
def test_killing_the_bus_restarts_it_and_the_bridge_cleanly(bus: Bus) -> None:
    before = {n: bus.exo.status(n) for n in ("dbus", "dbus-bridge")}
    os.kill(before["dbus"]["pid"], 9)
    assert bus.exo.call("ping")["pid"] == bus.exo.proc.pid  # exo_init does not care

    def restarted() -> bool:
        now = {n: bus.exo.status(n) for n in ("dbus", "dbus-bridge")}
        return all(now[n]["state"] == "ready" and now[n]["pid"] != before[n]["pid"] for n in now)

    bus.exo.wait_for(restarted, 60, "dbus and dbus-bridge restarted")
    os.chmod(bus.socket, 0o777)
    assert bus.exoctl("--via", "dbus", "status", "dbus-bridge").returncode == 0
    log = bus.exo.call("logs", name="dbus-bridge", lines=50)["lines"]
    assert not any("Traceback" in line for line in log), "\n".join(log)
    assert any("the system bus went away" in line for line in log), "\n".join(log)
