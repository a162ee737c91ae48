"""exo_init's own run-time configuration: where things live, and whether it is PID 1."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from exo_init.lib.paths import CONTROL_SOCKET, DEFAULT_MANIFEST, DEFAULT_RUNTIME, ROOT_CONTROL_SOCKET

PERSISTENT_LOGS = Path("/var/log/exosphere")
# Debian's directories, and NixOS's system profile (PID 1 starts with almost no environment there).
SYSTEM_PATH = ":".join(("/run/current-system/sw/bin", "/run/current-system/sw/sbin", "/usr/local/sbin",
                        "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))
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
    zygote: bool = True                # unconfined Python capsules run in PID 1's fork (zygote.py); exo.zygote=0: exec
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
        """The compositor's XDG_RUNTIME_DIR: its socket is lib.paths.WAYLAND_SOCKET in here."""
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


# exo_init's options (a small parser of its own: argparse, with gettext and textwrap behind it, was
# 0.6 MB of PID 1's memory for one read of its command line).
VALUE_OPTIONS = {
    "--manifest": f"capsule manifest (default {DEFAULT_MANIFEST})",
    "--runtime-dir": f"default {DEFAULT_RUNTIME}",
    "--log-dir": "capsule logs (default: persistent or runtime)",
    "--cgroup-root": "cgroup2 directory to own (PID 1 default: the cgroup2 mount itself)",
    "--state-dir": "generations and event log (default RUNTIME/state)",
    "--generation": "boot this generation (exo.generation=N)",
    "--python": "the interpreter of runtime capsules, with their libraries (default: this one)",
}
FLAG_OPTIONS = {
    "--no-cgroups": "run without cgroups (host tests only)",
    "--debug": "debug lines on the console too",
    "--no-zygote": "exec every capsule's interpreter (exo.zygote=0)",
}


class UsageError(Exception):
    pass


def usage() -> str:
    lines = ["usage: exo_init [OPTIONS]", "Exosphere PID 1 and capsule supervisor", ""]
    lines += [f"  {k} {k[2:].upper().replace('-', '_')}  {v}" for k, v in VALUE_OPTIONS.items()]
    lines += [f"  {k}  {v}" for k, v in FLAG_OPTIONS.items()]
    return "\n".join(lines) + "\n"


def read_options(argv: list[str], strict: bool) -> dict[str, str | bool]:
    """{option: value or True}; `strict` (not PID 1): an unknown word is a UsageError (as PID 1,
    the kernel passes its unknown command-line words to init: they are ignored)."""
    out: dict[str, str | bool] = {}
    words = iter(argv)
    for word in words:
        key, eq, value = word.partition("=")
        if key in VALUE_OPTIONS:
            if not eq:
                found = next(words, None)
                if found is None:
                    raise UsageError(f"{key} needs a value")
                value = found
            if key == "--generation" and not value.isdigit():
                raise UsageError(f"--generation: not a number: {value!r}")
            out[key] = value
        elif word in FLAG_OPTIONS:
            out[word] = True
        elif strict:
            raise UsageError(f"unrecognized argument: {word}")
    return out


def parse_args(argv: list[str], pid1: bool) -> Config:
    if not pid1 and any(w in ("-h", "--help") for w in argv):
        sys.stdout.write(usage())
        sys.exit(0)
    try:
        opts = read_options(argv, strict=not pid1)
    except UsageError as e:
        sys.stderr.write(usage() + f"exo_init: error: {e}\n")
        sys.exit(2)

    def path(key: str) -> Path | None:
        value = opts.get(key)
        return Path(value) if isinstance(value, str) else None

    cmdline: dict[str, str] = {}
    if pid1:
        try:
            cmdline = kernel_cmdline(Path("/proc/cmdline").read_text())
        except OSError:
            cmdline = {}
    manifest = path("--manifest") or Path(cmdline.get("exo.manifest") or DEFAULT_MANIFEST)
    runtime = path("--runtime-dir") or DEFAULT_RUNTIME
    if (given_log_dir := path("--log-dir")) is not None:
        log_dir = given_log_dir
    elif pid1 and PERSISTENT_LOGS.parent.is_dir() and os.access(PERSISTENT_LOGS.parent, os.W_OK):
        log_dir = PERSISTENT_LOGS
    else:
        log_dir = runtime / "log"
    # The runtime capsules' interpreter: --python, or exo.python= (how the NixOS module passes its
    # Python with wasmtime to PID 1, without a wrapper in front of it), else this interpreter.
    python = str(opts.get("--python") or "") or cmdline.get("exo.python") or sys.executable
    cgroup_root: Path | None = None
    if not opts.get("--no-cgroups"):
        cgroup_root = path("--cgroup-root") or (Path("/sys/fs/cgroup") if pid1 else None)
    return Config(
        manifest=manifest,
        runtime_dir=runtime,
        log_dir=log_dir,
        cgroup_root=cgroup_root,
        pid1=pid1,
        debug=bool(opts.get("--debug")) or "exo.debug" in cmdline,
        state_dir=path("--state-dir"),
        state_device=cmdline.get("exo.state") or None,
        generation=_generation(str(opts["--generation"]) if "--generation" in opts else cmdline.get("exo.generation")),
        zygote=not opts.get("--no-zygote") and cmdline.get("exo.zygote") != "0",
        python=python,
        python_paths=interpreter_paths(python),
    )


def _generation(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
