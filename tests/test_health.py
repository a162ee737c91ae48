"""Liveness checks (a capsule's `health`): the manifest rules, and each kind run by a real exo_init,
with the real Sentry acting on the verdicts and on a network partition (the link report)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exo_init.pid1.manifest import FieldError, HealthAction, HealthKind, parse_capsule
from exo_init.system import dashboard as dash
from tests.exo import REPO, ExoInit, host_cgroup_parent, manifest_json
from tests.pixels import SYSTEM_PY

PY = sys.executable


def test_health_section_is_checked() -> None:
    c = parse_capsule("web", {"argv": ["/bin/sleep", "1"], "health": {
        "kind": "tcp", "port": 8080, "interval": 2, "threshold": 4, "action": "restart", "network": True}})
    assert c.health is not None
    assert (c.health.kind, c.health.port, c.health.interval, c.health.threshold, c.health.action, c.health.network) \
        == (HealthKind.TCP, 8080, 2.0, 4, HealthAction.RESTART, True)
    assert parse_capsule("web", {"argv": ["/bin/sleep", "1"]}).health is None
    for health, field, message in (
        ({"kind": "tcp"}, "health.port", "needs a port"),
        ({"kind": "file", "path": "rel"}, "health.path", "absolute"),
        ({"kind": "exec"}, "health.argv", "needs argv"),
        ({"kind": "file", "path": "/x", "argv": ["/bin/true"]}, "health.argv", "only for kind exec"),
        ({"kind": "exec", "argv": ["true"]}, "health.argv[0]", "absolute"),
        ({"kind": "http"}, "health.kind", "unknown kind"),
        ({"kind": "file", "path": "/x", "interval": 0}, "health.interval", "between"),
        ({"kind": "file", "path": "/x", "action": "explode"}, "health.action", "explode"),
        ({"kind": "file", "path": "/x", "bogus": 1}, "health.bogus", ""),
    ):
        with pytest.raises(FieldError) as err:
            parse_capsule("web", {"argv": ["/bin/sleep", "1"], "health": health})
        assert err.value.field == field and message in err.value.message, (health, str(err.value))
    with pytest.raises(FieldError, match="oneshot"):
        parse_capsule("job", {"argv": ["/bin/true"], "type": "oneshot", "health": {"kind": "file", "path": "/x"}})


def health_events(e: ExoInit, name: str) -> list[dict[str, Any]]:
    return [ev for ev in e.events if ev.get("capsule") == name and "health" in ev]


def test_file_and_exec_checks_report_failing_and_ok(tmp_path: Path) -> None:
    flag = tmp_path / "alive"
    flag.write_text("")
    exec_flag = tmp_path / "exec-alive"
    exec_flag.write_text("")
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "filed": {"argv": ["/bin/sleep", "100"],
                  "health": {"kind": "file", "path": str(flag), "interval": 0.2, "threshold": 2}},
        "execd": {"argv": ["/bin/sleep", "100"],
                  "health": {"kind": "exec", "argv": ["/bin/sh", "-c", f"test -e {exec_flag}"],
                             "interval": 0.2, "threshold": 2}},
        # the check runs as the capsule's user: uid 65534 passes, anything else fails
        "nobody": {"argv": ["/bin/sleep", "100"], "user": "nobody",
                   "health": {"kind": "exec", "argv": ["/bin/sh", "-c", 'test "$(id -u)" = 65534'],
                              "interval": 0.2, "threshold": 1}},
        "hung": {"argv": ["/bin/sleep", "100"],
                 "health": {"kind": "exec", "argv": ["/bin/sleep", "30"], "interval": 0.2, "timeout": 0.3,
                            "threshold": 1}},
    }}, cgroups=False)
    try:
        for name in ("filed", "execd", "nobody", "hung"):
            e.wait_state(name, "ready")
        e.wait_for(lambda: e.status("filed")["health"]["state"] == "ok", 10, "filed ok")
        e.wait_for(lambda: e.status("execd")["health"]["state"] == "ok", 10, "execd ok")
        e.wait_for(lambda: e.status("nobody")["health"]["checks"] >= 3, 10, "three checks of nobody")
        assert e.status("nobody")["health"]["state"] == "ok", e.status("nobody")
        e.wait_for(lambda: health_events(e, "hung"), 10, "hung failing")
        hung = health_events(e, "hung")[0]
        assert hung["health"] == "failing" and "still running after 0.3 s" in hung["detail"], hung
        assert health_events(e, "filed") == [] and health_events(e, "execd") == []

        flag.unlink()
        exec_flag.unlink()
        e.wait_for(lambda: health_events(e, "filed") and health_events(e, "execd"), 10, "failing events")
        filed, execd = health_events(e, "filed")[0], health_events(e, "execd")[0]
        assert filed["health"] == "failing" and filed["failures"] == 2 and "missing" in filed["detail"], filed
        assert execd["health"] == "failing" and "exited 1" in execd["detail"] and execd["action"] == "log", execd
        st = e.status("filed")
        assert st["state"] == "ready" and st["restarts"] == 0, "PID 1 reports; it does not act"
        flag.write_text("")
        e.wait_for(lambda: len(health_events(e, "filed")) == 2, 10, "filed ok again")
        assert health_events(e, "filed")[1]["health"] == "ok"
        assert "[exo_init] health failing" in "\n".join(e.call("logs", name="filed")["lines"])
        e.call("stop", name="hung")
        e.wait_state("hung", "stopped")
        assert e.status("hung")["health"] is None
    finally:
        e.close()


def test_notify_watchdog_check(tmp_path: Path) -> None:
    beat = ("import os, socket, time\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\n"
            "for _ in range(15):\n"
            "    s.sendto(b'WATCHDOG=1', os.environ['NOTIFY_SOCKET']); time.sleep(0.1)\n"
            "time.sleep(100)\n")
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "beats": {"argv": [PY, "-c", beat], "readiness": {"kind": "notify"},
                  "health": {"kind": "notify-watchdog", "interval": 0.4, "threshold": 2}}}}, cgroups=False)
    try:
        e.wait_state("beats", "ready")
        e.wait_for(lambda: e.status("beats")["health"]["checks"] >= 2, 10, "two checks")
        assert health_events(e, "beats") == [] and e.status("beats")["health"]["state"] == "ok"
        e.wait_for(lambda: health_events(e, "beats"), 10, "silent capsule failing")
        assert "no WATCHDOG=1" in health_events(e, "beats")[0]["detail"]
    finally:
        e.close()


def sentry_capsule(e: ExoInit, link: Path) -> dict[str, Any]:
    return {"argv": [PY, "-m", "exo_init.system.sentry", "--socket", str(e.runtime / "control.sock"),
                     "--interval", "0.2", "--link-state", str(link)],
            "env": {"PYTHONPATH": str(REPO), "EXO_SENTRY_POLICY": json.dumps({"thresholds": {"cooldown": 0}})},
            "readiness": {"kind": "notify"}, "restart": {"policy": "always"}}


def report_link(link: Path, online: bool) -> None:
    """Write the network capsule's link report as exo_init/system/network.py does (atomically)."""
    tmp = link.with_suffix(".tmp")
    tmp.write_text(json.dumps({"online": online, "interface": "eth0", "reason": "test link"}))
    tmp.replace(link)


