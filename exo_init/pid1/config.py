"""exo_init's own run-time configuration: where things live, and whether it is PID 1."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from exo_init.lib.paths import DEFAULT_MANIFEST, DEFAULT_RUNTIME

PERSISTENT_LOGS = Path("/var/log/exosphere")
# Debian's directories, and NixOS's system profile (PID 1 starts with almost no environment there).
SYSTEM_PATH = ":".join(("/run/current-system/sw/bin", "/run/current-system/sw/sbin", "/usr/local/sbin",
                        "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))


@dataclass(frozen=True)
class Config:
    manifest: Path
    runtime_dir: Path          # control socket, notify socket, volatile logs
    log_dir: Path              # per-capsule logs
    cgroup_root: Path | None   # None: no cgroup2 available (processes grouped by session only)
    pid1: bool                 # the real init: mounts, kill(-1), reboot(2)
    debug: bool = False
    hostname: str | None = None
    state_dir: Path | None = None      # generations and the event log (None: decided at boot, statedisk.py)
    state_device: str | None = None    # exo.state=/dev/vda: the persistent state disk (PID 1)
    generation: int | None = None      # exo.generation=N: boot that generation
    zygote: bool = True                # unconfined Python capsules run in PID 1's fork (zygote.py); exo.zygote=0: exec

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / "control.sock"

    @property
    def notify_socket(self) -> Path:
        return self.runtime_dir / "notify.sock"

    @property
    def wayland_dir(self) -> Path:
        """The compositor's XDG_RUNTIME_DIR: its socket is lib.paths.WAYLAND_SOCKET in here."""
        return self.runtime_dir / "wayland"


def kernel_cmdline(text: str) -> dict[str, str]:
    """`exo.manifest=/x exo.debug` -> {"exo.manifest": "/x", "exo.debug": ""} (exo.* keys only)."""
    out: dict[str, str] = {}
    for word in text.split():
        key, _, value = word.partition("=")
        if key.startswith("exo."):
            out[key] = value
    return out


def parse_args(argv: list[str], pid1: bool) -> Config:
    p = argparse.ArgumentParser(prog="exo_init", description="Exosphere PID 1 and capsule supervisor")
    p.add_argument("--manifest", type=Path, help=f"capsule manifest (default {DEFAULT_MANIFEST})")
    p.add_argument("--runtime-dir", type=Path, default=None, help=f"default {DEFAULT_RUNTIME}")
    p.add_argument("--log-dir", type=Path, default=None, help="capsule logs (default: persistent or runtime)")
    p.add_argument("--cgroup-root", type=Path, default=None,
                   help="cgroup2 directory to own (PID 1 default: the cgroup2 mount itself)")
    p.add_argument("--no-cgroups", action="store_true", help="run without cgroups (host tests only)")
    p.add_argument("--state-dir", type=Path, default=None, help="generations and event log (default RUNTIME/state)")
    p.add_argument("--generation", type=int, default=None, help="boot this generation (exo.generation=N)")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--no-zygote", action="store_true", help="exec every capsule's interpreter (exo.zygote=0)")
    # The kernel passes unknown command-line words to init as arguments: ignore them.
    args, _unknown = p.parse_known_args(argv) if pid1 else (p.parse_args(argv), [])

    cmdline: dict[str, str] = {}
    if pid1:
        try:
            cmdline = kernel_cmdline(Path("/proc/cmdline").read_text())
        except OSError:
            cmdline = {}
    manifest = args.manifest or Path(cmdline.get("exo.manifest") or DEFAULT_MANIFEST)
    runtime = args.runtime_dir or DEFAULT_RUNTIME
    if args.log_dir is not None:
        log_dir = args.log_dir
    elif pid1 and PERSISTENT_LOGS.parent.is_dir() and os.access(PERSISTENT_LOGS.parent, os.W_OK):
        log_dir = PERSISTENT_LOGS
    else:
        log_dir = runtime / "log"
    cgroup_root: Path | None = None
    if not args.no_cgroups:
        cgroup_root = args.cgroup_root or (Path("/sys/fs/cgroup") if pid1 else None)
    return Config(
        manifest=manifest,
        runtime_dir=runtime,
        log_dir=log_dir,
        cgroup_root=cgroup_root,
        pid1=pid1,
        debug=args.debug or "exo.debug" in cmdline,
        state_dir=args.state_dir,
        state_device=cmdline.get("exo.state") or None,
        generation=args.generation if args.generation is not None else _generation(cmdline.get("exo.generation")),
        zygote=not args.no_zygote and cmdline.get("exo.zygote") != "0",
    )


def _generation(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
