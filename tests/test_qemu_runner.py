"""qemu/run's flags, the KVM probe and EXO_ACCEL (README: "KVM is used only if a probe boots the
kernel under KVM and it prints its banner within 8 s ... `EXO_ACCEL=tcg|kvm` overrides the probe").

* the flags -> the VM and QEMU's command line (qemu/run.py's vm_config and qemu/vm.py's
  qemu_argv, as qemu/run uses them), and the real QEMU accepting those command lines (started
  paused, -S, asked over QMP what it holds, then quit);
* the probe on real processes: a banner in time is yes; silence, an exit or no program is no;
  with /dev/kvm unusable (a mount namespace binding /dev/null over it) the probe's real QEMU
  start fails and the runner falls back to TCG;
* EXO_ACCEL forces an accelerator without a probe, a foreign architecture is TCG whatever it says,
  and a value it does not know is one clear error, before any build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from qemu.arch import Arch, platform
from qemu.build import DISK_ROOT_CMDLINE, KERNEL_CMDLINE, VERBOSE_KERNEL, Image
from qemu.run import parse, vm_config
from qemu.util import StepFailed
from qemu.vm import OVMF_CODE, VMConfig, accel, forced_accel, kvm_works, prints_banner, qemu_argv
from tests.exo import REPO
from tests.machine import QMP


@pytest.fixture
def image(tmp_path: Path) -> Image:
    for name in ("vmlinuz", "initrd.img", "stage1.img"):
        (tmp_path / name).write_bytes(b"")
    for name in ("exosphere.iso", "root.ext4"):
        with open(tmp_path / name, "wb") as f:
            f.truncate(4 << 20)
    return Image(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd.img", iso=tmp_path / "exosphere.iso",
                 manifest=tmp_path / "manifest.json", stage1=tmp_path / "stage1.img", root_disk=tmp_path / "root.ext4")


@pytest.fixture(autouse=True)
def tcg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXO_ACCEL", "tcg")
    monkeypatch.setenv("EXO_CACHE", str(tmp_path / "cache"))  # (vm_config's QMP socket lives there)


def run_argv(image: Image, *flags: str) -> tuple[VMConfig, list[str]]:
    cfg = vm_config(parse(list(flags)), image)
    return cfg, qemu_argv(cfg)


def option(argv: list[str], name: str) -> list[str]:
    """Every value of QEMU option `name` in argv."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


def test_default_is_a_direct_boot_on_an_interactive_serial_console(image: Image) -> None:
    cfg, argv = run_argv(image)
    assert argv[0] == "qemu-system-x86_64" and option(argv, "-machine") == ["q35"]
    assert option(argv, "-accel") == ["tcg"] and option(argv, "-cpu") == ["max"]
    assert option(argv, "-kernel") == [str(image.kernel)] and option(argv, "-initrd") == [str(image.initrd)]
    assert option(argv, "-append") == [KERNEL_CMDLINE]
    assert option(argv, "-m") == ["1024"] and option(argv, "-smp") == ["2"]
    assert option(argv, "-serial") == ["mon:stdio"], "Ctrl-A X quits"
    assert option(argv, "-display") == ["none"] and "-no-reboot" not in argv
    assert option(argv, "-qmp") == [f"unix:{cfg.qmp_socket},server=on,wait=off"]
    assert not any(d.startswith("file=") for d in option(argv, "-drive")), "no disk unless asked"