def file_checked(path: Path, action: str, network: bool = False) -> dict[str, Any]:
    """A sleeper whose check is that `path` exists (every 0.2 s, failing after 2)."""
    return {"argv": ["/bin/sleep", "100"],
            "health": {"kind": "file", "path": str(path), "interval": 0.2, "threshold": 2, "action": action,
                       "network": network}}


def test_sentry_restarts_a_failing_capsule_by_its_manifest(tmp_path: Path) -> None:
    flag = tmp_path / "alive"
    e = ExoInit(tmp_path / "exo", {"capsules": {"base": {"argv": ["/bin/sleep", "100"]}}}, cgroups=False)
    try:
        # The capsule makes its own flag at start: a restart heals it.
        web = {"argv": ["/bin/sh", "-c", f"touch {flag}; exec sleep 100"],
               "health": {"kind": "file", "path": str(flag), "interval": 0.2, "threshold": 2, "action": "restart"}}
        manifest = tmp_path / "with-sentry.json"
        manifest.write_text(manifest_json({"sentry": sentry_capsule(e, tmp_path / "link.json"), "web": web}))
        e.call("switch", target=str(manifest), **{"try": False})
        e.wait_state("sentry", "ready")
        e.wait_state("web", "ready")
        e.wait_for(lambda: e.status("web")["health"] and e.status("web")["health"]["state"] == "ok", 30, "web ok")
        flag.unlink()
        e.wait_for(lambda: any(
            r.get("kind") == "action" and r.get("capsule") == "web" for r in e.call("events")), 10, "sentry acts")
        records = [r for r in e.call("events") if r.get("capsule") == "web"]
        anomaly = next(r for r in records if r["kind"] == "anomaly")
        assert anomaly["anomaly"] == "unhealthy" and anomaly["action"] == "restart" and anomaly["failures"] == 2
        assert next(r for r in records if r["kind"] == "action")["ok"] is True
        e.wait_for(lambda: e.status("web")["state"] == "ready" and e.status("web")["health"] is not None and
                   e.status("web")["health"]["state"] == "ok", 10, "web healthy after its restart")
        assert flag.exists()
    finally:
        e.close()


