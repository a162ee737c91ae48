"""The CoreCaps shell on the console of the booted image, driven like a person at the serial
console (pexpect, through the harness): a session, then escape attempts that must all be refused.
The table of attempts and results is printed."""

from __future__ import annotations

import re

from tests.machine import Machine

PROMPT = r"console:(/[^\n#]*)# "


def session(machine: Machine, command: str, timeout: float = 60.0) -> str:
    """Type a command at the shell; returns what it printed before the next prompt."""
    start = machine.send_console(command + "\r")
    m = machine.wait_for_console_text(r"(?s)" + re.escape(command) + r"[^\n]*\n(.*?)" + PROMPT, timeout, start)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", m.group(1))


def test_console_shell_session_and_escape_attempts(machine: Machine) -> None:
    machine.wait_for_capsule("console", "ready", 60)
    start = machine.send_console("\r")
    machine.wait_for_console_text(PROMPT, 30, start)

    root = session(machine, "ls /")
    assert {"usr/", "etc/", "proc/", "tmp/"} <= set(root.split()), root
    assert "root/" not in root.split() and "sys/" not in root.split(), root
    assert "Debian" in session(machine, "cat /etc/os-release")
    ps = session(machine, "ps")
    assert "PID" in ps and 2 <= sum("python3" in line for line in ps.splitlines()) <= 4, ps  # its own world
    top = session(machine, "top -n 1")  # (CRUSH: control.status through the control socket in the shell's world)
    assert re.search(r"^top - \d\d:\d\d:\d\d  capsules: \d+, \d+ ready", top, re.M), top
    assert re.search(r"^console\s+ready", top, re.M) and "CAPSULE" in top, top
    status = session(machine, "exoctl status")
    assert re.search(r"^agent\s+ready", status, re.M) and re.search(r"^console\s+ready", status, re.M), status
    assert "bin/" in session(machine, "ls /usr | cat").split()
    assert session(machine, "echo piped | cat | cat").strip() == "piped"
    assert "sh: nosuch: command not found" in session(machine, "nosuch")

    attempts = [
        ("read the state disk", "cat /var/lib/exosphere/generations/current", r"No such file or directory"),
        ("read a block device", "cat /dev/vda", r"No such file or directory"),
        ("write /etc", "echo planted > /etc/planted", r"Read-only file system"),
        ("write /usr", "echo planted > /usr/bin/planted", r"Read-only file system"),
        ("magic SysRq", "echo c > /proc/sysrq-trigger", r"Read-only file system"),
        ("see /sys", "ls /sys", r"No such file or directory"),
        ("chroot out", "/usr/sbin/chroot / /bin/true", r"Operation not permitted"),
        ("mount a tmpfs (mount(2))", "/usr/bin/python3 -c " + repr(
            "import ctypes, os; c = ctypes.CDLL(None, use_errno=True); "
            "print('mount:', c.mount(b'x', b'/tmp', b'tmpfs', 0, None), os.strerror(ctypes.get_errno()))"),
         r"mount: -1 Operation not permitted"),
        ("load a module", "/usr/sbin/modprobe isofs", r"could not insert 'isofs': Operation not permitted"),
        ("see other capsules' processes", "ls /proc/1/root/var/lib", r"(No such file|Permission denied)"),
    ]
    rows = []
    for what, command, refused in attempts:
        out = session(machine, command)
        ok = re.search(refused, out, re.I) is not None
        rows.append((what, command, out.strip().splitlines()[-1] if out.strip() else "(no output)", ok))
    width = max(len(c) for _, c, _, _ in rows)
    print(f"\n{'attempt':<30} {'command':<{width}}  result")
    for what, command, result, ok in rows:
        print(f"{what:<30} {command:<{width}}  {'refused' if ok else 'NOT REFUSED'}: {result}")
    assert all(ok for *_, ok in rows), "an escape attempt was not refused (see the table)"

    start = machine.send_console("exit\r")
    machine.wait_for_console_text(r"Exosphere sh: type help", 60, start)  # the console capsule restarts it
    assert machine.capsule_status("console")["restarts"] >= 1
