"""README's promises that no other booted test kept, on the shared machine: every quota besides
cpu.max, memory.max and pids.max in the capsule's cgroup, and a quota the kernel rejects; a
required capsule failing at run time fails what requires it; the Sentry's `restart` action;
`WATCHDOG=1` keep-alives, a missed watchdog, and `restart.reset_after`. The capsules are in
tests/guest/capsules.nix."""

from __future__ import annotations

import json
import re
import shlex

from tests.machine import Machine
from tests.vm.test_generations import events

LEAF = "/sys/fs/cgroup/capsules"
# loop0 and loop1 backed by files (LOOP_SET_FD; a device already bound says EBUSY: set up already)
LOOP_SET_FD = """
import errno, fcntl, os
for i in (0, 1):
    try:
        fcntl.ioctl(os.open(f"/dev/loop{i}", os.O_RDWR), 0x4C00, os.open(f"/tmp/loop{i}.img", os.O_RDWR))
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
"""


def cgroup_file(m: Machine, capsule: str, name: str) -> str:
    return m.succeed(f"cat {LEAF}/{capsule}/{name}").strip()


def test_every_other_quota_is_written_to_the_capsules_cgroup(machine: Machine) -> None:
    """quotas.cpu_weight, memory_high, memory_swap_max, io_weight, io_max (two devices: two lines)
    and memory_oom_group, as the kernel holds them for the running capsule."""
    machine.succeed("modprobe loop && truncate -s 8M /tmp/loop0.img /tmp/loop1.img")
    machine.succeed(f"python3 -c {shlex.quote(LOOP_SET_FD)}")  # (the image has no losetup)
    assert machine.succeed("cat /sys/block/loop0/dev /sys/block/loop1/dev").split() == ["7:0", "7:1"]
    machine.succeed("exoctl start quotas-all")
    st = machine.wait_for_capsule("quotas-all", "ready", 30)
    try:
        assert str(st["pid"]) in cgroup_file(machine, "quotas-all", "cgroup.procs").split()
        got = {name: cgroup_file(machine, "quotas-all", name) for name in
               ("cpu.weight", "memory.high", "memory.swap.max", "io.weight", "memory.oom.group")}
        print("\nquotas-all: " + json.dumps(got))
        assert got == {"cpu.weight": "42", "memory.high": str(40 << 20), "memory.swap.max": str(8 << 20),
                       "io.weight": "default 250", "memory.oom.group": "1"}, got
        io_max = sorted(cgroup_file(machine, "quotas-all", "io.max").splitlines())
        assert io_max == ["7:0 rbps=2097152 wbps=max riops=max wiops=120",
                          "7:1 rbps=max wbps=1048576 riops=max wiops=max"], io_max
    finally:
        machine.succeed("exoctl stop quotas-all")


def test_a_quota_the_kernel_rejects_is_one_error_naming_it(machine: Machine) -> None:
    """io.max of a device that does not exist: the loader takes it, the kernel refuses it. The
    capsule is failed (not restarted) with one line naming the field, the value and the kernel's
    answer; PID 1 is still there and answers."""
    mark = len(machine.console)
    machine.execute("exoctl start quota-rejected")
    st = machine.wait_for_capsule("quota-rejected", "failed", 30)
    reason = st["reason"]
    assert re.fullmatch(r"quotas\.io_max: the kernel rejected io\.max='259:4000 rbps=1048576': No such device",
                        reason), reason
    assert st["pid"] is None and st["restarts"] == 0, st
    lines = [line for line in machine.console[mark:].splitlines() if "quota-rejected" in line]
    assert any(line.startswith("[FAILED] failed   quota-rejected: quotas.io_max: ") for line in lines), lines
    assert not any("Traceback" in line for line in machine.console[mark:].splitlines())
    info = json.loads(machine.succeed("exoctl --json info"))
    assert info["pid"] == 1, info
    machine.wait_for_capsule("agent", "ready", 10)


def test_a_required_capsule_failing_at_run_time_fails_its_dependents(machine: Machine) -> None:
    """`requires`: "it starts after they are ready and fails if they fail". needed is killed while
    needy (requires it) and after-needed (ordering only) run: needy is stopped and failed, naming
    needed; after-needed keeps running."""
    machine.succeed("exoctl start needy")  # (pulls needed in)
    machine.succeed("exoctl start after-needed")
    needed = machine.wait_for_capsule("needed", "ready", 30)
    machine.wait_for_capsule("needy", "ready", 30)
    bystander = machine.wait_for_capsule("after-needed", "ready", 30)
    try:
        machine.succeed(f"kill -KILL {needed['pid']}")
        st = machine.wait_for_capsule("needed", "failed", 30)
        assert st["reason"].startswith("killed by SIGKILL"), st
        needy = machine.wait_for_capsule("needy", "failed", 30)
        assert needy["reason"] == "required capsule 'needed' failed", needy
        assert needy["pid"] is None and needy["cgroup"]["pids_current"] == 0, needy
        after = machine.capsule_status("after-needed")
        assert after["state"] == "ready" and after["pid"] == bystander["pid"], after
    finally:
        machine.succeed("exoctl stop after-needed")


