"""The arm64 image (qemu.build --arch arm64: Debian's arm64 packages, extract-only, configured by the
builder) booted under qemu-system-aarch64 -M virt (TCG) and driven by the same harness as x86_64:
the serial console (PL011), the command channel (virtio-serial) and QMP.

One boot for the module; the checks are the issue's: PID 1, a cgroup v2 quota, the control API,
the architecture, the wasmtime aarch64 wheel in use, and the display capsules on virtio-gpu (pywayland
cross-built from its sdist). The power-off test ends the machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from exo_init.system import dashboard as dash
from exo_init.system.nexquelium.compositor import BAR_H
from qemu.build import Image
from qemu.vm import VMConfig
from tests.machine import Machine, boot_times
from tests.pixels import Picture, close, wait_for_screen
from tests.test_scope import ESCAPE_EXPECTED
from tests.vm.conftest import machines
from tests.vm.test_dashboard import rows, swatch_states
from tests.vm.test_iso import ISO_BOOT_TIMEOUT
from tests.vm.test_scope import probe


@pytest.fixture(scope="module")
def arm(arm64_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    with machines(arm64_image, tmp_path_factory) as factory:
        yield factory("arm64")


def test_boots_to_all_capsules_ready_on_aarch64(arm: Machine) -> None:
    line = arm.wait_for_console_text(r"boot complete: (.*)\n", 10).group(1)
    assert line.startswith("all capsules ready"), line
    times = boot_times(arm.console)
    print(f"\nARM64 BOOT (TCG): all capsules ready {times['since_init']:.2f} s after exo_init started, "
          f"{times['since_kernel']:.2f} s after the kernel started")
    assert arm.succeed("uname -m").strip() == "aarch64"
    # (QEMU's virt machine, its device tree; in the kernel log: the console is quiet)
    assert "Machine model: linux,dummy-virt" in arm.succeed("dmesg")
    for name in ("kmod", "agent", "console", "dbus", "network", "nexquelium", "dashboard"):
        assert re.search(rf"\[  OK  \] (ready|exited) +{name}\b", arm.console), name
    assert "Traceback" not in arm.console and "Kernel panic" not in arm.console


def test_pid1_is_exo_init_on_the_arm64_python(arm: Machine) -> None:
    cmdline = arm.succeed("tr '\\0' ' ' < /proc/1/cmdline").strip()
    assert re.match(r"^/usr/bin/python3(\.\d+)? -I /(usr/)?sbin/exo_init", cmdline), cmdline
    exe = arm.succeed("readlink /proc/1/exe").strip()
    assert re.match(r"^/usr/bin/python3\.11$", exe), exe
    assert arm.succeed("cat /proc/1/cgroup").strip() == "0::/exo.init"


def test_memory_quota_kills_the_hog_inside_its_cgroup(arm: Machine) -> None:
    """The attack: a capsule allocating without end is OOM-killed at its 64M memory.max."""
    arm.succeed("exoctl start memhog")
    st = arm.wait_for_capsule("memhog", "failed", 120)
    assert "killed by SIGKILL" in st["reason"], st
    assert st["cgroup"]["memory_max"] == str(64 << 20) and st["cgroup"]["memory_oom_kill"] >= 1, st["cgroup"]
    assert arm.succeed("cat /sys/fs/cgroup/capsules/memhog/memory.max").strip() == str(64 << 20)
    log = arm.succeed("exoctl logs memhog -n 200")
    allocated = [int(n) for n in re.findall(r"allocated (\d+) MiB", log)]
    assert allocated and max(allocated) <= 64, allocated


def test_control_api_answers_and_changes_state(arm: Machine) -> None:
    info = json.loads(arm.succeed("exoctl --json info"))
    assert info["pid"] == 1 and info["pid1"] is True
    rows = {r["name"]: r for r in json.loads(arm.succeed("exoctl --json status"))}
    assert rows["agent"]["state"] == "ready" and rows["agent"]["cgroup"]["memory_current"] > 0
    arm.succeed("exoctl start neighbour")
    arm.wait_for_capsule("neighbour", "ready", 60)
    arm.succeed("exoctl stop neighbour")
    assert arm.wait_for_capsule("neighbour", "stopped", 60)["cgroup"]["pids_current"] == 0
    assert "no-such-capsule" in arm.fail("exoctl start no-such-capsule 2>&1")  # (a refusal naming it)
    assert json.loads(arm.succeed("exoctl --json info"))["pid"] == 1


def test_scoped_capsules_cannot_escape_on_aarch64(arm: Machine) -> None:
    """The attack, on the other ABI: the seccomp filter and the grants hold for aarch64's numbers
    (mkdir is mkdirat there; the probe uses aarch64's syscall table)."""
    caps = probe(arm, "probe-caps")
    assert caps["mkdir"] == "EPERM" and caps["seccomp"] == "2" and int(caps["cap_eff"], 16) == 1 << 10, caps
    root = probe(arm, "probe-root")
    assert root["uid"] == 0 and int(root["cap_eff"], 16) == 0
    wrong = {k: v for k, v in root["escape"].items() if v != ESCAPE_EXPECTED[k]}
    assert set(root["escape"]) == set(ESCAPE_EXPECTED) and not wrong, wrong


def test_wasm_capsule_ran_on_the_aarch64_wheel(arm: Machine) -> None:
    out = arm.succeed("python3 -c 'import importlib.metadata as m, wasmtime, glob; "
                      "print(m.version(\"wasmtime\"), glob.glob(\"/usr/lib/python3/dist-packages/wasmtime/*/*.so\"))'")
    assert out.startswith("50.0.1 ") and "linux-aarch64" in out, out
    st = arm.capsule_status("wasm-hello")
    assert st["state"] == "exited" and st["reason"] == "exited 0", st
    assert "hello from wasm" in arm.succeed("exoctl logs wasm-hello -n 20")


def test_display_capsules_draw_the_dashboard_on_virtio_gpu(arm: Machine, artifacts: Path) -> None:
    """Nexquelium on virtio-gpu's DRM framebuffer (its fbdev emulation) and the Sentry dashboard
    through it, on pywayland built from its sdist for aarch64 (qemu/cross.py) linking Debian's arm64
    libwayland: the QMP screendump shows the dashboard's header and a swatch per capsule in the
    colour of its state (README's table), not a blank or text-console frame."""
    for name in ("nexquelium", "dashboard"):
        arm.wait_for_capsule(name, "ready", 180)
    assert arm.succeed("cat /sys/class/graphics/fb0/name").strip() == "virtio_gpudrmfb"
    out = arm.succeed("python3 -c 'import pywayland, pywayland._ffi as f; from pywayland import lib; "
                      "print(pywayland.__version__, f.__file__, callable(lib.wl_display_create))'").split()
    assert out == ["0.4.19", "/usr/lib/python3/dist-packages/pywayland/_ffi.cpython-311-aarch64-linux-gnu.so",
                   "True"], out
    # Every process with the extension mapped: its command line | the libwayland files it has mapped.
    users = arm.succeed(
        "for m in /proc/[0-9]*/maps; do grep -q pywayland/_ffi \"$m\" 2>/dev/null || continue; "
        "printf '%s| %s\\n' \"$(tr '\\0' ' ' < ${m%/maps}/cmdline)\" "
        "\"$(grep -o '/[^ ]*libwayland-[a-z]*[^ ]*' \"$m\" | sort -u | tr '\\n' ' ')\"; done").splitlines()
    for module, lib_ in (("exo_init.system.nexquelium", "libwayland-server"), ("exo_init.system.dashboard",
                                                                                 "libwayland-client")):
        line = next((u for u in users if module in u.split("|")[0]), "")
        assert f"/usr/lib/aarch64-linux-gnu/{lib_}.so.0.21.0" in line, users  # (bookworm's, not a vendored copy)

    shot = artifacts / "arm64-dashboard.png"

    def header(pic: Picture) -> bool:
        return close(pic.rgb(700, 4), dash.HEADER) and close(pic.rgb(700, 200), dash.BACKGROUND)

    pic = wait_for_screen(arm, shot, header, 120, "the dashboard header on virtio-gpu")
    assert (pic.width, pic.height) == (1280, 800), (pic.width, pic.height)  # (virtio-gpu's default mode)
    shown = dash.rows_fitting(pic.height - BAR_H)
    status: list[dict[str, object]] = []

    def swatches_match(p: Picture) -> bool:
        nonlocal status
        status = rows(arm)[:shown]
        return swatch_states(p, len(status)) == [r["state"] for r in status]

    pic = wait_for_screen(arm, shot, swatches_match, 60, "a swatch per capsule in its state's colour")
    ready = sum(1 for r in status if r["state"] == "ready")
    assert ready >= 5 and swatch_states(pic, len(status)).count("ready") == ready, status
    first = re.search(r"first client frame \('Exosphere Sentry'\): ([0-9.]+) s after kernel start",
                      arm.succeed("exoctl logs nexquelium -n 200"))
    assert first, "nexquelium logged no first dashboard frame"
    print(f"\nARM64 DISPLAY (TCG): first dashboard frame {float(first.group(1)):.2f} s after kernel start; "
          f"{len(status)} swatches in their states' colours")


def test_qmp_powerdown_presses_the_gpio_power_key(arm: Machine) -> None:
    """QMP system_powerdown on virt is a GPIO key (no ACPI): the powerbutton capsule watches it."""
    arm.wait_for_capsule("powerbutton", "ready", 30)
    assert re.search(r"watching /dev/input/event\d", arm.succeed("exoctl logs powerbutton -n 5"))
    arm.send_powerdown()
    assert arm.wait_for_exit(120) == 0, arm.console_tail()
    # (the kernel ignores the key on its own: only the capsule's poweroff request stops the capsules)
    assert "exo_init: poweroff: stopping capsules" in arm.console and "exo_init: powering off" in arm.console
    assert "Kernel panic" not in arm.console and "Traceback" not in arm.console


def test_the_uefi_iso_boots_to_all_capsules_ready(arm64_product_image: Image, tmp_path: Path) -> None:
    """The arm64 ISO a user boots (`qemu/run --arch arm64 --iso`): AAVMF, GRUB EFI for arm64, the
    kernel's EFI stub, exo_init, every capsule of the product manifest ready; the serial console is
    the only channel (no test layer). Then the GPIO power key powers it off."""
    assert arm64_product_image.iso is not None
    cfg = VMConfig(cdrom=arm64_product_image.iso, uefi=True, arch=arm64_product_image.arch,
                   probe_kernel=arm64_product_image.kernel)
    m = Machine("arm64-iso", cfg, tmp_path)
    with m.running():
        line = m.wait_for_console_text(r"boot complete: (.*)\n", ISO_BOOT_TIMEOUT).group(1)
        assert line.startswith("all capsules ready"), m.console_tail()
        times = boot_times(m.console)
        print(f"\nARM64 ISO (UEFI, TCG): all capsules ready {times['since_kernel']:.2f} s after kernel start")
        assert "Traceback" not in m.console and "Kernel panic" not in m.console
        m.send_powerdown()
        assert m.wait_for_exit(120) == 0, m.console_tail()
