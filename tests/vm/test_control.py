"""The control plane in a booted VM: the org.exosphere.Core1 D-Bus API (dbus + dbus-bridge
capsules), exoctl over D-Bus and its fallback to the private socket, access control, log following,
and the network capsule (DHCP from QEMU's user network, a capsule's port reached from the host)."""

from __future__ import annotations

import json
import re
import socket
import time

from tests.machine import Machine
from tests.vm.conftest import MachineFactory

BUS = "--system --dest org.exosphere.Core1 --object-path /org/exosphere/Core1"
NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"


def gdbus_call(method: str, *args: str) -> str:
    return " ".join(["gdbus call", BUS, f"--method org.exosphere.Core1.{method}", *args])


def gdbus_json(machine: Machine, method: str, *args: str) -> object:
    """A Core1 method's JSON result (gdbus prints the reply as a GVariant tuple: ('...',))."""
    out = machine.succeed(gdbus_call(method, *args)).strip()
    m = re.fullmatch(r"\('(.*)',\)", out, re.DOTALL)
    assert m, out
    return json.loads(m.group(1).encode().decode("unicode_escape"))


def wait_ready(machine: Machine, *names: str) -> None:
    for name in names:
        machine.wait_for_capsule(name, "ready", 90)


def test_control_plane_capsules_are_ready(machine: Machine) -> None:
    wait_ready(machine, "dbus", "dbus-bridge", "network")
    assert machine.succeed("test -S /run/dbus/system_bus_socket && echo ok").strip() == "ok"
    assert "org.exosphere.Core1" in machine.succeed(
        "gdbus call --system --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus "
        "--method org.freedesktop.DBus.ListNames")


def test_exoctl_status_lists_every_capsule_with_live_figures(machine: Machine) -> None:
    wait_ready(machine, "dbus-bridge", "network")
    over_dbus = json.loads(machine.succeed("exoctl --via dbus --json status"))
    over_socket = json.loads(machine.succeed("exoctl --via socket --json status"))
    by_name = {r["name"]: r for r in over_dbus}
    assert {"kmod", "dbus", "dbus-bridge", "network", "agent", "console", "powerbutton", "echo"} <= set(by_name)
    assert [r["name"] for r in over_dbus] == [r["name"] for r in over_socket]
    for row, other in zip(over_dbus, over_socket, strict=True):
        assert set(row) == set(other), row["name"]  # the same documents either way
    for name in ("dbus", "dbus-bridge", "network", "agent"):
        row = by_name[name]
        assert row["state"] == "ready", row
        assert row["pid"] and row["uptime"] is not None and row["cgroup"]["memory_current"] > 0, row
    table = machine.succeed("exoctl status")
    assert re.search(r"^dbus-bridge +ready .*serving org\.exosphere\.Core1$", table, re.MULTILINE), table
    assert re.search(r"^network +ready .*eth0 10\.0\.2\.15/24 via 10\.0\.2\.2$", table, re.MULTILINE), table


def test_guest_has_its_dhcp_address_route_and_resolver(machine: Machine) -> None:
    wait_ready(machine, "network")
    assert "inet 10.0.2.15/24" in machine.succeed("ip -4 addr show dev eth0")
    assert re.search(r"^default via 10\.0\.2\.2 dev eth0", machine.succeed("ip -4 route"), re.MULTILINE)
    assert ",UP," in machine.succeed("ip link show dev lo")
    assert "inet 127.0.0.1/8" in machine.succeed("ip -4 addr show dev lo")
    resolv = machine.succeed("cat /etc/resolv.conf")
    assert re.search(r"^nameserver 10\.0\.2\.3$", resolv, re.MULTILINE), resolv
    print("\nnetwork capsule log:\n" + machine.succeed("exoctl logs network -n 20"))
    status = machine.capsule_status("network")
    assert status["status_text"] == "eth0 10.0.2.15/24 via 10.0.2.2", status
    assert "udhcpc" in machine.succeed(f"cat /proc/$(pgrep -P {status['pid']} -o)/cmdline | tr '\\0' ' '")


