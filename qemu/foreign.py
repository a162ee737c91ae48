"""Configure an extract-only bootstrap of a foreign architecture, with the host's own tools.

There is no binfmt_misc on the build hosts, so a foreign architecture's maintainer scripts cannot
run (not even under qemu-user). mmdebstrap's `extract` variant unpacks the packages and runs none
of them; this module then does, from the host, the part of their work that a booted Exosphere
image relies on. Everything else those scripts do (ld.so.cache, debconf, systemd units, initramfs
hooks) an Exosphere image never uses: its libraries are in the dynamic loader's default
directories, and exo_init is the only init.

  users and groups   base-passwd's master files, then the packages' sysusers.d entries
                     (messagebus for dbus-daemon) through the host's systemd-sysusers --root
  alternatives       the ones the essential set installs (awk, which, pager), as plain symlinks
  /etc/mtab          -> /proc/self/mounts
  bytecode           the standard library and dist-packages, byte-compiled by the host's Python
                     (the same 3.11 the image runs; bytecode does not depend on the architecture)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from qemu.util import StepFailed, log, run

# (link, target) as update-alternatives would make them through /etc/alternatives.
ALTERNATIVES = (
    ("usr/bin/awk", "/usr/bin/mawk"),
    ("usr/bin/nawk", "/usr/bin/mawk"),
    ("usr/bin/which", "/usr/bin/which.debianutils"),
    ("usr/bin/pager", "/usr/bin/more"),
)
PYTHON = "python3.11"  # the image's python3 (bookworm); the host's must be the same minor version


def configure(root: Path) -> None:
    """Do in `root` (an extract-only bootstrap) what the image needs of the maintainer scripts."""
    _accounts(root)
    for link, target in ALTERNATIVES:
        if not (root / target.lstrip("/")).exists():
            raise StepFailed(f"alternative {link} -> {target}: {target} is not in the bootstrap")
        path = root / link
        path.unlink(missing_ok=True)
        path.symlink_to(target)
    mtab = root / "etc/mtab"
    mtab.unlink(missing_ok=True)
    mtab.symlink_to("../proc/self/mounts")
    _bytecode(root)


def _accounts(root: Path) -> None:
    """/etc/passwd, group, shadow, gshadow as base-passwd's postinst makes them, then every system
    user and group the packages declare in sysusers.d (systemd-sysusers only reads `root`)."""
    masters = root / "usr/share/base-passwd"
    for name in ("passwd", "group"):
        master = masters / f"{name}.master"
        if not master.exists():
            raise StepFailed(f"{master} missing: is base-passwd in the bootstrap?")
        shutil.copy2(master, root / "etc" / name)
    users = [line.split(":")[0] for line in (root / "etc/passwd").read_text().splitlines() if line]
    groups = [line.split(":")[0] for line in (root / "etc/group").read_text().splitlines() if line]
    (root / "etc/shadow").write_text("".join(f"{u}:*:19000:0:99999:7:::\n" for u in users))
    (root / "etc/gshadow").write_text("".join(f"{g}:*::\n" for g in groups))
    for name in ("shadow", "gshadow"):
        (root / "etc" / name).chmod(0o640)
    run(["systemd-sysusers", f"--root={root}"])
    added = sorted(set(line.split(":")[0] for line in (root / "etc/passwd").read_text().splitlines() if line)
                   - set(users))
    log(f"accounts: {len(users)} from base-passwd, added {', '.join(added) or 'none'} from sysusers.d")


def _bytecode(root: Path) -> None:
    if sys.version_info[:2] != (3, 11):
        raise StepFailed(f"byte-compiling the image's {PYTHON} needs a host Python 3.11, not {sys.version.split()[0]}")
    dirs = [d for d in (root / "usr/lib" / PYTHON, root / "usr/lib/python3/dist-packages") if d.is_dir()]
    # -s/-p: the paths recorded in the bytecode are the image's, not the staging directory's. Not
    # checked: a module that does not compile (some packages ship Python 2 examples) fails as it
    # would at import; every other one is compiled.
    run([sys.executable, "-m", "compileall", "-q", "-x", "/(test|tests|idlelib|lib2to3/tests)/",
         "-s", root, "-p", "/", *dirs], check=False)