def test_partition_marks_degraded_instead_of_restarting(tmp_path: Path) -> None:
    """A partition: the network capsule and the capsules whose check needs the network are marked
    degraded (shown by exoctl and the dashboard's data), not restarted; the marks go when it ends,
    also when the Sentry itself died during it."""
    link = tmp_path / "link.json"
    up = tmp_path / "upstream"
    up.write_text("")

    report_link(link, True)
    e = ExoInit(tmp_path / "exo", {"capsules": {"base": {"argv": ["/bin/sleep", "100"]}}}, cgroups=False)
    try:
        web = file_checked(up, "restart", network=True)
        local = file_checked(up, "log")
        manifest = tmp_path / "with-sentry.json"
        network = {"argv": ["/bin/sleep", "100"]}  # (stands for the capsule that writes the link report)
        manifest.write_text(manifest_json({"sentry": sentry_capsule(e, link), "web": web, "local": local,
                                           "network": network}))
        e.call("switch", target=str(manifest), **{"try": False})
        for name in ("sentry", "web", "local", "network"):
            e.wait_state(name, "ready")
        e.wait_for(lambda: (e.status("web")["health"] or {}).get("state") == "ok", 30, "web ok")
        # The partition: the link report goes offline, and the upstream the check needs is gone.
        report_link(link, False)
        up.unlink()
        e.wait_for(lambda: e.status("web")["degraded"] == "network partition", 30, "web degraded")
        time.sleep(1.0)  # (the Sentry samples every 0.2 s: several chances to restart web, which it must not)
        assert e.status("web")["restarts"] == 0 and e.status("web")["state"] == "ready"
        assert e.status("local")["degraded"] == "", "only capsules whose check needs the network"
        shown = subprocess.run([PY, "-m", "exo_init.client.exoctl", "--socket", str(e.runtime / "control.sock"),
                                "status"], capture_output=True, text=True, timeout=30, cwd=REPO, check=True).stdout
        assert "degraded: network partition" in next(line for line in shown.splitlines() if line.startswith("web"))
        # The partition itself: the network capsule is degraded with the link's reason, and the
        # dashboard's banner names it and the capsules it degraded, whichever rows are on screen.
        e.wait_for(lambda: e.status("network")["degraded"] == "network partition: test link", 30, "network degraded")
        snap = dash.collect(e.runtime / "control.sock", names=["local"])
        assert snap.degraded == (("network", "network partition: test link"), ("web", "network partition")), snap
        assert dash.banner_lines(snap) == ("degraded: network, web", "network partition: test link")
        records = e.call("events")
        partition = [r for r in records if r.get("anomaly") == "network-partition"]
        assert partition and partition[0]["kind"] == "anomaly" and partition[0]["interface"] == "eth0", records
        assert not any(r.get("kind") == "action" and r.get("capsule") == "web" for r in records), records
        # The link returns, the check passes: recovered with no action taken.
        report_link(link, True)
        up.write_text("")
        e.wait_for(lambda: e.status("web")["degraded"] == "", 30, "web no longer degraded")
        e.wait_for(lambda: any(r.get("anomaly") == "network-partition" and r["kind"] == "recovered"
                               for r in e.call("events")), 30, "the partition's end recorded")
        assert e.status("web")["restarts"] == 0
        e.wait_for(lambda: e.status("network")["degraded"] == "", 30, "network no longer degraded")
        snap = dash.collect(e.runtime / "control.sock", names=["local"])
        assert snap.degraded == () and dash.banner_lines(snap) == (), snap
        # Another partition, and the Sentry dies in it (its crash costs only its own restart): the
        # new one adopts the marks PID 1 still holds and clears them when the partition ends (no
        # health event would tell it anything new of them).
        report_link(link, False)
        up.unlink()
        e.wait_for(lambda: e.status("web")["degraded"] != "" and e.status("network")["degraded"] != "", 30,
                   "degraded again")
        first = e.status("sentry")["pid"]
        os.kill(first, signal.SIGKILL)

        def restarted() -> bool:
            st = e.status("sentry")  # (one look: state and pid of the same run)
            return bool(st["state"] == "ready" and st["pid"] != first)

        e.wait_for(restarted, 30, "the Sentry restarted")
        report_link(link, True)
        up.write_text("")
        e.wait_for(lambda: e.status("web")["degraded"] == "" and e.status("network")["degraded"] == "", 30,
                   "the marks cleared by the new Sentry")
        assert e.status("web")["restarts"] == 0
    finally:
        e.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and mounts need root")
