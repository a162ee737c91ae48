"""The NixOS module's own capsules, booted here (issue 23): the flake's checks.boot, rehearsed on the
dev image.

The manifest is the one nixos-modules/exosphere.nix renders for the flake's test machine
(nixos-modules/boot-test.nix: the module's capsules, the test driver's `backdoor` and the
`quota-probe`), evaluated against the stand-in nixpkgs (tests/nixos_stub.nix) whose fake store
paths are mapped here onto the dev image's programs (STORE_LINKS; the module's scripts are written
to their store paths). The root is made like a fresh NixOS root: a stand-in for the scripted stage 2
(tests/guest/nixos-stage-2) removes what Debian has and NixOS's stage 2 does not make, then execs
exo_init, as boot.systemdExecutable is. The test script is the flake's own
(nixos-modules/boot-test.py), driven by `DriverMachine`, which speaks nixpkgs' test-driver protocol
to the backdoor: QEMU connects a virtconsole (/dev/hvc0) to a socket the driver listens on, the
driver waits for "Spawning backdoor root shell...", then sends `timeout T bash -c CMD | (base64 -w 0;
echo)` and `echo ${PIPESTATUS[0]}` and reads one line for each.

Before the backdoor was unconfined, the handshake never came (an isolated capsule has no
/dev/hvc0); before exo_init made the base directories, the console capsule's /var/log grant refused
its start. One boot; not the real thing: nixpkgs' driver, its QEMU options and NixOS's own stage 1,
activation and packages are not here (see the README's Nix section).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qemu.build import CONSOLES, Image, Layer, build
from qemu.util import cache_dir
from qemu.vm import VMConfig
from tests import nixos_stub
from tests.machine import HarnessError, Machine, TestFailure
from tests.vm.conftest import BOOT_TIMEOUT, GUEST

NODE = nixos_stub.MODULES / "boot-test.nix"
SCRIPT = nixos_stub.MODULES / "boot-test.py"
STAGE2 = "/nix/store/exosphere-stage-2"
HANDSHAKE = b"Spawning backdoor root shell..."
# The stand-in's store paths -> the dev image's programs (a directory maps its whole tree), and
# what NixOS's dbus module puts in /etc. Every store path the manifest names must be under one.
STORE_LINKS = {
    "/nix/store/coreutils": "/usr",
    "/nix/store/bash": "/usr",
    "/nix/store/bash-interactive": "/usr",
    "/nix/store/kmod/bin/modprobe": "/usr/sbin/modprobe",
    "/nix/store/dbus/bin/dbus-daemon": "/usr/bin/dbus-daemon",
    "/nix/store/busybox/bin/udhcpc": "/usr/sbin/udhcpc",
    "/nix/store/busybox/bin/busybox": "/usr/bin/busybox",
    "/nix/store/util-linux": "/usr",
    "/nix/store/exo-init/bin/exo_init": "/usr/sbin/exo_init",
    "/nix/store/exo-init/bin/exoctl": "/usr/bin/exoctl",
    "/nix/store/exo-init/lib/python3/site-packages": "/usr/lib/exosphere",
}
# Paths NixOS makes outside the store -> the dev image's: NixOS's dbus module generates
# /etc/dbus-1/system.conf; Debian's is /usr/share/dbus-1/system.conf, which includes
# /etc/dbus-1/system.conf itself (as local overrides), so a symlink there would include itself.
NIXOS_PATHS = {"/etc/dbus-1/system.conf": "/usr/share/dbus-1/system.conf"}
BUDGET = 900.0  # the whole script, boot included (checks.boot's globalTimeout; it takes ~1 min under TCG)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def unscript(value: Any, scripts: dict[str, str]) -> Any:
    """`value` with each stand-in script's store path (path + newline + text) cut to its path; the
    texts go into `scripts`; NIXOS_PATHS replaced."""
    if isinstance(value, str):
        script = nixos_stub.split_script(value)
        if script is None:
            for nixos, here in NIXOS_PATHS.items():
                value = value.replace(nixos, here)
            return value
        scripts[script[0]] = script[1]
        return script[0]
    if isinstance(value, dict):
        return {k: unscript(v, scripts) for k, v in value.items()}
    if isinstance(value, list):
        return [unscript(v, scripts) for v in value]
    return value


def nixos_tree(workdir: Path) -> tuple[Path, str]:
    """The layer's tree (cached by content: the image key includes its path) and the kernel
    command line, from the module's evaluation."""
    out = nixos_stub.eval_module(workdir, {}, "on", node=NODE)
    scripts: dict[str, str] = {}
    manifest = unscript(json.loads(out["manifestJson"]), scripts)
    params = [str(p) for p in out["kernelParams"]]
    [python] = [p.split("=", 1)[1] for p in params if p.startswith("exo.python=")]
    links = {**STORE_LINKS, python: "/usr/bin/python3"}
    for s in (*strings(manifest), python):
        for word in s.replace(":", " ").replace("=", " ").split():
            if word.startswith("/nix/store/") and word not in scripts:
                assert any(word == k or word.startswith(k + "/") for k in links), f"no mapping for {word}"
    stage2 = (GUEST / "nixos-stage-2").read_text()
    content = json.dumps([manifest, scripts, links, stage2], sort_keys=True)
    tree = cache_dir() / f"nixos-module-{hashlib.sha256(content.encode()).hexdigest()[:16]}"
    if not tree.is_dir():
        tmp = tree.with_name(tree.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "etc/exosphere").mkdir(parents=True)
        (tmp / "etc/exosphere/manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for path, text in {**scripts, STAGE2: stage2}.items():
            target = tmp / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            # (writeShellScript: runtimeShell's #! line, then the text; the stand-in stage 2 has its own)
            target.write_text(text if text.startswith("#!") else "#!/bin/bash\n" + text)
            target.chmod(0o755)
        for path, dest in links.items():
            link = tmp / path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(dest)
        tmp.rename(tree)
    return tree, f"rdinit={STAGE2} {CONSOLES} {' '.join(params)}"


class DriverMachine:
    """The part of nixpkgs' test-driver Machine the flake's script uses, over the same protocol."""

    def __init__(self, vm: Machine, listener: socket.socket, budget: float) -> None:
        self.vm = vm
        self.listener = listener
        self.deadline = time.monotonic() + budget
        self.shell: socket.socket | None = None
        self.booted = False
        self.exit_status: int | None = None

    def _left(self, timeout: float, what: str) -> float:
        left = min(timeout, self.deadline - time.monotonic())
        if left <= 0:
            raise TestFailure(f"{what}: the test's {BUDGET:g} s budget is spent; console:\n{self.vm.console_tail()}")
        return left

    def start(self) -> None:
        if not self.booted:
            self.vm.start()
            self.booted = True

    def connect(self) -> socket.socket:
        if self.shell is not None:
            return self.shell
        self.start()
        end = time.monotonic() + self._left(BOOT_TIMEOUT, "waiting for the backdoor")
        self.listener.settimeout(max(end - time.monotonic(), 0.1))
        try:
            shell, _ = self.listener.accept()
        except TimeoutError:
            raise HarnessError("QEMU did not connect the virtconsole's socket") from None
        seen = self._read(shell, lambda data: HANDSHAKE in data, end - time.monotonic(),
                          f"{HANDSHAKE.decode()!r} on the virtconsole")
        if HANDSHAKE not in seen:
            raise TestFailure(f"the virtconsole closed before the handshake (it said {seen[-300:]!r})")
        self.shell = shell
        return shell

    def _read(self, shell: socket.socket, done: Callable[[bytes], bool], timeout: float, what: str) -> bytes:
        """What the shell sends until `done` says it is complete or the connection closes; a
        TestFailure naming `what` after `timeout` seconds."""
        end = time.monotonic() + timeout
        data = b""
        while not done(data):
            left = end - time.monotonic()
            if left <= 0:
                raise TestFailure(f"no {what} within {timeout:.0f} s (got {data[-300:]!r}); "
                                  f"console:\n{self.vm.console_tail()}")
            shell.settimeout(left)
            with contextlib.suppress(TimeoutError):
                chunk = shell.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data

    def _line(self, shell: socket.socket, timeout: float, command: str) -> bytes:
        """The shell's next newline-ended block (the driver reads so)."""
        return self._read(shell, lambda data: data.endswith(b"\n"), timeout, f"answer to {command!r}")

    def execute(self, command: str, check_return: bool = True, check_output: bool = True,
                timeout: int | None = 900) -> tuple[int, str]:
        shell = self.connect()
        wrapped = f"set -euo pipefail; {command}"
        limit = f"timeout {timeout} " if timeout is not None else ""
        shell.sendall(f"{limit}bash -c {shlex.quote(wrapped)} | (base64 -w 0; echo)\n".encode())
        if not check_output:
            return -2, ""
        wait = self._left(float(timeout or 900) + 30, command)
        output = base64.b64decode(self._line(shell, wait, command))
        if not check_return:
            return -1, output.decode()
        shell.sendall(b"echo ${PIPESTATUS[0]}\n")
        rc = int(self._line(shell, self._left(60, command), command).strip())
        return rc, output.decode(errors="replace")

    def succeed(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            rc, out = self.execute(command, timeout=timeout)
            if rc != 0:
                raise TestFailure(f"command `{command}` failed (exit code {rc}):\n{out}")
            output += out
        return output

    def wait_until_succeeds(self, command: str, timeout: int = 900) -> str:
        end = time.monotonic() + self._left(timeout, command)
        while True:
            rc, out = self.execute(command, timeout=timeout)
            if rc == 0:
                return out
            if time.monotonic() > end:
                raise TestFailure(f"`{command}` did not succeed within {timeout} s (last exit {rc}):\n{out}")
            time.sleep(1)

    def wait_for_shutdown(self) -> None:
        self.exit_status = self.vm.wait_for_exit(self._left(300, "waiting for the power-off"))


@contextlib.contextmanager
def subtest(name: str) -> Iterator[None]:
    sys.stderr.write(f"subtest: {name}\n")
    try:
        yield
    except AssertionError as e:
        raise TestFailure(f"subtest {name!r}: {e}") from e


@pytest.fixture(scope="module")
def nixos_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image, str]:
    if os.geteuid() != 0:
        pytest.fail("the VM tests build the image, which needs root")
    tree, cmdline = nixos_tree(tmp_path_factory.mktemp("nixos-eval"))
    layer = Layer("nixos-module", files=((tree / "nix", "/nix"), (tree / "etc", "/etc")))
    return build([layer], iso=False), cmdline


def test_the_flake_boot_check_through_the_backdoor(nixos_image: tuple[Image, str], tmp_path: Path) -> None:
    image, cmdline = nixos_image
    shell_path = tmp_path / "shell"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(shell_path))
    listener.listen(1)
    # nixpkgs' driver: -chardev socket,id=shell,path=... -device virtconsole,chardev=shell (the
    # driver listens, QEMU connects); here on the virtio-serial bus Machine already has.
    extra = ("-chardev", f"socket,id=shell,path={shell_path}", "-device", "virtconsole,bus=vser0.0,chardev=shell")
    vm = Machine("nixos", VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=cmdline, extra=extra),
                 tmp_path / "vm")
    machine = DriverMachine(vm, listener, BUDGET)
    try:
        machine.start()
        with subtest("every capsule of the module comes up (the console one needs /var/log)"):
            vm.wait_for_console_text(r"stage 2 \(stand-in\): a fresh root", 60)
            boot = vm.wait_for_console_text(r"boot complete: (.*)\n", 240)
            assert boot.group(1).startswith("all capsules ready"), boot.group(0)
        with subtest("the root is a fresh NixOS one, with the base directories exo_init made"):
            machine.succeed(
                "test ! -e /var/lib/dpkg",  # (Debian's /var is gone)
                "test \"$(stat -c %a /tmp)\" = 1777 && test \"$(stat -c %a /var/tmp)\" = 1777",
                "test -d /var/log && test -d /var/lib",
            )
        text = SCRIPT.read_text()
        exec(compile(text, str(SCRIPT), "exec"), {"machine": machine, "subtest": subtest})
        assert machine.exit_status == 0, f"QEMU exited with {machine.exit_status} after `exoctl poweroff`"
        assert "Traceback" not in vm.console, vm.console_tail(60)
    finally:
        vm.stop()
        listener.close()
        if machine.shell is not None:
            machine.shell.close()
        print(f"\n[nixos] serial log: {vm.serial_log}")