def test_each_flag_changes_what_it_says(image: Image, tmp_path: Path) -> None:
    _, argv = run_argv(image, "--headless")
    assert option(argv, "-serial") == ["stdio"] and "-no-reboot" in argv
    _, argv = run_argv(image, "--graphical")
    assert "none" not in option(argv, "-display") and option(argv, "-vga") == ["std"]
    _, argv = run_argv(image, "--memory", "512", "--cpus", "1", "--append", "quiet loglevel=3")
    assert option(argv, "-m") == ["512"] and option(argv, "-smp") == ["1"]
    assert option(argv, "-append") == [f"{KERNEL_CMDLINE} quiet loglevel=3"]
    # the kernel's console is quiet by default; --verbose-kernel's loglevel comes later, so it wins
    assert " quiet" in KERNEL_CMDLINE and VERBOSE_KERNEL not in KERNEL_CMDLINE
    _, argv = run_argv(image, "--verbose-kernel", "--append", "exo.debug")
    assert option(argv, "-append") == [f"{KERNEL_CMDLINE} {VERBOSE_KERNEL} exo.debug"]
    _, argv = run_argv(image, "--iso")
    assert "-kernel" not in argv and "-append" not in argv
    assert option(argv, "-drive") == [f"file={image.iso},media=cdrom,readonly=on,if=none,id=cd0"]
    assert "ide-cd,drive=cd0,bootindex=0" in option(argv, "-device")
    _, argv = run_argv(image, "--iso-disk", "--uefi")
    assert "-kernel" not in argv and "ide-hd,drive=boot0,bootindex=0" in option(argv, "-device")
    assert option(argv, "-drive") == [f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                                      f"file={image.iso},format=raw,if=none,id=boot0"]
    state = tmp_path / "state.img"
    _, argv = run_argv(image, "--state-disk", str(state))
    assert option(argv, "-drive") == [f"file={state},format=raw,if=virtio,cache=unsafe"]
    assert option(argv, "-append") == [f"{KERNEL_CMDLINE} exo.state=/dev/vda"]
    _, argv = run_argv(image, "--disk-root", "--state-disk", str(state))
    assert option(argv, "-initrd") == [str(image.stage1)]
    assert option(argv, "-append") == [f"{DISK_ROOT_CMDLINE} exo.state=/dev/vdb"], "the root disk is vda"
    assert option(argv, "-drive") == [f"file={image.root_disk},format=raw,if=virtio,snapshot=on",
                                      f"file={state},format=raw,if=virtio,cache=unsafe"]
    _, argv = run_argv(image, "--forward", "8080:80", "--forward", "2222:22")
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22" in option(argv, "-netdev")


def test_arm64_is_the_virt_machine_under_tcg_whatever_exo_accel_says(image: Image,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXO_ACCEL", "kvm")
    _, argv = run_argv(image, "--arch", "arm64", "--iso")
    assert argv[0] == "qemu-system-aarch64" and option(argv, "-machine") == ["virt"]
    assert option(argv, "-accel") == ["tcg"] and option(argv, "-cpu") == ["max,pauth-impdef=on"]
    assert option(argv, "-bios") == [str(platform(Arch.ARM64).efi_firmware)], "virt has no BIOS: the ISO is UEFI"
    assert "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=0" in option(argv, "-device")


def test_exo_accel_forces_an_accelerator_without_a_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXO_ACCEL", "kvm")
    t = time.monotonic()
    argv = qemu_argv(VMConfig(kernel=Path("/nonexistent/vmlinuz")))
    assert option(argv, "-accel") == ["kvm"] and option(argv, "-cpu") == ["host"]
    assert time.monotonic() - t < 2, "no probe VM was started"
    monkeypatch.setenv("EXO_ACCEL", "")
    assert forced_accel() is None, "empty: the probe decides"
    for bad in ("KVM", "hvf", "kvm "):
        monkeypatch.setenv("EXO_ACCEL", bad)
        with pytest.raises(StepFailed, match=r"^EXO_ACCEL='.*': expected tcg or kvm"):
            accel(Path("/nonexistent/vmlinuz"))


def test_usage_errors_come_before_any_build() -> None:
    # (a cache directory that cannot be made: a regression here fails at once instead of building)
    env = {**os.environ, "PYTHONPATH": str(REPO), "EXO_CACHE": "/dev/null/exosphere-cache"}
    for flags, message in [
        (["--forward", "80"], "argument --forward: '80': expected HOST:GUEST port numbers, e.g. --forward 8080:80"),
        (["--forward", "8080:99999"], "argument --forward: '8080:99999': expected HOST:GUEST port numbers"),
        (["--iso", "--disk-root"], "argument --disk-root: not allowed with argument --iso"),
        (["--graphical", "--headless"], "argument --headless: not allowed with argument --graphical"),
    ]:
        done = subprocess.run([sys.executable, "-m", "qemu.run", *flags], capture_output=True, text=True, timeout=60,
                              check=False, cwd=REPO, env=env)
        assert done.returncode == 2 and message in done.stderr, (flags, done.stderr)
    if os.geteuid() == 0:  # (a non-root caller is told it needs root first)
        done = subprocess.run([sys.executable, "-m", "qemu.run", "--headless"], capture_output=True, text=True,
                              timeout=60, check=False, cwd=REPO, env={**env, "EXO_ACCEL": "kvmm"})
        assert done.returncode == 1 and done.stderr == "error: EXO_ACCEL='kvmm': expected tcg or kvm (or unset, " \
            "to probe for KVM)\n", done.stderr


# --- the probe ---------------------------------------------------------------------------------------


def test_the_probe_wants_a_banner_in_time() -> None:
    t = time.monotonic()
    assert prints_banner(["sh", "-c", "echo booting; echo 'Linux version 6.1.0'; exec sleep 60"], 20)
    assert not prints_banner(["sh", "-c", "echo 'Linux'; echo 'panic'; exit 0"], 20), "an exit without a banner"
    assert not prints_banner(["/nonexistent/qemu"], 20)
    assert time.monotonic() - t < 10, "a banner, an exit or no program: no waiting out the deadline"
    t = time.monotonic()
    assert not prints_banner(["sh", "-c", "echo silent; exec sleep 60"], 1.0), "silence: no"
    assert 1.0 <= time.monotonic() - t < 10


UNSHARE = shutil.which("unshare") or "unshare"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which(UNSHARE) is None, reason="a mount namespace needs root")
def test_an_unusable_kvm_falls_back_to_tcg(tmp_path: Path) -> None:
    """/dev/kvm present and writable (here /dev/null bound over it in a private mount namespace)
    proves nothing: the probe's QEMU cannot run under it, so the runner uses TCG."""
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"not a kernel")
    probe = ("import json, os, sys, time\nfrom pathlib import Path\nfrom qemu.vm import accel, kvm_works, qemu_argv, "
             "VMConfig\nt = time.monotonic()\nworks = kvm_works(Path(sys.argv[1]))\n"
             "argv = qemu_argv(VMConfig(kernel=Path(sys.argv[1])))\n"
             "print(json.dumps({'access': os.access('/dev/kvm', os.R_OK | os.W_OK), 'works': works, "
             "'accel': accel(Path(sys.argv[1])), 'argv': argv, 'took': time.monotonic() - t}))\n")
    script = ("[ -e /dev/kvm ] || exit 0; mount --bind /dev/null /dev/kvm && "
              'exec "$0" -c "$1" "$2"')
    env = {k: v for k, v in os.environ.items() if k != "EXO_ACCEL"}
    done = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "sh", "-c", script, sys.executable, probe,
                           str(kernel)], capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
                          env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    if not done.stdout:
        pytest.skip("this host has no /dev/kvm to make unusable (the probe is not even started)")
    seen = json.loads(done.stdout)
    assert seen["access"] and seen["works"] is False and seen["accel"] == "tcg", seen
    assert option(seen["argv"], "-accel") == ["tcg"] and option(seen["argv"], "-cpu") == ["max"]
    assert seen["took"] < 8, f"QEMU failed at once; the probe did not wait out its 8 s ({seen['took']:.1f} s)"
    assert kvm_works(None) is False, "no kernel to probe with: no KVM"


