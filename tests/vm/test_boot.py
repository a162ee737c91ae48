"""Boot the test image and check PID 1, the capsule set and the console."""

from __future__ import annotations

import json
import re
from pathlib import Path

from qemu.build import DISK_ROOT_CMDLINE, Image
from qemu.vm import VMConfig
from tests.machine import Machine, boot_times
from tests.vm.conftest import MachineFactory


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


def test_stage1_switch_root_to_exo_init_on_disk_root(disk_root_image: Image, make_machine: MachineFactory) -> None:
    """The disk-root variant: busybox stage 1 mounts the ext4 root by label and switch_roots; exo_init
    is still PID 1 (the same process), on the disk's root, and the boot completes as from the initramfs."""
    m = make_machine("stage1", initrd=disk_root_image.stage1, cmdline=DISK_ROOT_CMDLINE,
                     root_disk=disk_root_image.root_disk)
    assert m.wait_for_console_text(r"boot complete: (.*)\n", 10).group(1).startswith("all capsules ready")
    # Stage 1's progress is in the kernel log (the console shows it only with the kernel's messages:
    # the command line is `quiet`); its failures go to the console.
    kernel_log = m.succeed("dmesg")
    assert re.search(r"stage1: mounted /dev/vda \(LABEL=exo-root\) on /newroot; switch_root to /usr/sbin/exo_init",
                     kernel_log), kernel_log[-3000:]
    assert not re.search(r"stage1: .*(failed|starting a shell)", m.console + kernel_log), m.console_tail()
    cmdline = m.succeed("tr '\\0' ' ' < /proc/1/cmdline").strip()
    assert re.match(r"^/usr/bin/python3(\.\d+)? -I /usr/sbin/exo_init", cmdline), cmdline
    root = [line.split() for line in m.succeed("cat /proc/self/mounts").splitlines() if line.split()[1] == "/"]
    assert root[-1][:3] == ["/dev/vda", "/", "ext4"], root


def test_stage1_names_a_missing_root(disk_root_image: Image, tmp_path: Path) -> None:
    """A root that never appears: stage 1 says which, and gives the console a shell (no panic)."""
    m = Machine("stage1-noroot", VMConfig(kernel=disk_root_image.kernel, initrd=disk_root_image.stage1,
                                          cmdline=f"{DISK_ROOT_CMDLINE} exo.root=LABEL=no-such-root",
                                          root_disk=disk_root_image.root_disk), tmp_path)
    with m.running():
        m.wait_for_console_text(r"stage1: root filesystem LABEL=no-such-root did not appear within 10 s; "
                                r"starting a shell", 120)
        m.send_console("echo still-$((40 + 2))\n")
        m.wait_for_console_text(r"still-42", 30)
    assert "Kernel panic" not in m.console