def test_exec_check_of_an_isolated_capsule_runs_in_its_world(tmp_path: Path) -> None:
    """The check runs in the capsule's PID namespace (a handful of processes in its /proc, not the
    host's hundreds) and root (no /run/exosphere-health-test, which the host has), as its dynamic
    uid: it passes only there; the same command run on the host fails."""
    marker = Path("/run/exosphere-health-test")
    marker.write_text("")
    inside = f'test ! -e {marker} && test "$(id -u)" -ne 0 && test "$(ls /proc | grep -c "^[0-9]")" -lt 10'
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "iso": {"argv": ["/bin/sleep", "1000"], "capabilities": {},
                "health": {"kind": "exec", "argv": ["/bin/sh", "-c", inside], "interval": 0.3, "threshold": 1}},
        "iso-bad": {"argv": ["/bin/sleep", "1000"], "capabilities": {},
                    "health": {"kind": "exec", "argv": ["/bin/sh", "-c", "test $(id -u) -eq 0"], "interval": 0.3,
                               "threshold": 1}},
    }})
    try:
        e.wait_state("iso", "ready")
        e.wait_for(lambda: (e.status("iso")["health"] or {}).get("checks", 0) >= 3, 20, "three checks of iso")
        assert e.status("iso")["health"]["state"] == "ok", e.status("iso")
        assert health_events(e, "iso") == []
        e.wait_for(lambda: health_events(e, "iso-bad"), 20, "iso-bad failing (not root inside)")
        assert "exited 1" in health_events(e, "iso-bad")[0]["detail"]
    finally:
        e.close()
        marker.unlink()