# --- the real QEMU accepts what the runner builds ----------------------------------------------------------


def started_paused(cfg: VMConfig, tmp_path: Path) -> dict[str, object]:
    """Start QEMU with `cfg`'s command line, paused before the guest runs (-S); what QMP says it holds."""
    sock = tmp_path / "qmp.sock"
    cfg = replace(cfg, qmp_socket=sock, serial="null", kernel=None, initrd=None)  # (no kernel to load: paused)
    argv = [*qemu_argv(cfg), "-S"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise AssertionError(f"QEMU refused {argv}: {proc.stderr.read().decode(errors='replace')}")
            assert time.monotonic() < deadline, f"no QMP socket within 60 s: {argv}"
            time.sleep(0.05)
        qmp = QMP(sock, timeout=30)
        try:
            seen: dict[str, object] = {
                "status": qmp.execute("query-status")["status"],
                "block": sorted(b["device"] or b["qdev"] for b in qmp.execute("query-block")),
                "usernet": qmp.execute("human-monitor-command", **{"command-line": "info usernet"}),
            }
            qmp.execute("quit")
        finally:
            qmp.close()
        proc.wait(30)
        return seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu/setup-host installs QEMU")
def test_qemu_accepts_the_runners_command_lines(image: Image, tmp_path: Path) -> None:
    state = tmp_path / "state.img"
    with open(state, "wb") as f:
        f.truncate(1 << 20)
    seen = started_paused(vm_config(parse(["--iso", "--uefi", "--headless", "--forward", "18080:80"]), image),
                          tmp_path)
    assert seen["status"] == "prelaunch"
    assert seen["block"] == ["cd0", "pflash0"], seen
    assert re.search(r"HOST_FORWARD.* 127\.0\.0\.1 +18080 +10\.0\.2\.15 +80 ", str(seen["usernet"])), seen
    seen = started_paused(vm_config(parse(["--iso-disk", "--state-disk", str(state), "--memory", "256"]), image),
                          tmp_path)
    assert seen["block"] == ["boot0", "virtio0"], seen
    seen = started_paused(vm_config(parse(["--disk-root", "--state-disk", str(state)]), image), tmp_path)
    assert seen["block"] == ["virtio0", "virtio1"], seen
