"""nixos-modules/exosphere.nix evaluated against the stand-in nixpkgs (tests/nixos_stub.nix), for
tests/test_nix.py and tests/vm/test_nixos_module.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODULES = REPO / "nixos-modules"
HARNESS = REPO / "tests" / "nixos_stub.nix"
SERIAL = "ttyS0"  # what the stand-in qemu-common.nix says qemuSerialDevice is (the PC's)


class EvalError(Exception):
    """nix-instantiate failed; the message is its stderr."""


def eval_module(workdir: Path, extra: dict[str, Any], testing: str = "on", *, node: Path | None = None,
                sentry: bool = False, initrd_systemd: bool = False) -> Any:
    """The harness's outputs (manifestJson, kernelParams, ...) for the module with `extra` capsules
    (JSON) and the capsules of the NixOS module `node`; `testing`: "on", "off" or "absent" (the
    testing.backdoor option); `sentry`: services.exosphere.sentry.enable; `initrd_systemd`:
    boot.initrd.systemd.enable. `workdir` gets the stand-in modulesPath."""
    nix_instantiate = shutil.which("nix-instantiate")
    if nix_instantiate is None:
        raise EvalError("nix-instantiate is not installed (qemu/setup-host installs nix-bin)")
    # modulesPath/../lib/qemu-common.nix is where exosphere.nix finds the serial device name.
    lib = workdir / "nixpkgs" / "nixos" / "lib"
    (workdir / "nixpkgs" / "nixos" / "modules").mkdir(parents=True, exist_ok=True)
    lib.mkdir(exist_ok=True)
    (lib / "qemu-common.nix").write_text(f'{{ lib, pkgs }}: {{ qemuSerialDevice = "{SERIAL}"; }}\n')
    argv = [nix_instantiate, "--store", "dummy://", "--eval", "--strict", "--json", str(HARNESS),
            "--argstr", "modulePath", str(MODULES / "exosphere.nix"),
            "--argstr", "modulesPath", str(workdir / "nixpkgs" / "nixos" / "modules"),
            "--argstr", "extraJson", json.dumps(extra), "--argstr", "testing", testing,
            "--argstr", "nodePath", str(node) if node is not None else "",
            "--argstr", "sentry", "on" if sentry else "off",
            "--argstr", "initrdSystemd", "on" if initrd_systemd else "off"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    if proc.returncode != 0:
        raise EvalError(f"nix-instantiate (tests/nixos_stub.nix) failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def split_script(value: str) -> tuple[str, str] | None:
    """A stand-in script's store path -> (path, text); None for any other string."""
    if value.startswith("/nix/store/") and "\n" in value:
        path, text = value.split("\n", 1)
        return path, text
    return None
