"""Generations on a persistent state disk, automatic rollback, and the Sentry agent, in the VM."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from qemu.build import KERNEL_CMDLINE
from tests.machine import Machine
from tests.vm.conftest import MachineFactory
from tests.vm.test_power import assert_clean_end

STATE_CMDLINE = KERNEL_CMDLINE + " exo.state=/dev/vda"


def state_disk(path: Path) -> Path:
    with open(path, "wb") as f:
        f.truncate(256 << 20)  # sparse; PID 1 formats it (ext4) on first boot
    return path


def write_manifest(m: Machine, dest: str, extra: dict[str, Any]) -> None:
    """The image's manifest plus `extra` capsules, written in the guest."""
    script = (f"import json; d = json.load(open('/etc/exosphere/manifest.json')); "
              f"d['capsules'].update(json.loads({json.dumps(json.dumps(extra))})); "
              f"json.dump(d, open({dest!r}, 'w'))")
    m.succeed(f"python3 -c {shlex.quote(script)}")


def generations(m: Machine) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(m.succeed("exoctl --json generations"))
    return result


def events(m: Machine) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(m.succeed("exoctl --json events -n 500"))
    return result


@pytest.fixture(scope="module")
def gm(make_module_machine: MachineFactory, tmp_path_factory: pytest.TempPathFactory) -> Machine:
    disk = state_disk(tmp_path_factory.mktemp("gen-state") / "state.img")
    return make_module_machine("gen", state_disk=disk, cmdline=STATE_CMDLINE)


# First in the module: the module's shared machine (`gm`) is booted by its first user, so this test's
# three boots run beside no other guest.
def test_generations_survive_reboot_and_power_cut(make_machine: MachineFactory, tmp_path: Path) -> None:
    disk = state_disk(tmp_path / "state.img")
    m = make_machine("gen-reboot1", state_disk=disk, cmdline=STATE_CMDLINE)
    write_manifest(m, "/tmp/two.json", {"extra": {"argv": ["/bin/sleep", "infinity"]}})
    m.succeed("exoctl switch /tmp/two.json --no-try")
    m.wait_for_capsule("extra", "ready", 30)
    assert generations(m)["current"] == 2
    m.succeed("(sleep 0.5; exoctl poweroff) >/dev/null 2>&1 &")
    assert m.wait_for_exit(90) == 0
    m.stop()

    m2 = make_machine("gen-reboot2", state_disk=disk, cmdline=STATE_CMDLINE)
    gens = generations(m2)
    assert gens["current"] == 2 and gens["booted"] == 2, gens
    assert [g["number"] for g in gens["generations"]] == [1, 2]
    m2.wait_for_capsule("extra", "ready", 30)
    # A power cut in the middle of a switch (generation 3 written and applied, on probation, not
    # yet committed): the next boot finds generation 2 current and generation 3 whole.
    write_manifest(m2, "/tmp/three.json", {"extra": {"argv": ["/bin/sleep", "infinity"]},
                                           "third": {"argv": ["/bin/sleep", "infinity"]}})
    mark = len(m2.console)
    m2.succeed("(exoctl switch /tmp/three.json --probation 120 >/dev/null 2>&1 &)")
    m2.wait_for_console_text(r"switching to generation 3 .*\n", 60, start=mark)
    m2.crash()
    m2.stop()

    m3 = make_machine("gen-reboot3", state_disk=disk, cmdline=STATE_CMDLINE)
    gens = generations(m3)
    numbers = [g["number"] for g in gens["generations"]]
    assert gens["current"] == 2 and gens["booted"] == 2, gens
    assert numbers == [1, 2, 3], gens
    for g in gens["generations"]:
        check = f"import json; json.load(open({g['manifest']!r}))"
        m3.succeed(f"python3 -c {shlex.quote(check)}")
    assert "third" not in m3.succeed("exoctl status")
    m3.wait_for_capsule("extra", "ready", 30)


def test_state_disk_holds_generation_one(gm: Machine) -> None:
    mounts = gm.succeed("cat /proc/mounts")
    assert "/dev/vda /var/lib/exosphere ext4" in mounts, mounts
    gens = generations(gm)
    assert gens["current"] == 1 and gens["booted"] == 1, gens
    assert gens["event_log"] == "/var/lib/exosphere/events.jsonl"
    gm.wait_for_capsule("sentry", "ready", 60)