def test_introspection_shows_the_api(machine: Machine) -> None:
    wait_ready(machine, "dbus-bridge")
    xml = machine.succeed(f"gdbus introspect {BUS} --xml")
    for member in ("ListCapsules", "GetCapsule", "Start", "Stop", "Restart", "Freeze", "Thaw", "Logs",
                   "FollowLogs", "Reload", "PowerOff", "Reboot", "Info", "CapsuleStateChanged", "LogLine"):
        assert f'name="{member}"' in xml, member
    assert 'name="org.freedesktop.DBus.DocString"' in xml
    # Everyone may introspect.
    assert 'name="ListCapsules"' in machine.succeed(f"{NOBODY} gdbus introspect {BUS} --xml")


def test_stop_start_restart_over_dbus_with_state_signals(machine: Machine) -> None:
    wait_ready(machine, "dbus-bridge")
    machine.succeed("rm -f /tmp/monitor.log; (timeout 120 gdbus monitor --system --dest org.exosphere.Core1 "
                    "> /tmp/monitor.log 2>&1 < /dev/null &)")
    machine.wait_until_succeeds("grep -q 'is owned by' /tmp/monitor.log", 30)
    started = gdbus_json(machine, "Start", "neighbour")
    assert isinstance(started, dict) and started["name"] == "neighbour"
    first = machine.wait_for_capsule("neighbour", "ready", 30)
    restarted = gdbus_json(machine, "Restart", "neighbour")
    assert isinstance(restarted, dict)
    second = machine.wait_for_capsule("neighbour", "ready", 30)
    assert second["pid"] != first["pid"]
    gdbus_json(machine, "Stop", "neighbour")
    machine.wait_for_capsule("neighbour", "stopped", 30)
    # exoctl over D-Bus does the same round trip.
    assert machine.succeed("exoctl --via dbus start neighbour").startswith("neighbour: ")
    machine.wait_for_capsule("neighbour", "ready", 30)
    machine.succeed("exoctl --via dbus stop neighbour")
    machine.wait_for_capsule("neighbour", "stopped", 30)

    def transitions() -> tuple[bool, str]:
        log = machine.succeed("cat /tmp/monitor.log")
        seen = re.findall(r"CapsuleStateChanged \('neighbour', '(\w+)', '(\w+)'", log)
        want = [("stopped", "starting"), ("starting", "ready"), ("ready", "stopping"), ("stopping", "stopped")]
        return all(t in seen for t in want) and seen.count(("starting", "ready")) >= 3, log[-3000:]

    machine.wait_until("every transition signalled", transitions, 30)


def test_errors_are_named_and_exit_codes_match_the_socket(machine: Machine) -> None:
    wait_ready(machine, "dbus-bridge")
    out = machine.fail(gdbus_call("GetCapsule", "no-such-capsule"))
    assert "org.exosphere.Error.NoSuchCapsule" in out and "no capsule named 'no-such-capsule'" in out, out
    for via in ("dbus", "socket"):
        r = machine.execute(f"exoctl --via {via} status no-such-capsule")
        assert r.rc == 4 and r.out.strip() == "exoctl: no capsule named 'no-such-capsule'", (via, r)
        r = machine.execute(f"exoctl --via {via} start no-such-capsule")
        assert r.rc == 4, (via, r)
    info = {via: json.loads(machine.succeed(f"exoctl --via {via} --json info")) for via in ("dbus", "socket")}
    assert set(info["dbus"]) == set(info["socket"]) and info["dbus"]["pid"] == 1


def test_non_root_may_read_but_not_change(machine: Machine) -> None:
    wait_ready(machine, "dbus-bridge")
    rows = json.loads(machine.succeed(f"{NOBODY} exoctl --via dbus --json status"))
    assert any(r["name"] == "agent" for r in rows)
    assert "agent: serving" in machine.succeed(f"{NOBODY} exoctl --via dbus logs agent -n 3")
    for via in ("dbus", "socket"):
        r = machine.execute(f"{NOBODY} exoctl --via {via} stop agent")
        assert r.rc == 5 and "needs root" in r.out and "65534" in r.out, (via, r)
    out = machine.fail(f"{NOBODY} {gdbus_call('Stop', 'agent')}")
    assert "AccessDenied" in out, out
    assert machine.capsule_status("agent")["state"] == "ready"


