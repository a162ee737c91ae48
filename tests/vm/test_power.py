"""Clean poweroff and reboot: every path ends with QEMU exiting 0 and no panic or traceback."""

from __future__ import annotations

from tests.machine import Machine
from tests.vm.conftest import MachineFactory

SHUTDOWN_TIMEOUT = 90.0


def assert_clean_end(m: Machine, action: str) -> None:
    status = m.wait_for_exit(SHUTDOWN_TIMEOUT)
    assert status == 0, f"QEMU exit status {status}\n{m.console_tail()}"
    word = "powering off" if action == "poweroff" else "rebooting"
    assert f"exo_init: {word}" in m.console, m.console_tail()
    assert "[  OK  ] stopped  agent" in m.console
    assert "Kernel panic" not in m.console and "Traceback" not in m.console, m.console_tail(60)


def test_poweroff_via_acpi_power_button(make_machine: MachineFactory) -> None:
    m = make_machine("power-qmp")
    m.wait_for_capsule("powerbutton", "ready", 30)
    m.send_powerdown()
    assert_clean_end(m, "poweroff")
    assert "poweroff: stopping capsules" in m.console


def test_poweroff_via_exoctl(make_machine: MachineFactory) -> None:
    m = make_machine("power-exoctl")
    m.succeed("(sleep 0.5; exoctl poweroff) >/dev/null 2>&1 &")
    assert_clean_end(m, "poweroff")


def test_sigterm_to_pid1_powers_off(make_machine: MachineFactory) -> None:
    m = make_machine("power-sigterm")
    m.succeed("(sleep 0.5; kill -TERM 1) >/dev/null 2>&1 &")
    assert_clean_end(m, "poweroff")
    assert "signal SIGTERM: poweroff" in m.console


def test_ctrl_alt_del_reboots(make_machine: MachineFactory) -> None:
    m = make_machine("reboot-cad")
    m.qmp.execute("send-key", keys=[{"type": "qcode", "data": k} for k in ("ctrl", "alt", "delete")])
    assert_clean_end(m, "reboot")
    assert "signal SIGINT: reboot" in m.console