BANNER_PROBE = """
import json, sys
import cairo
from exo_init.system import dashboard as dash
out = []
for degraded in ((), (("network", "network partition: link down"), ("uplink", "network partition"))):
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, 1024, 768)
    dash.render(cairo.Context(surface), dash.Snapshot("test", 1, (), (), 0.0, degraded=degraded), dash.History(),
                1024, 768, 1 << 30)
    surface.flush()
    data, stride = surface.get_data(), surface.get_stride()
    x, y = dash.BANNER[0] + 2, dash.BANNER[1] + 2
    b, g, r = data[y * stride + 4 * x: y * stride + 4 * x + 3]
    out.append([r, g, b])
print(json.dumps(out))
"""


def test_the_dashboard_banner_shows_a_partition() -> None:
    """Drawn by the system's Python (python3-cairo, as the dashboard capsule runs it): the header
    has the warning banner while a capsule is degraded, and only then."""
    if subprocess.run([SYSTEM_PY, "-c", "import cairo"], capture_output=True, check=False).returncode != 0:
        pytest.fail(f"{SYSTEM_PY} with python3-cairo is needed (qemu/setup-host installs it)")
    proc = subprocess.run([SYSTEM_PY, "-c", BANNER_PROBE], capture_output=True, text=True, timeout=60, check=True,
                          env={"PYTHONPATH": str(REPO)})
    quiet, partitioned = (tuple(c) for c in json.loads(proc.stdout))
    assert quiet == dash.HEADER and partitioned == dash.WARNING, (quiet, partitioned)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LISTEN = ("import os, socket, time\n"
          "s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen()\n"
          "time.sleep(1000)\n")