def test_crash_looping_switch_is_rolled_back(gm: Machine) -> None:
    before = generations(gm)["current"]
    write_manifest(gm, "/tmp/bad.json", {"looper": {
        "argv": ["/bin/sh", "-c", "echo broken; exit 3"],
        "restart": {"policy": "always", "delay": 0.2, "limit_burst": 100}}})
    out = gm.succeed("exoctl switch /tmp/bad.json --probation 20")
    assert "probation 20 s" in out, out

    def rolled_back() -> tuple[bool, str]:
        g = generations(gm)
        return bool(g["last_rollback"]), json.dumps(g)

    gm.wait_until("automatic rollback", rolled_back, 30)
    gens = generations(gm)
    assert gens["current"] == before and gens["running"] == before, gens
    assert "looper" in gens["last_rollback"]["reason"] and "crash-looping" in gens["last_rollback"]["reason"]
    gm.wait_until("looper removed", lambda: ("looper" not in gm.succeed("exoctl status"), ""), 30)
    rollback = [e for e in events(gm) if e["kind"] == "rollback"][-1]
    assert rollback["automatic"] is True and "crash-looping" in rollback["reason"], rollback
    switch = [e for e in events(gm) if e["kind"] == "switch" and e["generation"] == rollback["generation"]][-1]
    print(f"\ncrash-looping generation rolled back {rollback['time'] - switch['time']:.2f} s after the switch")
    text = gm.succeed("exoctl events")
    assert "rollback" in text and "crash-looping" in text


def test_memory_hog_oom_is_logged(gm: Machine) -> None:
    t0 = float(gm.succeed("date +%s.%N"))
    gm.succeed("exoctl start memhog")
    gm.wait_for_capsule("memhog", "failed", 60)

    def logged() -> tuple[bool, str]:
        hits = [e for e in events(gm) if e.get("anomaly") == "oom" and e.get("capsule") == "memhog"]
        return bool(hits), ""

    gm.wait_until("the sentry's OOM record", logged, 30)
    oom = next(e for e in events(gm) if e.get("anomaly") == "oom" and e.get("capsule") == "memhog")
    assert oom["source"] == "sentry" and oom["action"] == "log" and oom["oom_kills"] >= 1, oom
    print(f"\nmemhog OOM recorded by the sentry {oom['time'] - t0:.2f} s after `exoctl start memhog`")
    sentry = gm.capsule_status("sentry")
    print(f"sentry: {sentry['cpu_percent']:.1f}% CPU, {sentry['cgroup']['memory_current'] / 2**20:.1f} MiB, "
          f"{sentry['restarts']} restarts")


def test_quarantined_capsule_is_frozen_and_thawed(gm: Machine) -> None:
    t0 = float(gm.succeed("date +%s.%N"))
    gm.succeed("exoctl start quarantine")

    def frozen() -> tuple[bool, str]:
        st = gm.capsule_status("quarantine")
        return bool((st.get("cgroup") or {}).get("frozen")), json.dumps(st)

    gm.wait_until("quarantine frozen by the sentry", frozen, 60)
    acts = [e for e in events(gm) if e["kind"] == "action" and e.get("capsule") == "quarantine"]
    assert acts and acts[-1]["action"] == "freeze" and acts[-1]["ok"] is True, acts
    print(f"\nquarantine frozen by the sentry {acts[-1]['time'] - t0:.2f} s after `exoctl start quarantine`")
    gm.succeed("exoctl thaw quarantine")
    st = gm.capsule_status("quarantine")
    assert st["cgroup"]["frozen"] is False and st["state"] == "ready", st
    gm.succeed("exoctl stop quarantine")


def test_exoctl_reboot_reboots_cleanly(gm: Machine) -> None:
    """Last in the module (it ends the machine): `exoctl reboot` stops every capsule and reboots
    (RB_AUTOBOOT: QEMU, run with -no-reboot, exits 0), no panic, no traceback."""
    gm.renew_deadline()
    gm.succeed("(sleep 0.5; exoctl reboot) >/dev/null 2>&1 &")
    assert_clean_end(gm, "reboot")
    assert "reboot: stopping capsules" in gm.console
