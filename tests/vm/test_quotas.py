"""cgroup v2 quotas, enforced by the guest kernel on misbehaving capsules."""

from __future__ import annotations

import itertools
import re
import time
from datetime import datetime

from tests.machine import Machine


def test_memory_hog_is_oom_killed_inside_its_cgroup(machine: Machine) -> None:
    machine.succeed("exoctl start neighbour")
    neighbour = machine.wait_for_capsule("neighbour", "ready", 30)
    machine.succeed("exoctl start memhog")
    st = machine.wait_for_capsule("memhog", "failed", 60)
    assert "killed by SIGKILL" in st["reason"], st
    assert st["cgroup"]["memory_oom_kill"] >= 1, st["cgroup"]
    assert st["cgroup"]["memory_max"] == str(64 << 20)
    log = machine.succeed("exoctl logs memhog -n 200")
    allocated = [int(n) for n in re.findall(r"allocated (\d+) MiB", log)]
    assert allocated and max(allocated) <= 64, allocated
    after = machine.capsule_status("neighbour")
    assert after["state"] == "ready" and after["pid"] == neighbour["pid"], after
    assert after["cgroup"]["memory_oom_kill"] == 0
    machine.succeed("exoctl stop neighbour")


def test_fork_bomb_stops_at_pids_max(machine: Machine) -> None:
    machine.succeed("exoctl start forkbomb")
    out = machine.wait_until_succeeds("exoctl logs forkbomb -n 20 | grep 'fork failed after'", 60)
    children = int(re.search(r"fork failed after (\d+) children", out).group(1))  # type: ignore[union-attr]
    st = machine.capsule_status("forkbomb")
    assert st["cgroup"]["pids_max"] == "16"
    assert st["cgroup"]["pids_current"] <= 16
    assert children == 14, out  # 16 tasks: the capsule's namespace init, the parent and 14 children
    assert st["cgroup"]["pids_events_max"] >= 1
    assert st["state"] == "ready", "the capsule itself keeps running at its limit"
    machine.succeed("exoctl stop forkbomb")
    st = machine.wait_for_capsule("forkbomb", "stopped", 30)
    assert st["cgroup"]["pids_current"] == 0


def test_cpu_hog_stays_under_its_cap(machine: Machine) -> None:
    machine.succeed("exoctl start cpuhog")
    machine.wait_for_capsule("cpuhog", "ready", 30)
    time.sleep(1.0)
    out = machine.succeed(
        "a=$(awk '/usage_usec/{print $2}' /sys/fs/cgroup/capsules/cpuhog/cpu.stat); t0=$(date +%s%N); "
        "sleep 5; b=$(awk '/usage_usec/{print $2}' /sys/fs/cgroup/capsules/cpuhog/cpu.stat); t1=$(date +%s%N); "
        "echo $((b-a)) $(((t1-t0)/1000))")
    used_us, wall_us = map(int, out.split())
    share = used_us / wall_us
    print(f"\nCPU hog capped at 20%: used {share * 100:.1f}% of one CPU over {wall_us / 1e6:.1f} s")
    assert 0.05 < share <= 0.25, share
    assert machine.succeed("cat /sys/fs/cgroup/capsules/cpuhog/cpu.max").strip() == "20000 100000"
    throttled = machine.succeed("awk '/nr_throttled/{print $2}' /sys/fs/cgroup/capsules/cpuhog/cpu.stat")
    assert int(throttled) > 0
    machine.succeed("exoctl stop cpuhog")


def test_crashing_capsule_backs_off_then_fails(machine: Machine) -> None:
    start = len(machine.console)
    machine.succeed("exoctl start crasher")
    st = machine.wait_for_capsule("crasher", "failed", 90)
    assert "start limit hit (4 failures" in st["reason"], st
    assert st["restarts"] == 3
    log = machine.succeed("exoctl logs crasher -n 100")
    exits = [datetime.fromisoformat(line.split()[0]) for line in log.splitlines()
             if "main process exited 3" in line]
    assert len(exits) == 4, log
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(exits)]
    delays = [float(d) for d in re.findall(r"restart +crasher: .*; restart in ([0-9.]+) s", machine.console[start:])]
    print(f"\ncrasher: gaps between exits {', '.join(f'{g:.2f}' for g in gaps)} s "
          f"(backoff delays announced: {', '.join(f'{d:g}' for d in delays)} s)")
    assert delays == [0.5, 1.0, 2.0], delays  # doubling from restart.delay
    # Each gap is the backoff delay plus the next run's start-up and 0.2 s of running (which
    # varies with load, so gaps are compared with the delays, not with each other).
    assert all(gap >= delay + 0.2 for gap, delay in zip(gaps, delays, strict=True)), (gaps, delays)


def test_a_scoped_capsule_without_limits_gets_the_default_ones(machine: Machine) -> None:
    """dbus-bridge is scoped and declares no quota: it runs under pids.max 1024 and half the RAM."""
    st = machine.capsule_status("dbus-bridge")
    mem_total = int(machine.succeed("awk '/MemTotal/{print $2}' /proc/meminfo")) * 1024
    assert st["cgroup"]["pids_max"] == "1024", st["cgroup"]
    assert st["cgroup"]["memory_max"] == str(mem_total // 2 // 4096 * 4096), st["cgroup"]
    unconfined = machine.capsule_status("network")  # host = true: no default limit
    assert unconfined["cgroup"]["pids_max"] == "max" and unconfined["cgroup"]["memory_max"] == "max"
