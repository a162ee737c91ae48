"""Sentry drills in the booted image: a network partition (QMP set_link), memory pressure in
several capsules, pids exhaustion, a fork storm in a host capsule, a full state disk, and a
capsule that ignores SIGTERM at poweroff. Each test adds a row to one table, printed at the end:
the fault, what the Sentry saw and did, the time to detect and to recover, and what was lost.

Times are the guest's wall clock: an event record's own time against `date` in the guest just
before the fault (the agent's round trip, tens of ms under TCG, is included); a recovery seen by
polling is as coarse as the poll (0.5 s)."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exo_init.system import dashboard as dash
from tests.machine import Machine
from tests.pixels import close, wait_for_screen
from tests.vm.conftest import MachineFactory
from tests.vm.test_generations import STATE_CMDLINE, events, generations, state_disk, write_manifest


@dataclass(frozen=True)
class Row:
    fault: str
    seen: str
    action: str
    detect: float | None
    recover: float | None
    lost: str


ROWS: list[Row] = []
BANNER_AT = (dash.BANNER[0] + 2, dash.BANNER[1] + 2)  # a pixel of the dashboard's banner (no text there)


def table() -> str:
    head = f"{'fault':<34} {'the Sentry saw':<30} {'action':<30} {'detect':>7} {'recover':>8}  lost"
    lines = [head, "-" * len(head)]
    for r in ROWS:
        d = f"{r.detect:.2f}s" if r.detect is not None else "-"
        v = f"{r.recover:.2f}s" if r.recover is not None else "-"
        lines.append(f"{r.fault:<34} {r.seen:<30} {r.action:<30} {d:>7} {v:>8}  {r.lost}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def dm(make_module_machine: MachineFactory, tmp_path_factory: pytest.TempPathFactory) -> Machine:
    disk = state_disk(tmp_path_factory.mktemp("drill-state") / "state.img")
    m = make_module_machine("drills", state_disk=disk, cmdline=STATE_CMDLINE)
    m.wait_for_capsule("sentry", "ready", 120)
    m.wait_for_capsule("network", "ready", 120)
    return m


def now(m: Machine) -> float:
    return float(m.succeed("date +%s.%N"))


def wait_record(m: Machine, what: str, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def check() -> tuple[bool, str]:
        records = events(m)
        found[:] = [r for r in records if match(r)]
        return bool(found), json.dumps(records[-8:], indent=1)

    m.wait_until(what, check, timeout)
    return found[0]


def sentry_restarts(m: Machine) -> int:
    return int(m.capsule_status("sentry")["restarts"])


def test_network_partition_degrades_then_recovers(dm: Machine) -> None:
    try:
        partition_drill(dm)
    finally:
        dm.qmp.execute("set_link", name="net0", up=True)
        dm.succeed("exoctl stop uplink")


def partition_drill(m: Machine) -> None:
    m.succeed("exoctl start uplink")
    m.wait_for_capsule("uplink", "ready", 60)
    m.wait_until("uplink's check passing", lambda: (
        (m.capsule_status("uplink").get("health") or {}).get("state") == "ok", ""), 240)
    before = m.capsule_status("uplink")
    network_before = m.capsule_status("network")
    t0 = now(m)
    m.qmp.execute("set_link", name="net0", up=False)
    partition = wait_record(m, "the network-partition record", lambda r: r.get("anomaly") == "network-partition"
                            and r["kind"] == "anomaly" and r["time"] >= t0, 240)
    assert partition["capsule"] == "network" and partition["reason"] == "link down", partition
    detect = partition["time"] - t0
    m.wait_until("uplink degraded", lambda: (m.capsule_status("uplink")["degraded"] == "network partition", ""), 300)
    degraded = wait_record(m, "uplink degraded", lambda r: r.get("capsule") == "uplink" and r.get("action") == "degrade"
                           and r["time"] >= t0, 30)
    # Shown: the network capsule degraded with the link's reason, and the dashboard's banner.
    assert m.capsule_status("network")["degraded"] == "network partition: link down", m.capsule_status("network")
    wait_for_screen(m, m.workdir / "drill-partition.png", lambda p: close(p.rgb(*BANNER_AT), dash.WARNING), 60,
                    "the partition's banner on the dashboard")
    banner = now(m) - t0  # (as coarse as the screendumps: one every 0.5 s and more)
    # A partition of a while: the check keeps failing; nothing may be restarted.
    time.sleep(15)
    during = m.capsule_status("uplink")
    assert during["pid"] == before["pid"] and during["restarts"] == before["restarts"], during
    assert during["health"]["state"] == "failing" and during["health"]["failures"] >= 2, during["health"]
    assert m.capsule_status("network")["restarts"] == network_before["restarts"]
    t1 = now(m)
    m.qmp.execute("set_link", name="net0", up=True)
    healed = wait_record(m, "the partition's end", lambda r: r.get("anomaly") == "network-partition"
                         and r["kind"] == "recovered" and r["time"] >= t1, 240)
    recovered = wait_record(m, "uplink's check passing again", lambda r: r.get("anomaly") == "unhealthy"
                            and r["kind"] == "recovered" and r.get("capsule") == "uplink" and r["time"] >= t1, 240)
    m.wait_until("uplink no longer degraded", lambda: (m.capsule_status("uplink")["degraded"] == "", ""), 120)
    assert m.capsule_status("network")["degraded"] == "", m.capsule_status("network")
    wait_for_screen(m, m.workdir / "drill-healed.png", lambda p: close(p.rgb(*BANNER_AT), dash.HEADER), 60,
                    "the dashboard's header without the banner")
    after = m.capsule_status("uplink")
    assert after["pid"] == before["pid"] and after["restarts"] == before["restarts"], after
    records = events(m)
    assert not [r for r in records if r["kind"] == "action" and r.get("capsule") == "uplink" and r["time"] >= t0]
    assert "lease renew" in healed["reason"], healed  # the lease was renewed (udhcpc, SIGUSR1)
    ROWS.append(Row("network partition (set_link off)", "network-partition; uplink", "degraded, banner, no restart",
                    detect, recovered["time"] - t1, "nothing (0 restarts)"))
    print(f"\npartition: detected in {detect:.2f} s, uplink degraded after {degraded['time'] - t0:.2f} s, "
          f"link back -> lease renewed in {healed['time'] - t1:.2f} s, "
          f"uplink healthy in {recovered['time'] - t1:.2f} s; partition lasted {healed['duration']:.1f} s; "
          f"the dashboard's banner seen {banner:.1f} s after set_link off")


def test_memory_pressure_the_worst_offender_is_stopped(dm: Machine) -> None:
    try:
        pressure_drill(dm)
    finally:
        dm.succeed("exoctl stop pressure-a; exoctl stop pressure-b; exoctl stop pressure-c", timeout=120)


def pressure_drill(m: Machine) -> None:
    t0 = now(m)
    m.succeed("exoctl start pressure-a; exoctl start pressure-b; exoctl start pressure-c", timeout=180)
    worst = wait_record(m, "the Sentry acting on memory pressure", lambda r: r.get("anomaly") == "memory-pressure"
                        and r["kind"] == "anomaly" and r.get("worst") is True and r["time"] >= t0, 300)
    assert worst["capsule"] == "pressure-a" and worst["action"] == "kill", worst
    m.wait_for_capsule("pressure-a", "stopped", 120)
    stopped = now(m)
    time.sleep(5)
    for other in ("pressure-b", "pressure-c"):
        st = m.capsule_status(other)
        assert st["state"] == "ready" and st["restarts"] == 0, st
    records = [r for r in events(m) if r.get("anomaly") == "memory-pressure" and r["kind"] == "anomaly"
               and r["time"] >= t0]
    others = sorted({(r["capsule"], r["psi_memory_avg10"]) for r in records if not r.get("worst")})
    print(f"\nmemory pressure: worst pressure-a at PSI {worst['psi_memory_avg10']}% among {worst['offenders']} "
          f"offender(s); the others recorded: {others}")
    ROWS.append(Row("memory pressure, 3 capsules", f"PSI {worst['psi_memory_avg10']:.0f}% in pressure-a",
                    "kill the worst only", worst["time"] - t0, stopped - worst["time"], "pressure-a (by policy)"))


def test_pids_exhaustion_is_frozen(dm: Machine) -> None:
    m = dm
    t0 = now(m)
    m.succeed("exoctl start quarantine")
    anomaly = wait_record(m, "the pids-max anomaly", lambda r: r.get("anomaly") == "pids-max"
                          and r.get("capsule") == "quarantine" and r["kind"] == "anomaly" and r["time"] >= t0, 60)
    assert anomaly["action"] == "freeze"
    action = wait_record(m, "the freeze", lambda r: r["kind"] == "action" and r.get("capsule") == "quarantine"
                         and r["time"] >= t0, 30)
    assert action["ok"] is True
    assert m.succeed("cat /sys/fs/cgroup/capsules/quarantine/cgroup.freeze").strip() == "1"
    t1 = now(m)
    m.succeed("exoctl stop quarantine")
    st = m.wait_for_capsule("quarantine", "stopped", 60)
    stopped = now(m) - t1
    assert st["cgroup"]["pids_current"] == 0
    # A frozen capsule is thawed to see its stop signal: it need not wait out its stop timeout (10 s).
    assert "capsule 'quarantine' did not stop" not in m.console
    ROWS.append(Row("pids exhaustion (pids.max 8)", "pids-max", "freeze", anomaly["time"] - t0, stopped,
                    "nothing (stopped on request)"))


def test_fork_storm_in_a_host_capsule(dm: Machine) -> None:
    m = dm
    t0 = now(m)
    m.succeed("exoctl start hoststorm")
    anomaly = wait_record(m, "the pids-max anomaly", lambda r: r.get("anomaly") == "pids-max"
                          and r.get("capsule") == "hoststorm" and r["time"] >= t0, 60)
    out = m.wait_until_succeeds("exoctl logs hoststorm -n 20 | grep 'fork failed after'", 60)
    st = m.capsule_status("hoststorm")
    assert st["cgroup"]["pids_current"] <= 64 and st["cgroup"]["pids_max"] == "64", st["cgroup"]
    # PID 1 and the rest of the system still answer at once
    start = time.monotonic()
    m.succeed("exoctl status >/dev/null && /bin/true")
    answer = time.monotonic() - start
    assert m.capsule_status("agent")["state"] == "ready" and m.capsule_status("sentry")["state"] == "ready"
    t1 = now(m)
    m.succeed("exoctl stop hoststorm")
    st = m.wait_for_capsule("hoststorm", "stopped", 60)
    assert st["cgroup"]["pids_current"] == 0
    print(f"\nfork storm: {out.strip()}; exoctl status answered in {answer:.2f} s during the storm")
    ROWS.append(Row("fork storm, host capsule", "pids-max", "log (policy default)", anomaly["time"] - t0,
                    now(m) - t1, "nothing"))


def test_full_state_disk(dm: Machine) -> None:
    m = dm
    sentry_before = sentry_restarts(m)
    current = generations(m)["current"]
    fill = ("import os; p = '/var/lib/exosphere/drill-fill'; fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)\n"
            "st = os.statvfs('/var/lib/exosphere')\n"
            "os.posix_fallocate(fd, 0, max(0, st.f_bavail * st.f_frsize - (16 << 20)))\n"
            "os.lseek(fd, 0, os.SEEK_END)\n"
            "for size in (1 << 20, 4096):\n"
            "    try:\n"
            "        while True: os.write(fd, b'x' * size)\n"
            "    except OSError as e: error = e.strerror\n"
            "print('full:', error)\n")
    write_manifest(m, "/tmp/drill-next.json", {"drill-extra": {"argv": ["/bin/sleep", "infinity"]}})
    try:
        full_disk_drill(m, fill, current, sentry_before)
    finally:
        m.succeed("rm -f /var/lib/exosphere/drill-fill; exoctl stop crasher || true")


def full_disk_drill(m: Machine, fill: str, current: int, sentry_before: int) -> None:
    t0 = now(m)
    assert "No space left on device" in m.succeed(f"python3 -c {shlex.quote(fill)}", timeout=120)
    out = m.fail("exoctl switch /tmp/drill-next.json --no-try 2>&1")
    assert "No space left on device" in out, out
    assert generations(m)["current"] == current
    # An anomaly while the disk is full: recorded if the event log's last block has room, else
    # counted in the Sentry's own log; either way the Sentry goes on.
    m.succeed("exoctl start crasher")

    def crash_loop_seen() -> tuple[bool, str]:
        logged = m.execute("exoctl logs sentry -n 50 | grep -c 'records not written'").out.strip()
        recorded = [r for r in events(m) if r.get("anomaly") == "crash-loop" and r["time"] >= t0]
        return bool(recorded) or logged not in ("", "0"), f"{logged} {recorded}"

    m.wait_until("the crash loop seen by the Sentry", crash_loop_seen, 120)
    assert m.capsule_status("sentry")["state"] == "ready" and sentry_restarts(m) == sentry_before
    seen = now(m)
    for line in m.succeed("tail -n 50 /var/lib/exosphere/events.jsonl || true").splitlines():
        json.loads(line)  # every line whole: nothing torn
    m.succeed("rm /var/lib/exosphere/drill-fill")
    assert not m.succeed("ls -A /var/lib/exosphere/generations | grep '^.tmp' || true").strip()
    t1 = now(m)
    m.succeed("exoctl switch /tmp/drill-next.json --no-try")
    assert generations(m)["current"] == current + 1
    m.wait_for_capsule("drill-extra", "ready", 30)
    recovered = now(m) - t1
    lost = m.succeed("exoctl logs sentry -n 200 | grep -o '[0-9]* records not written' | tail -n 1 || true").strip()
    ROWS.append(Row("state disk full", "(its own writes fail)", "keeps running, logs", seen - t0, recovered,
                    f"{lost or '0 records not written'}; no generation"))


def test_poweroff_with_a_capsule_ignoring_sigterm(dm: Machine) -> None:
    m = dm
    m.succeed("exoctl start stubborn")
    m.wait_for_capsule("stubborn", "ready", 30)
    m.wait_until_succeeds("exoctl logs stubborn -n 5 | grep -q 'ignoring SIGTERM'", 30)
    start = time.monotonic()
    m.succeed("(sleep 0.2; exoctl poweroff) >/dev/null 2>&1 &")
    assert m.wait_for_exit(120) == 0
    took = time.monotonic() - start
    assert "capsule 'stubborn' did not stop within 4 s; killing it" in m.console
    assert took < 4 + 2 + 30, took  # its stop timeout, the grace, and the rest of the poweroff under TCG
    ROWS.append(Row("SIGTERM ignored at poweroff", "(PID 1: stop timeout)", "SIGKILL after 4 s", None, took,
                    "nothing: poweroff completed"))
    Path(__file__).resolve().parents[1].joinpath("artifacts").mkdir(exist_ok=True)
    Path(__file__).resolve().parents[1].joinpath("artifacts", "drills.txt").write_text(table() + "\n")
    print("\n" + table())
