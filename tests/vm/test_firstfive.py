"""The first five minutes at the console of the booted image (issue 24): the kernel's console is
quiet between its start and "all capsules ready" (exo_init's status lines only), the shell's
first prompt comes after the last boot status line, and the host name has one source."""

from __future__ import annotations

import json
import re

from tests.machine import Machine

PROMPT = r"console:/[^\n#]*# "
BOOT_COMPLETE = r"boot complete: all capsules ready[^\n]*\n"
KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\] (.*)$", re.M)  # printk's time stamp


def test_kernel_console_is_quiet_until_boot_complete(machine: Machine) -> None:
    done = machine.wait_for_console_text(BOOT_COMPLETE, 60)
    boot = machine.console[:done.start()]
    on_console = [line.rstrip("\r") for line in KERNEL_LINE.findall(boot)]
    # The flood (info level): not one line of it on the console.
    flood = re.compile(r"ahci|ata\d|drm|Run \S+ as init|Linux version|pci |input:|virtio")
    assert [line for line in on_console if flood.search(line)] == [], on_console
    # The kernel log with each message's level (`dmesg -r`: <facility*8+level>): `quiet` lets only
    # errors and worse (level < 4) onto the console (an RCU stall on a loaded host, say), and the
    # info lines are in the log, not on the console. (When other tests filled the log buffer and
    # its start is gone, only the check above holds.)
    raw = machine.succeed("dmesg -r")
    logged = [(int(m.group(1)) & 7, m.group(2)) for m in re.finditer(r"^<(\d+)>\[\s*\d+\.\d+\] (.*)$", raw, re.M)]
    assert logged, raw[:500]
    whole = re.match(r"<\d+>\[\s*0\.0+\] ", raw) is not None
    print(f"\nkernel log from its start: {whole}; {len(logged)} records, "
          f"{sum(level < 4 for level, _ in logged)} below warning; on the console before boot complete: "
          f"{len(on_console)} kernel lines")
    if whole:
        allowed = {text for level, text in logged if level < 4}
        assert [line for line in on_console if line not in allowed] == [], on_console
        info = [text for level, text in logged if level >= 6 and flood.search(text)]
        assert info and not set(info) & set(on_console), (info, on_console)
    ready = re.findall(r"\[  OK  \] ready +(\S+)", boot)  # exo_init's status lines stay
    assert "console" in ready and len(ready) >= 5, boot[-3000:]


def test_first_prompt_comes_after_the_boot_status_lines(machine: Machine) -> None:
    done = machine.wait_for_console_text(BOOT_COMPLETE, 60)
    prompt = machine.wait_for_console_text(PROMPT, 120, done.end())  # printed without any key pressed
    first = re.search(PROMPT, machine.console)
    assert first is not None and first.start() == prompt.start(), \
        machine.console[max(0, first.start() - 500 if first else 0):done.end()]
    between = machine.console[done.end():prompt.start()]
    assert "[  OK  ]" not in between and not KERNEL_LINE.search(between), between


def test_one_host_name(machine: Machine) -> None:
    etc = machine.succeed("cat /etc/hostname").strip()
    info = json.loads(machine.succeed("exoctl --json info"))
    kernel = machine.succeed("cat /proc/sys/kernel/hostname").strip()
    assert etc == info["hostname"] == "exosphere", (etc, info["hostname"])
    assert kernel == etc, kernel  # the agent shares the system's UTS namespace
