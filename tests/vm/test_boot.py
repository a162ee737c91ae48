"""Boot the test image and check PID 1, the capsule set and the console."""

from __future__ import annotations

import json
import re

from tests.machine import Machine, boot_times


def test_boot_reaches_all_capsules_ready(machine: Machine) -> None:
    m = machine.wait_for_console_text(r"boot complete: (.*)\n", 10)
    assert m.group(1).startswith("all capsules ready"), m.group(0)
    times = boot_times(machine.console)
    print(f"\nBOOT: all capsules ready {times['since_init']:.2f} s after exo_init started, "
          f"{times['since_kernel']:.2f} s after the kernel started")
    for name in ("kmod", "agent", "console", "powerbutton"):
        assert re.search(rf"\[  OK  \] (ready|exited) +{name}\b", machine.console), name


def test_pid1_is_python_exo_init(machine: Machine) -> None:
    cmdline = machine.succeed("tr '\\0' ' ' < /proc/1/cmdline").strip()
    assert re.match(r"^/usr/bin/python3(\.\d+)? -I /(usr/)?sbin/exo_init", cmdline), cmdline
    exe = machine.succeed("readlink /proc/1/exe").strip()
    assert re.match(r"^/usr/bin/python3\.\d+$", exe), exe
    info = json.loads(machine.succeed("exoctl --json info"))
    assert info["pid"] == 1 and info["pid1"] is True


def test_cgroup_tree_and_controllers(machine: Machine) -> None:
    assert machine.succeed("cat /proc/1/cgroup").strip() == "0::/exo.init"
    agent_pid = machine.capsule_status("agent")["pid"]
    assert machine.succeed(f"cat /proc/{agent_pid}/cgroup").strip() == "0::/capsules/agent"
    controllers = set(machine.succeed("cat /sys/fs/cgroup/capsules/cgroup.subtree_control").split())
    assert {"cpu", "memory", "pids", "io"} <= controllers
    mounts = machine.succeed("grep cgroup2 /proc/mounts")
    assert "nsdelegate" in mounts


def test_exoctl_status_lists_every_capsule(machine: Machine) -> None:
    rows = json.loads(machine.succeed("exoctl --json status"))
    names = {r["name"] for r in rows}
    assert {"kmod", "agent", "console", "powerbutton", "memhog", "cpuhog"} <= names
    agent = next(r for r in rows if r["name"] == "agent")
    assert agent["state"] == "ready" and agent["cgroup"]["memory_current"] > 0
    table = machine.succeed("exoctl status")
    assert re.search(r"^agent +ready ", table, re.MULTILINE), table


def test_capsule_logs_are_captured(machine: Machine) -> None:
    out = machine.succeed("exoctl logs agent -n 5")
    assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+ agent: serving on /dev/vport", out, re.MULTILINE), out


def test_no_traceback_or_panic_on_console(machine: Machine) -> None:
    assert "Traceback" not in machine.console
    assert "Kernel panic" not in machine.console