def test_bridge_checks_the_caller_even_if_the_bus_policy_lets_it_through(machine: Machine) -> None:
    """Defence in depth: with a (mis)configured policy that lets anyone call Stop, the bridge itself
    still refuses a non-root caller with org.exosphere.Error.AccessDenied."""
    wait_ready(machine, "dbus-bridge")
    open_policy = ('<busconfig><policy context="default"><allow send_destination="org.exosphere.Core1"/>'
                   '</policy></busconfig>')
    reload = ("gdbus call --system --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus "
              "--method org.freedesktop.DBus.ReloadConfig")
    machine.succeed(f"mkdir -p /etc/dbus-1/system.d && echo '{open_policy}' > /etc/dbus-1/system.d/zz-test.conf"
                    f" && {reload}")
    try:
        out = machine.fail(f"{NOBODY} {gdbus_call('Stop', 'agent')}")
        assert "org.exosphere.Error.AccessDenied" in out and "stop needs root (caller uid 65534)" in out, out
    finally:
        machine.succeed(f"rm -f /etc/dbus-1/system.d/zz-test.conf && {reload}")
    assert machine.capsule_status("agent")["state"] == "ready"


def test_logs_follow_streams_new_lines(machine: Machine) -> None:
    machine.succeed("exoctl start neighbour")
    machine.wait_for_capsule("neighbour", "ready", 30)
    try:
        # In the background, to a file: a fixed window would also have to cover exoctl's start-up,
        # which a loaded TCG guest can stretch past any window.
        pid = machine.succeed("exoctl logs neighbour -f -n 0 >/tmp/follow.out 2>&1 </dev/null & echo $!").strip()
        machine.wait_until_succeeds("test $(grep -cx '[^ ]* heartbeat' /tmp/follow.out) -ge 2", 60)
        machine.succeed(f"kill -0 {pid}")  # still following after the lines came
        machine.succeed(f"kill {pid}")
        out = machine.succeed("cat /tmp/follow.out")
        assert len(re.findall(r"^\S+ heartbeat$", out, re.MULTILINE)) >= 2, out
        # The D-Bus way: FollowLogs, then LogLine signals for that capsule (to this caller only while
        # it stays on the bus).
        script = r"""
import sys
from gi.repository import Gio, GLib
bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
lines = []
def on_line(_c, _s, _p, _i, _n, params):
    lines.append(params.unpack())
bus.signal_subscribe("org.exosphere.Core1", "org.exosphere.Core1", "LogLine", "/org/exosphere/Core1",
                     None, Gio.DBusSignalFlags.NONE, on_line)
bus.call_sync("org.exosphere.Core1", "/org/exosphere/Core1", "org.exosphere.Core1", "FollowLogs",
              GLib.Variant("(s)", ("neighbour",)), None, Gio.DBusCallFlags.NONE, 10000, None)
loop = GLib.MainLoop()
GLib.timeout_add(200, lambda: len(lines) < 2 or loop.quit())
GLib.timeout_add_seconds(15, loop.quit)
loop.run()
print(lines)
sys.exit(0 if len(lines) >= 2 else 1)
"""
        out = machine.succeed(f"{NOBODY} python3 - <<'EOF'\n{script}\nEOF", timeout=40)
        assert re.search(r"\('neighbour', '\S+ heartbeat'\)", out), out
    finally:
        machine.succeed("exoctl stop neighbour")


