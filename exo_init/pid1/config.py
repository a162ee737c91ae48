"""exo_init's own run-time configuration: where things live, and whether it is PID 1."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from exo_init.lib.paths import CONTROL_SOCKET, DEFAULT_RUNTIME, ROOT_CONTROL_SOCKET

DEFAULT_MANIFEST = Path("/etc/exosphere/manifest.json")
PERSISTENT_LOGS = Path("/var/log/exosphere")
# Debian's directories, and NixOS's system profile (PID 1 starts with almost no environment there).
SYSTEM_PATH = ":".join(("/run/current-system/sw/bin", "/run/current-system/sw/sbin", "/usr/local/sbin",
                        "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))
SYSTEM_BUS_DIR = Path("/run/dbus")       # the system bus socket's directory (capabilities.bus)
WAYLAND_SOCKET = "wayland-0"             # in Config.wayland_dir (capabilities.display)
EXO_LIB = str(Path(__file__).resolve().parents[2])  # the directory holding the exo_init package


def interpreter_paths(python: str) -> tuple[str, ...]:
    """Where the runtime interpreter `python` lives, when it is the one running exo_init: its
    installation (sys.prefix, sys.base_prefix) and the site directories on its import path (where
    wasmtime is), so that a scoped runtime capsule can run it (the plan binds those not already in
    every world, read-only). Another interpreter (--python) is assumed to lie under the system's
    paths (/usr, /nix/store)."""
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        return ()
    site = (p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p))
    found = {sys.prefix, sys.base_prefix, *site}
    paths = sorted(os.path.realpath(p) for p in found)
    # Only the outermost of nested paths (a prefix holds its site-packages).
    return tuple(p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths))


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
    # Runtime capsules (manifest `runtime`): the interpreter that runs `-m exo_init.runtimes.*`
    # (with their libraries: wasmtime), the directory holding the exo_init package (PYTHONPATH),
    # and the host paths the interpreter needs inside a scoped world (interpreter_paths).
    python: str = field(default_factory=lambda: sys.executable)
    exo_lib: str = EXO_LIB
    python_paths: tuple[str, ...] = ()

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / CONTROL_SOCKET

    @property
    def root_control_socket(self) -> Path:
        return self.runtime_dir / ROOT_CONTROL_SOCKET

    @property
    def notify_socket(self) -> Path:
        return self.runtime_dir / "notify.sock"

    @property
    def wayland_dir(self) -> Path:
        """The compositor's XDG_RUNTIME_DIR: its socket is WAYLAND_SOCKET in here."""
        return self.runtime_dir / "wayland"

    @property
    def display_clients(self) -> Path:
        """{uid: capsule} of the running capsules granted `display` (JSON), for the compositor to
        name a client's views: a directory of its own, which the clients do not see."""
        return self.runtime_dir / "display" / "clients.json"


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
    p.add_argument("--python", default=None,
                   help="the interpreter of runtime capsules, with their libraries (default: this one)")
    p.add_argument("--debug", action="store_true")
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
    # The runtime capsules' interpreter: --python, or exo.python= (how the NixOS module passes its
    # Python with wasmtime to PID 1, without a wrapper in front of it), else this interpreter.
    python = args.python or cmdline.get("exo.python") or sys.executable
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
        python=python,
        python_paths=interpreter_paths(python),
    )


def _generation(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
