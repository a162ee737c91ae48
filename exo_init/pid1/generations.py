"""Numbered, immutable manifest generations under a state directory, and which one is current.

    STATE/generations/1/manifest.json  the manifest, byte for byte as given
    STATE/generations/1/meta.json      {"number", "created" (Unix time), "source", "sha256"}
    STATE/generations/current -> 1     a relative symlink

Crash safety (a power cut at any point leaves either the old or the new state, never a mix):
  * a generation is written into `.tmp-N-PID`, its files and the directory fsynced, then renamed to
    `N` and the parent directory fsynced: `N` either does not exist or is complete;
  * `current` is switched by creating `.current-PID` (a symlink) and renaming it over `current`
    (rename(2) is atomic), then fsyncing the directory.
Leftover temporary entries from an interrupted write are removed when the store is opened.
Pure Python, no exo_init state: unit-tested on the host with temporary directories.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
META = "meta.json"
CURRENT = "current"
IMAGE_HASH = "image.sha256"  # the hash of the image manifest imported last (see import_image)


class GenerationError(Exception):
    """A generation that does not exist or cannot be used; the message is one line."""



def sha256_hex(data: bytes) -> str:
    """SHA-256 by CPython's own implementation: hashlib's goes through OpenSSL, whose library
    mapped into PID 1 only for this was a megabyte of its memory."""
    for name in ("_sha256", "_sha2"):  # (3.11; 3.12 and later)
        try:
            return str(importlib.import_module(name).sha256(data).hexdigest())
        except ImportError:
            continue
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(data).hexdigest()

@dataclass(frozen=True)
class Generation:
    number: int
    path: Path
    created: float
    source: str
    sha256: str

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    def to_json(self) -> dict[str, object]:
        return {"number": self.number, "created": self.created, "source": self.source, "sha256": self.sha256,
                "manifest": str(self.manifest)}


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY if path.is_dir() else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


class GenerationStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        for entry in self.root.iterdir():
            if not entry.name.startswith((".tmp-", ".current-")):
                continue
            if entry.is_dir() and not entry.is_symlink():
                import shutil  # noqa: PLC0415 (only to clean up after a crash)

                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    # --- reading ---------------------------------------------------------------------------------

    def numbers(self) -> list[int]:
        return sorted(int(e.name) for e in self.root.iterdir()
                      if e.name.isdigit() and (e / MANIFEST).is_file() and (e / META).is_file())

    def get(self, number: int) -> Generation:
        path = self.root / str(number)
        try:
            meta = json.loads((path / META).read_text())
            if not (path / MANIFEST).is_file():
                raise FileNotFoundError(path / MANIFEST)
        except FileNotFoundError:
            raise GenerationError(f"generation {number} does not exist") from None
        except (OSError, ValueError) as e:
            raise GenerationError(f"generation {number}: unreadable {META}: {e}") from None
        return Generation(number=number, path=path, created=float(meta.get("created", 0.0)),
                          source=str(meta.get("source", "")), sha256=str(meta.get("sha256", "")))

    def list(self) -> list[Generation]:
        """Every readable generation, oldest first (an unreadable one is left out, not fatal)."""
        out = []
        for n in self.numbers():
            try:
                out.append(self.get(n))
            except GenerationError:
                continue
        return out

    def current(self) -> int | None:
        """The current generation's number, or None (empty store, or a dangling link)."""
        try:
            target = os.readlink(self.root / CURRENT)
        except OSError:
            return None
        if not target.isdigit() or int(target) not in self.numbers():
            return None
        return int(target)

    def previous(self, number: int) -> int | None:
        """The newest generation older than `number` (what a rollback goes back to)."""
        older = [n for n in self.numbers() if n < number]
        return older[-1] if older else None

    # --- writing ---------------------------------------------------------------------------------

    def create(self, manifest: bytes, source: str) -> Generation:
        """Write a new generation (the next number) and return it; `current` is not changed."""
        # Past every numbered entry, complete or not: a number once on disk is never reused.
        number = max((int(e.name) for e in self.root.iterdir() if e.name.isdigit()), default=0) + 1
        tmp = self.root / f".tmp-{number}-{os.getpid()}"
        tmp.mkdir()
        meta = {"number": number, "created": time.time(), "source": source,
                "sha256": sha256_hex(manifest)}
        try:
            _write_synced(tmp / MANIFEST, manifest)
            _write_synced(tmp / META, json.dumps(meta, indent=2).encode() + b"\n")
            _fsync_path(tmp)
            os.rename(tmp, self.root / str(number))
        except OSError:  # a full disk: leave nothing half-written behind
            import shutil  # noqa: PLC0415 (only to clean up a failed write)

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_path(self.root)
        return self.get(number)

    def set_current(self, number: int) -> None:
        self.get(number)  # must exist
        tmp = self.root / f".current-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(str(number), tmp)
        os.rename(tmp, self.root / CURRENT)
        _fsync_path(self.root)

    def import_image(self, manifest: bytes, source: str) -> Generation | None:
        """At boot: make the image's manifest a new current generation if it differs from the one
        imported last (an empty store, or a new image); None when it was imported already."""
        digest = sha256_hex(manifest)
        marker = self.root / IMAGE_HASH
        try:
            if marker.read_text().strip() == digest and self.current() is not None:
                return None
        except OSError:
            pass
        current = self.current()
        if current is not None and self.get(current).sha256 == digest:
            gen = None  # already switched to (exosphere-switch): just remember it as imported
        else:
            gen = self.create(manifest, source)
            self.set_current(gen.number)
        tmp = self.root / f".tmp-image-{os.getpid()}"
        _write_synced(tmp, digest.encode() + b"\n")
        os.rename(tmp, marker)
        _fsync_path(self.root)
        return gen