def test_tcp_check_reports_failing_and_ok(tmp_path: Path) -> None:
    """An unconfined capsule's tcp check connects in the host's network: a listener of the test's
    own makes it pass; closed (refused), the check fails after `threshold` tries; back, it passes."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "served": {"argv": ["/bin/sleep", "100"],
                   "health": {"kind": "tcp", "port": port, "interval": 0.2, "threshold": 2}}}}, cgroups=False)
    try:
        e.wait_state("served", "ready")
        e.wait_for(lambda: (e.status("served")["health"] or {}).get("state") == "ok", 10, "served ok")
        listener.close()
        e.wait_for(lambda: health_events(e, "served"), 10, "served failing")
        failing = health_events(e, "served")[0]
        assert failing["health"] == "failing" and failing["failures"] == 2, failing
        assert failing["detail"] == f"127.0.0.1:{port} refused", failing
        listener = socket.create_server(("127.0.0.1", port))
        e.wait_for(lambda: len(health_events(e, "served")) == 2, 10, "served ok again")
        assert health_events(e, "served")[1]["health"] == "ok"
    finally:
        listener.close()
        e.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and mounts need root")
def test_tcp_check_of_an_isolated_capsule_connects_in_its_network(tmp_path: Path) -> None:
    """An isolated capsule listens on 127.0.0.1 in its own network namespace, where nothing of the
    host's reaches: its check passes only because it connects there (the host has no listener on
    that port: the same check from the host is refused)."""
    port = free_port()
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "inside": {"argv": [SYSTEM_PY, "-c", LISTEN], "env": {"PORT": str(port)}, "capabilities": {},
                   "health": {"kind": "tcp", "port": port, "interval": 0.3, "threshold": 1}}}})
    try:
        e.wait_state("inside", "ready")
        e.wait_for(lambda: (e.status("inside")["health"] or {}).get("checks", 0) >= 8, 20, "eight checks of inside")
        assert e.status("inside")["health"]["state"] == "ok" and health_events(e, "inside") == [], e.status("inside")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        e.close()


@pytest.mark.skipif(host_cgroup_parent() is None, reason="this host has no writable cgroup2 hierarchy (freeze)")
def test_sentry_applies_each_health_action(tmp_path: Path) -> None:
    """The manifest's `health.action`, carried out by the real Sentry on a real exo_init: log
    (recorded, nothing done), freeze (the cgroup frozen), kill (stopped); restart and rollback have
    tests of their own."""
    flag = tmp_path / "alive"
    flag.write_text("")
    e = ExoInit(tmp_path / "exo", {"capsules": {"base": {"argv": ["/bin/sleep", "100"]}}})
    try:
        manifest = tmp_path / "with-sentry.json"
        manifest.write_text(manifest_json({"sentry": sentry_capsule(e, tmp_path / "link.json"),
                                           "logged": file_checked(flag, "log"),
                                           "frozen": file_checked(flag, "freeze"),
                                           "killed": file_checked(flag, "kill")}))
        e.call("switch", target=str(manifest), **{"try": False})
        for name in ("sentry", "logged", "frozen", "killed"):
            e.wait_state(name, "ready")
        e.wait_for(lambda: all((e.status(n)["health"] or {}).get("state") == "ok" for n in ("logged", "frozen",
                                                                                              "killed")), 30, "ok")
        flag.unlink()

        def records(name: str) -> list[dict[str, Any]]:
            return [r for r in e.call("events") if r.get("capsule") == name and r.get("source") == "sentry"]

        e.wait_for(lambda: all(records(n) for n in ("logged", "frozen", "killed")), 20, "the Sentry's records")
        e.wait_for(lambda: e.status("frozen")["cgroup"]["frozen"], 10, "frozen's cgroup frozen")
        e.wait_for(lambda: e.status("killed")["state"] == "stopped" and e.status("killed")["wanted"] is False, 20,
                   "killed stopped")
        for name, action in (("logged", "log"), ("frozen", "freeze"), ("killed", "kill")):
            anomaly = next(r for r in records(name) if r["kind"] == "anomaly")
            assert anomaly["anomaly"] == "unhealthy" and anomaly["action"] == action, anomaly
        assert [r["kind"] for r in records("logged")] == ["anomaly"], "log: recorded, nothing done"
        assert e.status("logged")["state"] == "ready" and not e.status("logged")["cgroup"]["frozen"]
        assert next(r for r in records("frozen") if r["kind"] == "action")["ok"] is True
    finally:
        e.close()


def test_sentry_rolls_back_a_generation_whose_capsule_fails_its_check(tmp_path: Path) -> None:
    """`health.action` rollback: generation 3 adds a capsule whose check never passes; the Sentry
    goes back to generation 2 (where that capsule does not exist)."""
    e = ExoInit(tmp_path / "exo", {"capsules": {"base": {"argv": ["/bin/sleep", "100"]}}}, cgroups=False)
    try:
        sentry = sentry_capsule(e, tmp_path / "link.json")
        two = tmp_path / "two.json"
        two.write_text(manifest_json({"base": {"argv": ["/bin/sleep", "100"]}, "sentry": sentry}))
        e.call("switch", target=str(two), **{"try": False})
        e.wait_state("sentry", "ready")
        three = tmp_path / "three.json"
        three.write_text(manifest_json({
            "base": {"argv": ["/bin/sleep", "100"]}, "sentry": sentry,
            "broken": {"argv": ["/bin/sleep", "100"],
                       "health": {"kind": "file", "path": str(tmp_path / "never"), "interval": 0.2, "threshold": 2,
                                  "action": "rollback"}}}))
        assert e.call("switch", target=str(three), **{"try": False})["generation"] == 3
        e.wait_for(lambda: e.call("generations")["current"] == 2, 30, "the Sentry's rollback to generation 2")
        e.wait_for(lambda: "broken" not in [s["name"] for s in e.call("status")], 10, "broken removed")
        e.wait_for(lambda: any(r["kind"] == "action" for r in e.call("events")), 10, "the Sentry's action record")
        action = [r for r in e.call("events") if r["kind"] == "action"][-1]
        assert action["action"] == "rollback" and action["capsule"] == "broken" and action["anomaly"] == "unhealthy"
        assert action["ok"] is True, action
    finally:
        e.close()

