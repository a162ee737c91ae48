"""README's first commands work as written: as root on a machine without sudo, and through sudo
for another user (qemu/as-root, sourced by every entry script).

Run as root with a `sudo` on PATH that records its call and fails, each script does its work
without calling it; run as an unprivileged user, it runs itself again through sudo with its
arguments; with no sudo there, it stops with one line saying so."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_readme import split_code

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534
# Harmless arguments for each entry script the README's first code block runs: they go through the
# script's whole start (root check, qemu/setup-host) and stop before anything long.
HARMLESS = {
    "qemu/run": ["--help"],
    "tests/run": ["--collect-only", "-q", "tests/test_readme.py"],
    "virtualbox/build": ["--help"],
    "qemu/setup-host": [],
}


def first_commands() -> list[str]:
    """The scripts the README's first code block runs (its first word on each line)."""
    text = (REPO / "README.md").read_text()
    block = split_code(text.split("\n## ", 1)[0])[0]
    return [line.split()[0] for line in block if line.strip() and not line.startswith("#")]


@pytest.fixture
def fake_sudo() -> Iterator[tuple[Path, Path]]:
    """(a bin directory holding a `sudo` that writes its arguments to the record file and exits 97,
    the record file); world-readable, so an unprivileged user can run it too."""
    top = Path(tempfile.mkdtemp(prefix="exo-sudo-"))
    try:
        top.chmod(0o777)
        record = top / "record"
        bindir = top / "bin"
        bindir.mkdir(mode=0o755)
        sudo = bindir / "sudo"
        sudo.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\nexit 97\n')
        sudo.chmod(0o755)
        yield bindir, record
    finally:
        shutil.rmtree(top)


def run_as(uid: int, argv: list[str], path: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    setpriv = shutil.which("setpriv") or "setpriv"
    pre = [] if uid == 0 else [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return subprocess.run([*pre, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def world_readable_copy(script: str, top: Path) -> Path:
    """The script and qemu/as-root copied, as they are, under `top` (the clone may sit in a folder
    an unprivileged user cannot enter); returns the copy's root."""
    root = top / "repo"
    for rel in (script, "qemu/as-root"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        shutil.copy2(REPO / rel, root / rel)
    for d in [root, *root.rglob("*")]:
        d.chmod(0o755)
    return root


def test_readme_first_commands_are_known_here() -> None:
    commands = first_commands()
    assert commands == ["qemu/run", "tests/run"], commands
    assert set(commands) <= set(HARMLESS)


@pytest.mark.parametrize("script", sorted(HARMLESS))
def test_as_root_the_scripts_never_call_sudo(script: str, fake_sudo: tuple[Path, Path]) -> None:
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root (tests/run): this test checks the scripts as root")
    bindir, record = fake_sudo
    done = run_as(0, [script, *HARMLESS[script]], f"{bindir}:{os.environ['PATH']}")
    assert not record.exists(), f"{script} called sudo as root: {record.read_text()!r}"
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    if script != "qemu/setup-host":
        assert re.search(r"usage:|collected|test_readme", done.stdout), done.stdout[-2000:]


@pytest.mark.parametrize("script", ["qemu/run", "tests/run"])
def test_another_user_goes_through_sudo_with_the_same_arguments(script: str, fake_sudo: tuple[Path, Path]) -> None:
    bindir, record = fake_sudo
    root = world_readable_copy(script, bindir.parent)
    done = run_as(NOBODY, [script, "--help", "a b"], f"{bindir}:/usr/bin:/bin", cwd=root)
    assert done.returncode == 97, (done.stdout, done.stderr)
    words = record.read_text().splitlines()
    assert words[-4:] == ["--", script, "--help", "a b"], words
    assert any(w.startswith("--preserve-env=") and "EXO_CACHE" in w for w in words), words


def test_another_user_without_sudo_gets_one_clear_line(fake_sudo: tuple[Path, Path]) -> None:
    bindir, _ = fake_sudo
    (bindir / "sudo").unlink()
    for tool in ("bash", "id", "basename", "dirname"):  # what the script needs, and no sudo
        found = shutil.which(tool)
        assert found is not None, tool
        (bindir / tool).symlink_to(found)
    root = world_readable_copy("qemu/run", bindir.parent)
    done = run_as(NOBODY, ["qemu/run"], str(bindir), cwd=root)
    assert done.returncode == 1
    assert done.stderr == "run: needs root (it installs packages and builds images), and sudo is not installed: " \
                          "run it as root\n"
