"""Helpers shared by the builder and runner: one `run()` for every subprocess, `die()` for user
errors, and timed, nested build steps."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

_depth = 0


def log(message: str) -> None:
    sys.stderr.write(f"{'  ' * _depth}{message}\n")
    sys.stderr.flush()


def die(message: str, hint: str = "") -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.exit(1)


class StepFailed(Exception):
    pass


def run(argv: Sequence[str | os.PathLike[str]], *, check: bool = True, capture: bool = False,
        cwd: Path | None = None, env: dict[str, str] | None = None, stdin: int | None = None,
        stdout: int | None = None, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run an argv list (never a shell string), logging it; a failure names the command and shows
    the end of its output."""
    args = [str(a) for a in argv]
    log(f"$ {shlex.join(args)}")
    try:
        proc = subprocess.run(args, check=False, cwd=cwd, env=env, stdin=stdin, text=True, timeout=timeout,
                              stdout=subprocess.PIPE if capture else stdout,
                              stderr=subprocess.PIPE if capture else None)
    except FileNotFoundError:
        raise StepFailed(f"{args[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{shlex.join(args)}: timed out after {timeout} s") from None
    if check and proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-15:] if capture else []
        raise StepFailed(f"{shlex.join(args)} failed with exit code {proc.returncode}"
                         + ("\n" + "\n".join(tail) if tail else ""))
    return proc


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """A timed build step; nested steps are indented."""
    global _depth
    log(f"==> {title}")
    _depth += 1
    start = time.monotonic()
    try:
        yield
    finally:
        _depth -= 1
        log(f"<== {title} ({time.monotonic() - start:.1f} s)")


def sha256_of(*parts: bytes | str | Path) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            if part.is_dir():
                for f in sorted(p for p in part.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                    h.update(str(f.relative_to(part)).encode())
                    h.update(f.read_bytes())
            else:
                h.update(part.read_bytes())
        else:
            h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("EXO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "exosphere")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def write_cpio(root: Path, dest: Path) -> None:
    """A newc cpio of `root`: sorted names, ownership and modes as on disk, fixed inode numbers."""
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = "\n".join([".", *names]) + "\n"
    tmp = dest.with_name(dest.name + ".tmp")
    log(f"$ cpio -o -H newc --reproducible ({len(names)} entries) > {dest.name}")
    with open(tmp, "wb") as out:
        proc = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "--reproducible"], cwd=root,
                              input=listing.encode(), stdout=out, check=False)
    if proc.returncode != 0:
        raise StepFailed(f"cpio failed with exit code {proc.returncode}")
    tmp.rename(dest)
