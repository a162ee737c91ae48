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
    kernel = KERNEL_LINE.findall(boot)
    # `quiet`: warnings and errors only. The flood was ahci, drm and ata link lines (info).
    assert not [line for line in kernel if re.search(r"ahci|drm|ata\d|Run \S+ as init|Linux version", line)], kernel
    assert len(kernel) <= 5, "\n".join(kernel)
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
