"""The emergency shell, booted, both ways it is promised (README "Bad input never stops the boot";
docs/architecture.md "Emergency paths"):

- a boot manifest that is not a manifest at all: the recovery shell is the only capsule, root and
  unconfined, on the console, under the normal supervisor (so SIGPWR still powers off cleanly:
  typed into that shell, the test of SIGPWR);
- ten errors of PID 1's loop within a minute: PID 1 starts a root shell on the console and only
  reaps from then on. A loop error is a bug, so this boot injects one: its initramfs has one more
  cpio appended (the kernel unpacks archives in order, a later file replaces an earlier one) with
  an /sbin/exo_init whose loop raises on every turn once /run/exo-loop-fault exists, and a manifest
  of the agent and kmod only (a short boot, and no console shell beside the emergency one). The
  product image holds no such switch.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from qemu.build import Image
from qemu.util import write_cpio
from tests.machine import Machine
from tests.vm.conftest import MachineFactory

NOT_A_MANIFEST = "/usr/lib/exosphere/test/not-a-manifest.json"  # (tests/guest/not-a-manifest.json: cut short)
FAULT = "/run/exo-loop-fault"
FAULTY_INIT = f'''#!/usr/bin/python3 -I
"""exo_init, with a fault in its loop once {FAULT} exists (tests/vm/test_emergency.py)."""
import os
import sys
sys.path.insert(0, "/usr/lib/exosphere")
from exo_init.pid1 import loop

run_once = loop.Loop.run_once


def faulty_run_once(self, max_wait=1.0):
    if os.path.exists("{FAULT}"):
        raise RuntimeError("a fault injected by the test")
    run_once(self, max_wait)


loop.Loop.run_once = faulty_run_once
from exo_init.pid1.main import main
sys.exit(main())
'''
SHUTDOWN_TIMEOUT = 120.0


def typed(m: Machine, line: str, answer: str, timeout: float = 60.0) -> re.Match[str]:
    """Type `line` on the serial console (the shell there) and wait for a line matching `answer`
    (after the shell's prompt, `# `, if it was printed just before)."""
    start = m.send_console(line + "\n")
    return m.wait_for_console_text(rf"^(?:# )?{answer}", timeout, start=start)


def test_an_unusable_boot_manifest_boots_the_root_recovery_shell_and_sigpwr_powers_off(
        test_image: Image, make_machine: MachineFactory) -> None:
    m = make_machine("emergency-manifest", cmdline=f"{test_image.cmdline} exo.manifest={NOT_A_MANIFEST}")
    console = m.console
    assert re.search(rf"error: {re.escape(NOT_A_MANIFEST)}: .+\n", console), m.console_tail(60)
    assert "no usable manifest: starting the emergency shell (root) on the console" in console
    assert re.search(r"^\[  OK  \] ready +emergency$", console, re.MULTILINE), m.console_tail(60)
    assert re.search(r"boot complete: all capsules ready; 1 capsules", console), m.console_tail(60)
    typed(m, "echo uid=$(id -u)", r"uid=0$")
    # unconfined: PID 1 of its world is exo_init (a scoped shell would see its own namespace init)
    typed(m, "tr '\\0' ' ' </proc/1/cmdline; echo", r"\S*python3 -I \S*exo_init \n")
    mark = len(m.console)
    m.send_console("kill -PWR 1\n")
    assert m.wait_for_exit(SHUTDOWN_TIMEOUT) == 0, m.console_tail(40)
    after = m.console[mark:]
    assert "signal SIGPWR: poweroff" in after and "exo_init: powering off" in after, after
    assert "Kernel panic" not in m.console and "Traceback" not in m.console, m.console_tail(60)


def faulty_initrd(image: Image, workdir: Path) -> Path:
    """The test image's initramfs plus a cpio holding FAULTY_INIT and a manifest of kmod and agent."""
    overlay = workdir / "overlay"
    (overlay / "usr/sbin").mkdir(parents=True)
    (overlay / "etc/exosphere").mkdir(parents=True)
    init = overlay / "usr/sbin/exo_init"
    init.write_text(FAULTY_INIT)
    init.chmod(0o755)
    manifest = json.loads(image.manifest.read_text())
    manifest["capsules"] = {n: c for n, c in manifest["capsules"].items() if n in ("kmod", "agent")}
    assert len(manifest["capsules"]) == 2, sorted(manifest["capsules"])
    (overlay / "etc/exosphere/manifest.json").write_text(json.dumps(manifest))
    for path in (overlay, *overlay.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)  # (a directory's entry sets the mode of the one it lands on: "." is /)
    write_cpio(overlay, workdir / "overlay.cpio")
    initrd = workdir / "initrd.img"
    with open(initrd, "wb") as out:
        for part in (image.initrd, workdir / "overlay.cpio"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    return initrd


def test_ten_loop_errors_start_the_emergency_shell_and_pid1_keeps_reaping(
        test_image: Image, make_machine: MachineFactory, tmp_path: Path) -> None:
    m = make_machine("emergency-loop", initrd=faulty_initrd(test_image, tmp_path))
    agent = m.capsule_status("agent")
    mark = len(m.console)
    m.succeed(f"touch {FAULT}")
    m.wait_for_console_text(r"too many supervisor errors: emergency shell /bin/sh on the console\n", 60, start=mark)
    errors = re.findall(r"supervisor error \(continuing\): RuntimeError: a fault injected by the test$",
                        m.console[mark:], re.MULTILINE)
    assert len(errors) == 10, m.console[mark:]
    typed(m, "echo uid=$(id -u)", r"uid=0$")
    # PID 1 only reaps now: an orphan is reaped (no zombie left), the control socket is not served,
    # the capsules it started are left running (the agent answers, the same process).
    orphan = int(m.succeed("sh -c 'sleep 1 >/dev/null 2>&1 & echo $!'"))
    m.wait_until_succeeds(f"! test -e /proc/{orphan}", 30)
    m.fail("timeout 20 exoctl --via socket info")
    assert m.succeed(f"cat /proc/{agent['pid']}/comm").strip().startswith("python3")
    console = m.console
    assert "Kernel panic" not in console and "Traceback" not in console, m.console_tail(60)