def test_the_sentrys_restart_action_restarts_the_capsule(machine: Machine) -> None:
    """The test image's Sentry policy says `relaunch: pids-max -> restart`: relaunch forks until its
    pids.max; the Sentry records the anomaly and restarts it: the first run is stopped (SIGTERM),
    a second one runs (its "fork failed" line after the first run's end, in the capsule's log). Within the cooldown the
    second run's anomaly is only logged."""
    machine.wait_for_capsule("sentry", "ready", 60)
    machine.succeed("exoctl start relaunch")
    try:
        def restarted() -> tuple[bool, str]:
            acts = [e for e in events(machine) if e.get("kind") == "action" and e.get("capsule") == "relaunch"]
            return bool(acts), json.dumps(acts)

        acts = json.loads(machine.wait_until("the sentry's restart of relaunch", restarted, 60))
        assert acts[0]["action"] == "restart" and acts[0]["anomaly"] == "pids-max" and acts[0]["ok"] is True, acts
        anomaly = [e for e in events(machine) if e.get("kind") == "anomaly" and e.get("capsule") == "relaunch"]
        assert anomaly and anomaly[0]["anomaly"] == "pids-max" and anomaly[0]["action"] == "restart", anomaly

        def second_run() -> tuple[bool, str]:
            log = machine.succeed("exoctl logs relaunch -n 100")
            _, stopped, after = log.partition("[exo_init] main process killed by SIGTERM")
            return bool(stopped) and re.search(r"fork failed after \d+ children", after) is not None, log

        machine.wait_until("the first run stopped, a second one forking", second_run, 60)
        st = machine.wait_for_capsule("relaunch", "ready", 30)
        assert st["last_exit"] == "killed by SIGTERM" and st["restarts"] == 0, st  # (a stop and a start: no backoff)
    finally:
        machine.succeed("exoctl stop relaunch")


def restart_delays(console: str, name: str) -> list[float]:
    return [float(d) for d in re.findall(rf"^\[ INFO \] restart +{re.escape(name)}: watchdog timeout; "
                                         r"restart in ([0-9.]+) s$", console, re.MULTILINE)]


def test_watchdog_pings_keep_a_capsule_a_silent_one_is_restarted_and_reset_after_resets_the_backoff(
        machine: Machine) -> None:
    """dog sends WATCHDOG=1 every 0.25 s (watchdog_sec 10): it stays, same pid, no restart. The quiet
    dogs send it twice, then nothing: each run is aborted (SIGABRT, "watchdog timeout") and
    restarted. Every run lasts more than 2 s: with reset_after = 2 the backoff stays at its first
    delay, with reset_after = 60 it doubles."""
    mark = len(machine.console)
    names = ("dog", "dog-quiet", "dog-quiet-noreset")
    for name in names:
        machine.succeed(f"exoctl start {name}")
    dog = machine.wait_for_capsule("dog", "ready", 30)
    try:
        def three_aborts() -> tuple[bool, str]:
            seen = {n: restart_delays(machine.console[mark:], n) for n in names[1:]}
            return all(len(d) >= 3 for d in seen.values()), json.dumps(seen)

        seen = json.loads(machine.wait_until("three watchdog restarts of each quiet dog", three_aborts, 120))
        print(f"\nrestart delays after missed watchdogs: {seen}")
        assert seen["dog-quiet"][:3] == [0.5, 0.5, 0.5], seen
        assert seen["dog-quiet-noreset"][:3] == [0.5, 1.0, 2.0], seen
        quiet = machine.capsule_status("dog-quiet")
        assert quiet["last_exit"] == "watchdog timeout" and quiet["restarts"] >= 2, quiet
        assert "missed its watchdog; aborting it" in machine.console[mark:]
        st = machine.capsule_status("dog")
        assert st["state"] == "ready" and st["pid"] == dog["pid"] and st["restarts"] == 0, st
        assert not restart_delays(machine.console[mark:], "dog"), "dog was restarted"
        assert "WATCHDOG_USEC=10000000" in machine.succeed("exoctl logs dog -n 5")
    finally:
        for name in names:
            machine.succeed(f"exoctl stop {name}")