def test_exoctl_falls_back_to_the_private_socket_without_the_bus(machine: Machine) -> None:
    wait_ready(machine, "dbus", "dbus-bridge")
    machine.succeed("exoctl stop dbus")  # stops dbus-bridge first (it requires dbus)
    machine.wait_for_capsule("dbus-bridge", "stopped", 30)
    try:
        table = machine.succeed("exoctl status")
        assert re.search(r"^dbus +stopped", table, re.MULTILINE), table
        r = machine.execute("exoctl --via dbus status")
        assert r.rc == 6 and r.out.startswith("exoctl: cannot reach org.exosphere.Core1 on the system bus"), r
    finally:
        machine.succeed("exoctl start dbus-bridge")  # pulls dbus in again
        wait_ready(machine, "dbus", "dbus-bridge")
    assert re.search(r"^dbus-bridge +ready ", machine.succeed("exoctl --via dbus status dbus-bridge"), re.MULTILINE)


def test_killing_the_bus_does_not_hurt_pid1(machine: Machine) -> None:
    wait_ready(machine, "dbus", "dbus-bridge")
    before = {n: machine.capsule_status(n) for n in ("dbus", "dbus-bridge")}
    machine.succeed(f"kill -9 {before['dbus']['pid']}")
    info = json.loads(machine.succeed("exoctl --via socket --json info"))
    assert info["pid"] == 1 and info["shutting_down"] is None
    assert machine.succeed("exoctl status")  # whichever way it answers, it answers

    def both_back() -> tuple[bool, str]:
        now = {n: machine.capsule_status(n) for n in ("dbus", "dbus-bridge")}
        done = all(now[n]["state"] == "ready" and now[n]["pid"] != before[n]["pid"] for n in now)
        return done, json.dumps(now, indent=1)[:2000]

    machine.wait_until("dbus and dbus-bridge restarted", both_back, 90)
    info = json.loads(machine.succeed("exoctl --via dbus --json info"))
    assert info["pid"] == 1 and info["shutting_down"] is None
    assert "Traceback" not in machine.succeed("exoctl logs dbus-bridge -n 50")


def test_exoctl_status_is_the_same_over_each_transport(machine: Machine) -> None:
    """`exoctl status` over the private socket, over D-Bus, and auto (socket first): the same
    capsules, the same documents' fields, the same table; --via dbus really takes the bus (with
    no bus it fails, exit 6), auto does without it. (Its latency: python3 -m tests.bench.exoctl.)"""
    wait_ready(machine, "dbus-bridge")
    docs = {via: json.loads(machine.succeed(f"exoctl --via {via} --json status")) for via in ("socket", "dbus", "auto")}
    names = {via: [r["name"] for r in rows] for via, rows in docs.items()}
    assert names["socket"] == names["dbus"] == names["auto"] and "dbus-bridge" in names["socket"], names
    assert [set(r) for r in docs["dbus"]] == [set(r) for r in docs["socket"]] == [set(r) for r in docs["auto"]]
    for via in ("socket", "dbus", "auto"):
        table = machine.succeed(f"exoctl --via {via} status").splitlines()
        assert table[0].split()[:4] == ["CAPSULE", "STATE", "UPTIME", "RESTARTS"], (via, table[0])
        assert [line.split()[0] for line in table[1:]] == names["socket"], (via, table)
    no_bus = "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent"
    r = machine.execute(f"{no_bus} exoctl --via dbus status 2>&1")
    assert r.rc == 6 and "cannot reach org.exosphere.Core1 on the system bus" in r.out, r
    assert machine.execute(f"{no_bus} exoctl --via auto status").rc == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_capsule_port_reachable_from_the_host(make_machine: MachineFactory) -> None:
    port = free_port()
    m = make_machine("fwd", hostfwd=((port, 7777),))
    m.wait_for_capsule("network", "ready", 90)
    m.succeed("exoctl start echo")
    m.wait_for_capsule("echo", "ready", 60)
    deadline = time.monotonic() + 30
    last = ""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"hello from the host\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            if reply == b"echo: hello from the host\n":
                break
            last = repr(reply)
        except OSError as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise AssertionError(f"no echo through 127.0.0.1:{port} -> guest:7777 within 30 s; last: {last}")
        time.sleep(0.5)
